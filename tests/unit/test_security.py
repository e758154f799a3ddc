"""The security suite's pure readings and the per-finding severity."""

from __future__ import annotations

from fixtures.findings import severity
from xenlab.checks.security import parse_sshd_password_auth, parse_vblade_processes

PS = """COMMAND
/usr/lib/systemd/systemd --user
vblade 0 0 eth0 /var/lib/xenlab/labs/embedded/storage/export.img
/usr/sbin/vblade -b 16 -m 52:54:00:18:00:01,52:54:00:18:00:02 0 1 eth1 /dev/sda3
vblade-persist something
grep vblade
"""


def test_vblade_exports_from_ps() -> None:
    exports = parse_vblade_processes(PS)
    assert [(e.shelf, e.slot, e.interface, e.macs) for e in exports] == [
        (0, 0, "eth0", ()),
        (0, 1, "eth1", ("52:54:00:18:00:01", "52:54:00:18:00:02"))]
    assert exports[1].device == "/dev/sda3"


def test_sshd_password_auth() -> None:
    assert parse_sshd_password_auth("port 22\npasswordauthentication yes\n") is True
    assert parse_sshd_password_auth("port 22\npasswordauthentication no\n") is False
    assert parse_sshd_password_auth("no-sshd\n") is None


def test_severity_per_finding_command_line_then_inventory_then_default() -> None:
    assert severity("ssh-password-auth", "warn", {}, {}) == "warn"
    assert severity("ssh-password-auth", "warn", {"ssh-password-auth": "fail"}, {}) == "fail"
    assert severity("ssh-password-auth", "fail", {"ssh-password-auth": "fail"},
                    {"ssh-password-auth": "warn"}) == "warn"
    assert severity("aoe-interface", "fail", {"ssh-password-auth": "warn"}, {}) == "fail"
