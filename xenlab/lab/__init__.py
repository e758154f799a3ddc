"""Labs: the embedded lab built on this machine, and real labs reached over SSH."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from testinfra.host import Host

from xenlab.errors import LabError
from xenlab.hosts.runner import Runner
from xenlab.hypervisor.base import Hypervisor, MigrationFault, MigrationResult, RunningDomain
from xenlab.inventory.model import Guest, Inventory
from xenlab.lab.power import PowerControl
from xenlab.provision.steps import Outcome
from xenlab.storage.lvm import LvmReports
from xenlab.storage.ref import DiskRef


def guest_of(inventory: Inventory, guest: str = "") -> Guest:
    """The lab's guest of that name ("": the first, the article's vm1); LabError: none."""
    try:
        return inventory.guest_named(guest)
    except KeyError:
        names = ", ".join(g.name for g in inventory.guests)
        raise LabError(f"lab {inventory.lab} has no guest {guest!r} (its guests: {names})"
                       ) from None


class FaultInjector(Protocol):
    """What the fault suite does to a lab (offered only by labs built here: it kills
    processes and cuts links)."""

    fault_timeout_s: float  # how long a faulted migration may take on this lab

    def guest_location(self, guest: str = "") -> str | None: ...
    def migrate(self, destination: str, *, fault: MigrationFault | None = None,
                timeout: float | None = None, guest: str = "") -> MigrationResult: ...
    def copies(self, guest: str = "") -> list[tuple[str, str, str]]: ...  # (host, domain, state)
    def start_duplicate(self, host: str) -> None: ...  # the self-test's lie
    def stop_duplicate(self, host: str) -> None: ...


class StorageFaults(Protocol):
    """The storage target stopped under a running guest (offered by a lab whose guest disk
    goes through AoE: the storage-outage feature)."""

    def storage_outage(self, seconds: float) -> str: ...  # what was done, in words


class Lab(Protocol):
    """What fixtures and suites may use of a lab, embedded or real: every lab implements
    all of it. What only some labs can do is a feature (xenlab/lab/features.py)."""

    inventory: Inventory
    probe_python: str  # the python3 that runs probes on lab hosts

    @property
    def features(self) -> frozenset[str]: ...
    @property
    def hypervisor(self) -> Hypervisor: ...  # the toolstack's driver
    def fault_injector(self) -> FaultInjector | None: ...  # None: no fault suite here
    def storage_faults(self) -> StorageFaults | None: ...  # None: no storage outage here
    def provisioner(self) -> Provisionable | None: ...  # None: xenlab sets nothing up here
    def power_control(self) -> PowerControl | None: ...  # None: no power pull here (now)
    def keep(self) -> str: ...  # leave it up after the run; says so (a real lab always stays)
    def save_logs(self, target: Path) -> Path: ...  # what the lab logged, into target/<lab>

    @property
    def probe_binary(self) -> str | None: ...  # the C prober, where hosts can run it

    @property
    def aoe_device(self) -> str: ...
    def lvm_views(self) -> list[LvmReports]: ...
    def device_ref(self, host: str, path: str) -> DiskRef | None: ...  # None: no device
    def guest_disk_ref(self) -> DiskRef | None: ...  # what the running guest's disk reads
    def relocation_listener(self, destination: str) -> AbstractContextManager[None]: ...

    def up(self) -> None: ...
    def down(self) -> None: ...
    def host(self, name: str) -> Host: ...
    def runner(self, name: str) -> Runner: ...
    # each guest by its name ("": the first); where it runs, as the hypervisor says
    def guest_location(self, guest: str = "") -> str | None: ...
    def running_guest(self, guest: str = "") -> RunningDomain | None: ...
    def migrate(self, destination: str, *, guest: str = "") -> MigrationResult: ...


class Provisionable(Protocol):
    """A lab whose hosts xenlab sets up the article's way when asked (a real lab, with the
    provisioning feature): offered by `Lab.provisioner()`."""

    def provision(self, allow_wipe: tuple[str, ...] = ()) -> list[Outcome]: ...
