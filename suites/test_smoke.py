"""Smoke: the lab is up and the guest answers (migrations: test_migration.py)."""

from __future__ import annotations

from testinfra.host import Host

from xenlab.inventory import Inventory
from xenlab.lab import Lab


def test_every_host_answers(lab_hosts: dict[str, Host]) -> None:
    for name, host in lab_hosts.items():
        result = host.run("hostname")
        assert result.rc == 0, f"{name} does not run commands: {result.stderr.strip()}"
        assert result.stdout.strip() == name, f"{name} calls itself {result.stdout.strip()!r}"


def test_guest_answers_ping(observer_host: Host, inventory: Inventory) -> None:
    guest = inventory.guest
    result = observer_host.run("ping -c 3 -i 0.2 -W 2 %s", str(guest.address))
    assert result.rc == 0, (
        f"{guest.name} ({guest.address}) does not answer ping from {inventory.observer}:\n"
        f"{result.stdout.strip()}")


def test_guest_answers_ssh(guest_host: Host, inventory: Inventory) -> None:
    name = guest_host.run("hostname").stdout.strip()
    assert name == inventory.domain.name, f"the guest calls itself {name!r}"


def test_guest_runs_on_exactly_one_host(lab: Lab, inventory: Inventory) -> None:
    assert lab.guest_location() is not None, f"{inventory.domain.name} runs on no single host"
