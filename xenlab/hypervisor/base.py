"""What every toolstack driver returns: typed records, never scraped text."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from xenlab.measure.memaudit import MemoryAudit


class DomainState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # e.g. an incoming domain waiting for its migration
    STOPPED = "stopped"  # migrated away, shut down or crashed
    ABSENT = "absent"


@dataclass(frozen=True)
class MigrationResult:
    domain: str
    source: str
    destination: str
    status: str  # "completed", "failed", "cancelled", ...
    started_at: float  # wall clock (time.time()) when the migration was requested
    ended_at: float
    total_time_ms: float | None = None  # the hypervisor's own figures ...
    downtime_ms: float | None = None
    setup_time_ms: float | None = None
    bytes_transferred: int | None = None
    switchover_bytes: int | None = None  # left to send when the guest paused (QEMU's
    bandwidth_mbps: float | None = None  # downtime-bytes and mbps; xl and libvirt: None)
    toolstack: str = ""
    error: str = ""
    # what the toolstack did and said, typed: nothing is passed on in an untyped side channel
    command: str = ""
    output: str = field(default="", compare=False)  # the tail of its own output
    events_s: dict[str, float] = field(default_factory=dict)  # xl/xm: event -> s after start
    total_time_source: str = ""  # where total_time_ms comes from: the hypervisor or the clock
    note: str = ""  # why a hypervisor figure is missing (libvirt's libxl keeps no job figures)
    memory_audit: MemoryAudit | None = None  # --lab-memory-audit (QMP)
    injection: Injection | None = None  # the fault set off in flight, if any
    cleanup: tuple[str, ...] = ()  # what the lab cleared up after a faulted migration

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def wall_time_ms(self) -> float:
        return (self.ended_at - self.started_at) * 1000.0

    @property
    def transfer_bound_ms(self) -> float | None:
        """The shortest pause the transfer figures allow: what was left to send at the
        switch over the bandwidth (None where the hypervisor does not report both)."""
        if self.switchover_bytes is None or not self.bandwidth_mbps:
            return None
        return self.switchover_bytes * 8 / (self.bandwidth_mbps * 1e6) * 1000.0


@dataclass(frozen=True)
class RunningDomain:
    """A running domain as its hypervisor reports it, not as its config file says; a
    field the hypervisor does not report is None (and is then not judged)."""

    name: str
    host: str
    source: str  # what was asked, e.g. "xl list; xl list -l"
    memory_mib: int | None = None
    vcpus: int | None = None
    macs: tuple[str, ...] | None = None  # lower case, in device order
    bridges: tuple[str, ...] | None = None
    disks: tuple[str, ...] | None = None  # the devices or files behind the guest's disks


@dataclass(frozen=True)
class HostFacts:
    """A resource host as its hypervisor counts it."""

    host: str
    toolstack: str
    version: str  # e.g. "Xen 4.17.5", "libvirt 9.0.0 (Xen 4.17.0)", "QEMU 7.2.15"
    free_memory_mib: int | None  # what a new domain can have, as the hypervisor counts it
    free_memory_source: str  # e.g. "xl info free_memory", "virsh freecell", "MemAvailable"
    virt_caps: frozenset[str] | None = None  # Xen's paging modes (None: not reported)
    xen_caps: str = ""


class DomainQueries(Protocol):
    """What every toolstack driver answers about a domain."""

    def running_on(self, domain: str) -> list[str]: ...
    def running_domain(self, host: str, domain: str) -> RunningDomain | None: ...


class Hypervisor(DomainQueries, Protocol):
    """The one contract between labs (and so suites) and a toolstack: one driver per
    toolstack (xenlab/hypervisor/registry.py says which)."""

    toolstack: str

    # create: start the domain on `host` from its config as that host has it (xl and xm:
    # the Xen config file; libvirt: the domain XML; QEMU: the Xen-style config the lab
    # wrote for that host); destroy: end it there at once, no shutdown
    def create(self, host: str, config_path: str) -> None: ...
    def destroy(self, host: str, domain: str) -> None: ...
    def states(self, domain: str) -> dict[str, DomainState]: ...
    def copies(self, domain: str) -> list[tuple[str, str, DomainState]]: ...  # see HostStates
    def host_facts(self, host: str) -> HostFacts: ...
    def diagnostics(self) -> list[tuple[str, str]]: ...  # (name, read-only shell command)
    def migrate(self, domain: str, source: str, destination: str, timeout: float = 300.0,
                injection: Injection | None = None) -> MigrationResult: ...


class HostStates:
    """`states` and `running_on` for a driver that can tell one host's state of a domain."""

    hosts: Mapping[str, Any]  # the driver's hosts, by name

    def state(self, host: str, domain: str) -> DomainState:
        raise NotImplementedError

    def states(self, domain: str) -> dict[str, DomainState]:
        return {name: self.state(name, domain) for name in self.hosts}

    def running_on(self, domain: str) -> list[str]:
        return [h for h, s in self.states(domain).items() if s is DomainState.RUNNING]

    def copies(self, domain: str) -> list[tuple[str, str, DomainState]]:
        """Every copy of `domain` on every host, (host, name, state): a driver whose
        toolstack names a half-received copy differently (xl's `vm1--incoming`) lists
        those too."""
        return [(h, domain, s) for h, s in self.states(domain).items()
                if s is not DomainState.ABSENT]


