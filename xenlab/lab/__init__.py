"""Labs: the embedded lab built on this machine, and real labs reached over SSH."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from testinfra.host import Host

from xenlab.hosts.runner import Runner
from xenlab.hypervisor.base import MigrationResult, RunningDomain
from xenlab.hypervisor.qmp import BlockBacking
from xenlab.inventory.model import Inventory
from xenlab.storage.lvm import LvmReports


class Lab(Protocol):
    """What fixtures and suites may use of a lab, embedded or real."""

    inventory: Inventory
    probe_python: str  # the python3 that runs probes on lab hosts

    @property
    def probe_binary(self) -> str | None: ...  # the C prober, where hosts can run it

    @property
    def aoe_device(self) -> str: ...
    def lvm_views(self) -> list[LvmReports]: ...
    def guest_disk(self) -> BlockBacking: ...
    def relocation_listener(self, destination: str) -> AbstractContextManager[None]: ...

    def up(self) -> None: ...
    def down(self) -> None: ...
    def host(self, name: str) -> Host: ...
    def runner(self, name: str) -> Runner: ...
    def guest_location(self) -> str | None: ...
    def running_guest(self) -> RunningDomain | None: ...  # as the hypervisor reports it
    def migrate(self, destination: str) -> MigrationResult: ...
