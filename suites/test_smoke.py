"""Smoke: the lab is up, the guest answers, and it live-migrates around the resource hosts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from testinfra.host import Host

from xenlab.hypervisor.base import MigrationResult
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


@pytest.mark.destructive
def test_live_migration(hop: tuple[str, str], lab: Lab,
                        migrate: Callable[[str], MigrationResult], inventory: Inventory,
                        observer_host: Host, guest_host: Host) -> None:
    source, destination = hop
    domain = inventory.domain.name
    assert lab.guest_location() == source, f"{domain} is not on {source} before the migration"
    boot_before = guest_host.file("/proc/sys/kernel/random/boot_id").content_string.strip()
    result = migrate(destination)
    assert result.completed, f"migration {source} -> {destination}: {result.status} {result.error}"
    assert lab.guest_location() == destination, (
        f"{domain} should run on {destination} only; runs on {lab.guest_location()}")
    ping = observer_host.run("ping -c 3 -i 0.2 -W 2 %s", str(inventory.guest.address))
    assert ping.rc == 0, f"{domain} does not answer ping after migrating to {destination}"
    boot_after = guest_host.file("/proc/sys/kernel/random/boot_id").content_string.strip()
    assert boot_after == boot_before, (
        f"{domain} rebooted instead of migrating: boot_id {boot_before} -> {boot_after}")