def is_copy_of(name: str, domain: str) -> bool:
    """`name` is `domain` or a toolstack's copy of it in transit (`vm1--incoming`)."""
    return name == domain or name.startswith(f"{domain}--")


def sole_host(driver: DomainQueries, domain: str) -> str | None:
    """The one host `domain` runs on (None: on none, or on several)."""
    running = driver.running_on(domain)
    return running[0] if len(running) == 1 else None


def running_copy(driver: DomainQueries, domain: str) -> RunningDomain | None:
    """The running domain as its hypervisor reports it, where it runs on one host."""
    host = sole_host(driver, domain)
    return None if host is None else driver.running_domain(host, domain)


def kib_to_mib(kib: int) -> int:
    """Memory in KiB -> whole MiB, to the nearest (Xen and libvirt add a few pages)."""
    return round(kib / 1024)


class MigrationFault(enum.StrEnum):
    """What the fault suite does to a migration in flight."""

    LINK_CUT = "link-cut"  # nftables drops the migration's transport port on the destination
    DESTINATION_KILLED = "destination-killed"  # SIGKILL to the destination's receiving process
    CANCEL = "cancel"  # the toolstack is asked to cancel (QMP migrate_cancel; SIGINT to xl)


@dataclass
class Injection:
    """A fault a driver sets off once, `after_s` seconds into the transfer: `action` (the
    lab's: cut a link, kill a process) or, with `cancel`, the driver's own cancel."""

    after_s: float
    action: Callable[[], str] | None = None  # returns what it did, in words
    cancel: bool = False
    done: str = ""  # what was done ("" while not yet)
    at_s: float | None = None  # seconds after the migration was requested
    failed: bool = False
    missed: str = ""  # why it was never set off, when the migration ended first

    def due(self, elapsed_s: float) -> bool:
        return not self.done and elapsed_s >= self.after_s

    def fire(self, elapsed_s: float, cancel: Callable[[], str] | None = None) -> None:
        """Set the fault off (once); a failing action is recorded, never raised: the
        migration under test must still be waited for."""
        self.at_s = elapsed_s
        started = time.monotonic()
        try:
            if self.cancel:
                if cancel is None:
                    raise NotImplementedError("this toolstack cannot cancel a migration")
                self.done = cancel()
            else:
                assert self.action is not None
                self.done = self.action()
        except Exception as exc:  # noqa: BLE001 - recorded for the report, judged by the suite
            self.done, self.failed = f"injection failed: {type(exc).__name__}: {exc}", True
        self.done += f" ({(time.monotonic() - started) * 1000:.0f} ms)"

    def as_dict(self) -> dict[str, object]:
        return {"after_s": self.after_s, "at_s": self.at_s, "done": self.done,
                "failed": self.failed, "missed": self.missed}
