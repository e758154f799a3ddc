"""Hosts: every lab name resolves to the inventory's address everywhere, every host answers,
and each role has the tools it needs."""

from __future__ import annotations

from collections.abc import Callable

from testinfra.host import Host

from xenlab.checks.names import resolved_address
from xenlab.checks.tools import required_tools
from xenlab.inventory import Inventory
from xenlab.lab import Lab


def test_lab_names_resolve(host_name: str, host_of: Callable[[str], Host],
                           inventory: Inventory) -> None:
    host = host_of(host_name)
    wrong = []
    for spec in inventory.hosts:
        # getent where there is one; busybox guests only have ping to resolve with /etc/hosts
        result = host.run("getent hosts %s || ping -c 1 -W 1 %s", spec.name, spec.name)
        found = resolved_address(result.stdout)
        if found != str(spec.address):
            wrong.append(f"{spec.name} -> {found or 'does not resolve'} "
                         f"(inventory: {spec.address})")
    assert not wrong, f"on {host_name}: " + "; ".join(wrong)


def test_host_answers(lab_host_name: str, host_of: Callable[[str], Host],
                      observer_host: Host, inventory: Inventory) -> None:
    result = host_of(lab_host_name).run("uname -n")
    assert result.rc == 0, f"{lab_host_name} runs no commands: {result.stderr.strip()}"
    address = str(inventory.host(lab_host_name).address)
    ping = observer_host.run("ping -c 2 -i 0.2 -W 2 %s", address)
    assert ping.rc == 0, f"{lab_host_name} ({address}) does not answer ping from {inventory.observer}"


def test_role_tools_present(lab_host_name: str, host_of: Callable[[str], Host],
                            inventory: Inventory, lab: Lab) -> None:
    spec = inventory.host(lab_host_name)
    host = host_of(lab_host_name)
    missing = [f"{t.command} (package {t.package}: {t.why})"
               for t in required_tools(spec.role, lab.hypervisor.toolstack, lab.features)
               if not host.exists(t.command)]
    assert not missing, f"missing on {lab_host_name}: " + ", ".join(missing)
