"""A fake lab beside the real ones (as labgrid keeps driver/fake.py): `kind: fake` in an
inventory gives a lab whose guest lives in memory (xenlab/hypervisor/fake.py). It has a
journal, a directory under the lab root, a state machine, keep and teardown like every lab
built here, but no machines: its instruments (meter, TCP stream, guest witness, guest data)
are the fakes below, which read the same world, so the meter sees exactly the outage the
fake hypervisor made. xenlab's own tests drive the whole flow through it with pytester
(tests/plugin/test_fake_flow.py); nothing of it touches the network or runs as root."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from testinfra.host import Host

from xenlab.errors import LabError
from xenlab.hosts.runner import Runner
from xenlab.hypervisor.base import (
    DomainState,
    Injection,
    MigrationFault,
    MigrationResult,
)
from xenlab.hypervisor.fake import FakeHypervisor, FakeWorld, fake_world
from xenlab.inventory.model import Inventory
from xenlab.lab import guest_of
from xenlab.lab import journal as jr
from xenlab.lab.built import BuiltLab
from xenlab.measure.continuity import GuestState, MemcheckStatus
from xenlab.measure.ping import PingRun, parse_ping
from xenlab.measure.stream import StreamResult
from xenlab.progress import Progress
from xenlab.storage.lvm import LvmReports
from xenlab.storage.ref import DiskRef

EVENTS = "fake/events.log"  # under the lab directory: what the fake world did, in order


class FakeLab(BuiltLab):
    """The Lab protocol over a FakeWorld (see the module's docstring)."""

    probe_python = "python3"
    fault_timeout_s = 10.0

    def __init__(self, inventory: Inventory, *, progress: Progress, root: Path,
                 cache: Path) -> None:
        super().__init__(inventory, progress, root, cache)
        self.world: FakeWorld | None = None

    def _say(self, line: str) -> None:
        path = self.directory / EVENTS
        with path.open("a") as log:
            log.write(f"{time.time():.3f} {line}\n")

    def enter_network(self) -> None:
        self.journal = jr.Journal.create(self.inventory.lab, self.directory)
        (self.directory / EVENTS).parent.mkdir(exist_ok=True)
        self.world = fake_world(self.inventory, self._say)
        self._say(f"lab {self.inventory.lab}: network (nothing: the lab is fake)")

    def enter_storage(self) -> None:
        self._say("storage (nothing: the lab is fake)")

    def enter_guest_ready(self) -> None:
        self._say("guest ready")

    def enter_vm_running(self) -> None:
        assert self.world is not None
        self._driver = FakeHypervisor(self.world, self.inventory)
        self.world.start(self.world.hosts[0])

    def _forget_hosts(self) -> None:
        self._driver = None
        self.world = None

    def _quiesce(self) -> None:
        if self.world is not None:
            with contextlib.suppress(OSError):
                self._say("teardown")

    @property
    def the_world(self) -> FakeWorld:
        if self.world is None:
            raise LabError(f"lab {self.inventory.lab} is not up")
        return self.world

    # what a lab with machines offers: the fake has none
    def host(self, name: str) -> Host:
        raise LabError(f"lab {self.inventory.lab} is fake: {name} is no machine to log in "
                       "to (its instruments are xenlab.lab.fake's)")

    def runner(self, name: str) -> Runner:
        raise LabError(f"lab {self.inventory.lab} is fake: {name} runs no commands")

    @property
    def probe_binary(self) -> str | None:
        return None

    @property
    def aoe_device(self) -> str:
        return f"/dev/etherd/e{self.inventory.aoe.shelf}.{self.inventory.aoe.slot}"

    def lvm_views(self) -> list[LvmReports]:
        return []

    def device_ref(self, host: str, path: str) -> DiskRef | None:
        return None

    def guest_disk_ref(self) -> DiskRef | None:
        return None

    @contextlib.contextmanager
    def relocation_listener(self, destination: str) -> Iterator[None]:
        yield

    def migrate(self, destination: str, *, fault: MigrationFault | None = None,
                timeout: float | None = None, guest: str = "") -> MigrationResult:
        name = guest_of(self.inventory, guest).name
        source = self.guest_location(name) or self.the_world.hosts[0]
        injection = None
        if fault is not None:
            injection = (Injection(0.05, cancel=True) if fault is MigrationFault.CANCEL else
                         Injection(0.05, action=lambda: f"fake {fault.value} on {destination}"))
        return self.hypervisor.migrate(
            name, source, destination,
            timeout=timeout or float(self.inventory.limits.migration_timeout_s),
            injection=injection)

    # faults: the fake offers the fault suite (and its self-test), not a storage outage
    def fault_injector(self) -> FakeLab:
        return self

    def storage_faults(self) -> None:
        return None

    def power_control(self) -> FakePower:
        return FakePower(self.the_world)

    def start_duplicate(self, host: str) -> None:
        self.the_world.copies[host] = DomainState.RUNNING  # the self-test's lie
        self._say(f"a second {self.the_world.domain} started on {host} (the self-test)")

    def stop_duplicate(self, host: str) -> None:
        self.the_world.copies[host] = DomainState.ABSENT


class FakePower:
    """A fake host's power: off, a guest still on it dies; on, it is back at once."""

    def __init__(self, world: FakeWorld) -> None:
        self.world = world

    def off(self, host: str) -> str:
        self.world.power_off(host)
        return f"{host} powered off (fake)"

    def on(self, host: str) -> str:
        self.world.power_on(host)
        return f"{host} powered on (fake)"


class FakeProber:
    """The meter over the fake world: one probe every `interval_s`, answered unless the
    world is silent then; the lines are iputils' `ping -D -O` format, parsed as the real
    prober's are."""

    def __init__(self, world: FakeWorld, target: str, interval_s: float) -> None:
        self.world = world
        self.target = target
        self.interval_s = interval_s
        self.started = 0.0
        self._lines: list[str] = []
        self._sent = 0
        self._received = 0
        self.remote_pid = None

    def start(self, timeout: float = 10.0) -> None:
        self.started = time.time()

    @property
    def lines(self) -> list[str]:
        now = time.time()
        while self.started + (self._sent + 1) * self.interval_s <= now:
            self._sent += 1
            t = self.started + self._sent * self.interval_s
            seq = self._sent % 65536
            if self.world.silent_at(t):
                self._lines.append(f"[{t + self.interval_s:.6f}] no answer yet for icmp_seq={seq}")
            else:
                self._received += 1
                self._lines.append(f"[{t + 0.0001:.6f}] 64 bytes from {self.target}: "
                                   f"icmp_seq={seq} ttl=64 time=0.100 ms")
        return self._lines

    def stop(self, timeout: float = 10.0) -> PingRun:
        lines = list(self.lines)
        lines.append(f"{self._sent} packets transmitted, {self._received} received")
        return parse_ping(lines, self.interval_s)


class FakeStream:
    """The TCP stream over the fake world: its longest stall is the world's longest silence."""

    def __init__(self, world: FakeWorld, interval_s: float) -> None:
        self.world = world
        self.interval_s = interval_s
        self.started = 0.0

    def start(self, timeout: float = 15.0) -> None:
        self.started = time.time()

    def stop(self, timeout: float = 30.0) -> StreamResult:
        now = time.time()
        stall, still = self.world.silent_for_ms(self.started, now)
        sent = int((now - self.started) / self.interval_s)
        echoed = sent - (int(stall / 1000.0 / self.interval_s) if still else 0)
        return StreamResult(sent=sent, echoed=echoed, in_order=True, error="",
                            longest_stall_ms=round(stall, 1), stall_open=still)


class FakeWitness:
    """The guest's continuity witnesses over the fake world (its boot, clock and disk)."""

    kit = None

    def __init__(self, world: FakeWorld) -> None:
        self.world = world
        self.reads = 0

    def ensure(self, scenario: str) -> None:
        self.world.write("continuity", scenario.encode())

    def state(self, sweep: bool = False) -> GuestState:
        world = self.world
        if not any(s is DomainState.RUNNING for s in world.copies.values()):
            raise LabError(f"{world.domain} runs nowhere")
        self.reads += 1
        uptime = time.time() - world.booted
        return GuestState(boot_id=world.boot_id, uptime_s=uptime, process_alive=True,
                          file_sha256=world.disk.get("continuity", ""),
                          memcheck=MemcheckStatus(pages=4096, verified=4096 * self.reads,
                                                  mismatches=0, first_bad_page=-1,
                                                  uptime_ms=int(uptime * 1000),
                                                  sweeps=self.reads))

    def close(self) -> None:
        pass


class FakeGuestData:
    """What the fault suite writes in the guest and reads back, over the fake world's disk."""

    def __init__(self, world: FakeWorld) -> None:
        self.world = world

    def write(self, name: str) -> str:
        return self.world.write(f"witness-{name}", os.urandom(64))

    def read_back(self, name: str) -> str | None:
        if not any(s is DomainState.RUNNING for s in self.world.copies.values()):
            return None
        return self.world.disk.get(f"witness-{name}")

    def corrupt(self, name: str) -> None:
        self.world.write(f"witness-{name}", bytes(64))

    def log_lines(self) -> int:
        return 0

    def io_errors(self, since: int) -> tuple[str, ...]:
        return ()
