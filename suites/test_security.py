"""Security findings, read-only: what in the lab's set-up an attacker on its network could
use. Each finding names the host, the file or port, and the fix; whether it warns or fails
is configured per finding (--lab-security-finding NAME=fail, the inventory's `security:`,
or --lab-security for all). The xend relocation finding lives in test_relocation.py."""

from __future__ import annotations

import shlex
from collections.abc import Callable

import pytest
from testinfra.host import Host

from xenlab.checks.security import parse_sshd_password_auth, parse_vblade_processes
from xenlab.inventory import Inventory


def test_aoe_exported_only_on_the_storage_interface(storage_host: Host, inventory: Inventory,
                                                    security_finding: Callable[..., None]) -> None:
    """Every vblade on the storage host serves the configured interface, and with a MAC
    allow-list (-m) where the inventory asks for one."""
    aoe = inventory.aoe
    exports = parse_vblade_processes(storage_host.check_output("ps -eo args"))
    assert exports, (f"on {inventory.storage.name}: no vblade process exports "
                     f"{aoe.target} (vblade {aoe.shelf} {aoe.slot} {aoe.interface} DEVICE)")
    for export in exports:
        if export.interface != aoe.interface:
            security_finding(
                "aoe-interface",
                f"on {inventory.storage.name}: vblade exports e{export.shelf}.{export.slot} "
                f"on {export.interface}, not the storage interface {aoe.interface}: every host "
                f"on that segment can read and write the disk; run it on {aoe.interface} only")
        if aoe.require_mac_allowlist and not export.macs:
            security_finding(
                "aoe-no-mac-allowlist",
                f"on {inventory.storage.name}: vblade exports e{export.shelf}.{export.slot} "
                f"to any MAC address; the inventory asks for an allow-list: vblade -m "
                f"MAC1,MAC2 {export.shelf} {export.slot} {export.interface} DEVICE")


def test_guest_shadow_is_not_a_hosts(guest_host: Host, resource_hosts: dict[str, Host],
                                     inventory: Inventory,
                                     security_finding: Callable[..., None]) -> None:
    """The article copies dom0's /etc/passwd and /etc/shadow into the guest: its root
    password hash is then the host's, and readable by whoever owns the guest."""
    guest = guest_host.run("sha256sum /etc/shadow")
    if guest.rc != 0:
        pytest.skip(f"{inventory.domain.name}: /etc/shadow unreadable ({guest.stderr.strip()})")
    digest = guest.stdout.split()[0]
    for name, host in resource_hosts.items():
        theirs = host.run("sha256sum /etc/shadow")
        if theirs.rc == 0 and theirs.stdout.split()[0] == digest:
            security_finding(
                "guest-shadow-copied",
                f"{inventory.domain.name}:/etc/shadow is identical to {name}:/etc/shadow (the "
                f"article's `cp /etc/shadow /mnt/etc/`): the host's password hashes are in the "
                f"guest; give the guest its own (passwd in the guest, or a locked root)")


@pytest.mark.parametrize("role", ["storage", "resources"])
def test_ssh_password_authentication_off(role: str, lab_hosts: dict[str, Host],
                                         inventory: Inventory,
                                         security_finding: Callable[..., None]) -> None:
    names = [inventory.storage.name] if role == "storage" else \
        [h.name for h in inventory.resources]
    checked = 0
    for name in names:
        host = lab_hosts[name]
        out = host.run("sshd -T -C user=root,host=x,addr=127.0.0.1 2>/dev/null || "
                       "{ command -v sshd >/dev/null || echo no-sshd; }")
        verdict = parse_sshd_password_auth(out.stdout)
        if verdict is None:
            continue  # no OpenSSH server on this host: nothing to log in to
        checked += 1
        if verdict:
            security_finding(
                "ssh-password-auth",
                f"on {name}: sshd accepts passwords (sshd -T: passwordauthentication yes): "
                f"set `PasswordAuthentication no` in /etc/ssh/sshd_config and use keys")
    if not checked:
        pytest.skip(f"no OpenSSH server on the {role} host(s) {shlex.join(names)}")
