"""How a real lab's hosts are reached: one runner factory for every connection kind, the
inventory's known_hosts (per host or lab-wide) passed to OpenSSH and named in the hint."""

from __future__ import annotations

from pathlib import Path

from xenlab.hosts.runner import describe_ssh_failure, host_runner
from xenlab.inventory import parse_inventory
from xenlab.inventory.model import Connection

REPO = Path(__file__).parents[2]
XL = (REPO / "inventories/xl.yml").read_text()


def _inventory(text: str):  # type: ignore[no-untyped-def]
    return parse_inventory(text, "xl.yml")


def test_a_local_host_runs_here_for_real() -> None:
    inv = _inventory(XL.replace("xen_storage: {ansible_host: 192.0.2.10}",
                                "xen_storage: {ansible_host: 192.0.2.10, "
                                "ansible_connection: local}"))
    spec = inv.host("xen_storage")
    assert spec.connection is Connection.LOCAL
    runner = host_runner(spec)
    assert runner.prefix == [] and runner.run(["sh", "-c", "echo $$"]).stdout.strip().isdigit()


def test_ssh_hosts_get_the_inventorys_known_hosts(tmp_path: Path) -> None:
    lab_wide = XL.replace("      observer: xen_storage\n",
                          "      observer: xen_storage\n      known_hosts: ~/lab/known\n")
    per_host = lab_wide.replace(
        "xen_resource_2: {ansible_host: 192.0.2.12,",
        "xen_resource_2: {ansible_host: 192.0.2.12, xenlab_known_hosts: /etc/xenlab/known,")
    inv = _inventory(per_host)
    one, two = inv.host("xen_resource_1"), inv.host("xen_resource_2")
    assert one.known_hosts == str(Path("~/lab/known").expanduser())  # the lab's
    assert two.known_hosts == "/etc/xenlab/known"  # its own beats the lab's
    argv = host_runner(two).argv(["xl", "info"])
    assert "UserKnownHostsFile=/etc/xenlab/known" in argv and argv[-1] == "xl info"
    assert argv[argv.index("-i") + 1] == str(Path("~/.ssh/id_ed25519").expanduser())
    assert _inventory(XL).host("xen_resource_1").known_hosts is None


def test_the_host_key_hint_names_the_inventorys_file() -> None:
    text = "No ED25519 host key is known for 192.0.2.12\r\nHost key verification failed.\r\n"
    hint = describe_ssh_failure("xen_resource_2", "192.0.2.12", text, "/etc/xenlab/known")
    assert "ssh-keyscan 192.0.2.12 >> /etc/xenlab/known" in hint
    assert "~/.ssh/known_hosts" in describe_ssh_failure("h", "192.0.2.12", text)


def test_testinfra_shares_one_connection_per_host(tmp_path: Path) -> None:
    """The ssh command testinfra builds carries the run's ControlPath intact (testinfra
    %-formats its command line: a raw %C would break it)."""
    from xenlab.hosts.access import ssh_host

    spec = _inventory(XL).host("xen_resource_1")
    host = ssh_host(spec, "/etc/xenlab/known", control_path=str(tmp_path / "%C"))
    cmd, args = host.backend._build_ssh_command("true")  # type: ignore[attr-defined]
    line = host.backend.quote(" ".join(cmd), *args)  # type: ignore[attr-defined]
    assert f"-o ControlPath={tmp_path}/%C" in line and "ControlMaster=auto" in line
    assert "UserKnownHostsFile=/etc/xenlab/known" in line
