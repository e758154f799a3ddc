"""A fake hypervisor beside the real drivers (as labgrid keeps driver/fake.py): one domain
in memory, moved between hosts by a script of migrations, each one pausing the guest for a
while in wall-clock time. The fake lab's instruments (xenlab/lab/fake.py) read the same
world, so the meter sees the outage the script asked for. For xenlab's own tests."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from xenlab.errors import LabError
from xenlab.hypervisor.base import (
    DomainState,
    HostFacts,
    HostStates,
    Injection,
    MigrationResult,
    RunningDomain,
)
from xenlab.inventory.model import Inventory, Role


@dataclass(frozen=True)
class FakeMigration:
    """What the fake hypervisor does on one migration."""

    downtime_ms: float = 40.0  # the guest's pause, as the hypervisor reports it
    total_ms: float = 300.0  # the whole migration, pause included
    reconverge_ms: float = 5.0  # the network's extra silence after the guest resumes
    fail: str = ""  # an error: the migration fails and the guest stays where it was
    never_back: bool = False  # the guest never answers again (it is lost)
    reboot: bool = False  # the guest comes back rebooted (continuity must say so)
    reported_downtime_ms: float | None = -1.0  # what it claims (-1: the pause as it was;
    # None: nothing)


@dataclass
class Silence:
    """The guest answered nothing from `start` to `end` (wall clock; None: never again)."""

    start: float
    end: float | None


@dataclass
class FakeWorld:
    """The fake lab's state: where the domain runs, its outages, its disk and its boot."""

    hosts: tuple[str, ...]
    domain: str
    say: Callable[[str], None] = print  # the lab's event log
    script: list[FakeMigration] = field(default_factory=list)  # taken in order, then default
    default: FakeMigration = field(default_factory=FakeMigration)
    copies: dict[str, DomainState] = field(default_factory=dict)
    silences: list[Silence] = field(default_factory=list)
    disk: dict[str, str] = field(default_factory=dict)  # file -> sha256, as the disk has it
    boot_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    booted: float = field(default_factory=time.time)
    free_memory_mib: dict[str, int] = field(default_factory=dict)
    migrations: int = 0
    powered_off: set[str] = field(default_factory=set)
    disk_on: str | None = None  # None: the guest's disk is on the shared storage; else the
    # host whose local disk it secretly is (the maintenance self-test's lie)

    def power_off(self, host: str) -> None:
        self.powered_off.add(host)
        if self.copies.get(host) in (DomainState.RUNNING, DomainState.PAUSED):
            self.copies[host] = DomainState.ABSENT  # a guest still there dies with it
            self.silences.append(Silence(time.time(), None))
        self.say(f"{host} powered off")

    def power_on(self, host: str) -> None:
        self.powered_off.discard(host)
        self.say(f"{host} powered on")

    def disk_reachable(self) -> bool:
        return self.disk_on is None or self.disk_on not in self.powered_off

    def start(self, host: str) -> None:
        self.copies = {h: DomainState.ABSENT for h in self.hosts}
        self.copies[host] = DomainState.RUNNING
        self.say(f"{self.domain} started on {host}")

    def silent_at(self, t: float) -> bool:
        return any(s.start <= t and (s.end is None or t < s.end) for s in self.silences)

    def silent_for_ms(self, since: float, until: float) -> tuple[float, bool]:
        """The longest silence overlapping [since, until], in ms, and whether it is open."""
        longest, still = 0.0, False
        for s in self.silences:
            end = until if s.end is None or s.end > until else s.end
            if end > since and s.start < until:
                longest = max(longest, (end - max(s.start, since)) * 1000.0)
                still = still or s.end is None or s.end > until
        return longest, still

    def write(self, name: str, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if self.disk_reachable():  # else it stays in the page cache: the disk is gone
            self.disk[name] = digest
        return digest

    def next_migration(self) -> FakeMigration:
        self.migrations += 1
        return self.script.pop(0) if self.script else self.default


class FakeHypervisor(HostStates):
    """The Hypervisor protocol over a FakeWorld: nothing runs, time passes for real."""

    toolstack = "fake"

    def __init__(self, world: FakeWorld, inventory: Inventory) -> None:
        self.world = world
        self.inventory = inventory
        self.hosts = {h: None for h in world.hosts}

    def create(self, host: str, config_path: str) -> None:
        if self.world.copies.get(host) is DomainState.RUNNING:
            raise LabError(f"{host}: {self.world.domain} runs there already")
        self.world.copies[host] = DomainState.RUNNING
        self.world.say(f"create {self.world.domain} on {host} from {config_path}")

    def destroy(self, host: str, domain: str) -> None:
        if self.world.copies.get(host, DomainState.ABSENT) is DomainState.ABSENT:
            raise LabError(f"{host}: no {domain} to destroy")
        self.world.copies[host] = DomainState.ABSENT
        self.world.say(f"destroy {domain} on {host}")

    def state(self, host: str, domain: str) -> DomainState:
        if domain != self.world.domain:
            return DomainState.ABSENT
        return self.world.copies.get(host, DomainState.ABSENT)

    def running_domain(self, host: str, domain: str) -> RunningDomain | None:
        if self.state(host, domain) is not DomainState.RUNNING:
            return None
        spec = self.inventory.domain
        return RunningDomain(name=domain, host=host, source="the fake hypervisor's memory",
                             memory_mib=spec.memory, vcpus=spec.vcpus,
                             macs=tuple(v.mac.lower() for v in spec.vifs if v.mac),
                             bridges=tuple(v.bridge for v in spec.vifs if v.bridge))

    def host_facts(self, host: str) -> HostFacts:
        return HostFacts(host=host, toolstack=self.toolstack, version="fake 1.0",
                         free_memory_mib=self.world.free_memory_mib.get(host, 4096),
                         free_memory_source="the fake hypervisor's count")

    def diagnostics(self) -> list[tuple[str, str]]:
        return []

    def migrate(self, domain: str, source: str, destination: str, timeout: float = 300.0,
                injection: Injection | None = None) -> MigrationResult:
        world = self.world
        plan = world.next_migration()
        started, t0 = time.time(), time.monotonic()
        command = f"fake migrate {domain} {source} -> {destination}"
        world.say(f"{command} ({plan})")

        def result(status: str, error: str = "", **figures: float | None) -> MigrationResult:
            world.say(f"migration {world.migrations}: {status} {error}".rstrip())
            return MigrationResult(domain=domain, source=source, destination=destination,
                                   status=status, started_at=started, ended_at=time.time(),
                                   toolstack=self.toolstack, error=error, command=command,
                                   injection=injection, total_time_source="the fake's script",
                                   **figures)  # type: ignore[arg-type]

        if world.copies.get(source) is not DomainState.RUNNING:
            return result("failed", f"{domain} is not running on {source}")
        precopy_s = max(0.0, plan.total_ms - plan.downtime_ms) / 1000.0
        while time.monotonic() - t0 < precopy_s:  # the transfer, while the guest runs
            if injection is not None and injection.due(time.monotonic() - t0):
                injection.fire(time.monotonic() - t0, cancel=lambda: "fake cancel requested")
                return result("failed" if not injection.cancel else "cancelled",
                              f"the migration was interrupted: {injection.done}")
            if time.monotonic() - t0 > timeout:
                return result("failed", f"timed out after {timeout:g} s")
            time.sleep(0.005)
        if plan.fail:
            return result("failed", plan.fail)
        paused = time.time()
        world.copies[source] = DomainState.PAUSED
        silence = Silence(paused, None)
        world.silences.append(silence)
        time.sleep(plan.downtime_ms / 1000.0)
        paused_ms = (time.time() - paused) * 1000.0  # the pause as it was (a late wake-up)
        world.copies[source] = DomainState.ABSENT
        world.copies[destination] = DomainState.RUNNING
        if not plan.never_back:
            silence.end = time.time() + plan.reconverge_ms / 1000.0
        if plan.reboot:
            world.boot_id, world.booted = str(uuid.uuid4()), time.time()
        reported = paused_ms if plan.reported_downtime_ms == -1.0 else plan.reported_downtime_ms
        return result("completed", downtime_ms=reported,
                      total_time_ms=(time.monotonic() - t0) * 1000.0)


def fake_world(inventory: Inventory, say: Callable[[str], None]) -> FakeWorld:
    return FakeWorld(hosts=tuple(h.name for h in inventory.by_role(Role.RESOURCE)),
                     domain=inventory.domain.name, say=say)
