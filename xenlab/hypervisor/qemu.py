"""QEMU as the embedded lab's hypervisor: one QEMU process per host a domain lives on,
driven over QMP with the `qemu.qmp` library; live migration to `-incoming` on the
destination's relocation port."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any, Protocol

from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol

from xenlab.checks.xen import meminfo_available_mib
from xenlab.errors import LabError, MigrationError
from xenlab.hosts.runner import Runner
from xenlab.hypervisor.base import (
    DomainState,
    HostFacts,
    HostStates,
    Injection,
    MigrationResult,
    RunningDomain,
)
from xenlab.hypervisor.domconfig import DomainConfig, disk_device
from xenlab.hypervisor.qmp import (
    FINAL_MIGRATION_STATES,
    BlockBacking,
    block_backings,
    domain_state,
    figures_settled,
    memory_mib,
    migration_figures,
    nic_macs,
    vcpu_count,
)
from xenlab.measure.memaudit import MemoryAudit, differing_pages
from xenlab.net.iproute import parse_links

SUN_PATH_MAX = 107  # sockaddr_un.sun_path, less its terminating NUL
QMP_CONNECT_S = 10.0  # connect and greeting: a QEMU that never greets must not hang a run
QMP_COMMAND_S = 120.0  # one command (pmemsave of a guest's memory is the longest)


class _Monitor(QEMUMonitorProtocol):
    """qemu.qmp's synchronous client, with a deadline on connecting too: its `connect()`
    waits for QEMU's greeting forever (seen when Ctrl-C came while QEMU was starting: the
    teardown then never ended).

    Every monitor runs on one event loop, each command under one lock: the guests of a
    maintenance wave migrate from threads of their own, and qemu.qmp's shim would give each
    thread a loop of its own ("This event loop is already running" when two threads shared
    the main one). A loop per monitor was tried: its one run measured the embedded lab's idle
    downtime at 90-107 ms (QEMU's own figure 30-51 ms), where runs on one loop measure
    18-67 ms (QEMU's 3-27 ms); so the monitors share one loop, as they did in one thread."""

    _loop: asyncio.AbstractEventLoop | None = None
    _lock = threading.RLock()

    def __init__(self, address: str) -> None:
        super().__init__(address)
        with _Monitor._lock:
            if _Monitor._loop is None or _Monitor._loop.is_closed():
                _Monitor._loop = self._aloop  # the first monitor's (the main thread's)
        self._aloop = _Monitor._loop

    def _sync(self, future: Any, timeout: float | None = None) -> Any:
        with _Monitor._lock:
            try:
                return super()._sync(future, timeout)
            except KeyboardInterrupt:
                # Ctrl-C inside the loop leaves its task half-run, and the next command on
                # that loop raises it again (seen: the teardown's `quit` interrupted in CI's
                # abuse test): later monitors get a fresh loop
                if _Monitor._loop is self._aloop:
                    _Monitor._loop = asyncio.new_event_loop()
                raise

    def connect_within(self, timeout: float) -> None:
        self._qmp.await_greeting = True
        self._qmp.negotiate = True
        self._sync(self._qmp.connect(self._address), timeout)


MIB = 1 << 20
DEFAULT_BANDWIDTH_MIB_S = 128  # QEMU's own default max-bandwidth


@dataclass(frozen=True)
class DiskImage:
    """Where the domain's disk really is: a byte range of the exported image."""

    path: str
    offset: int
    size: int
    nbd: str = ""  # "HOST:PORT/EXPORT": read over NBD from there instead (path is its file)

    def blockdev(self) -> str:
        if self.nbd:
            server, _, export = self.nbd.partition("/")
            host, _, port = server.rpartition(":")
            return (f"driver=raw,node-name=disk0,file.driver=nbd,file.server.type=inet,"
                    f"file.server.host={host},file.server.port={port},file.export={export}")
        return (f"driver=raw,node-name=disk0,offset={self.offset},size={self.size},"
                f"file.driver=file,file.filename={self.path},file.locking=off")


def serve_over_nbd(host: EmbeddedHost, binary: str, image: str, port: int, export: str,
                   timeout: float = 30.0) -> int:
    """`image` served read-write over NBD on `host`'s address by a QEMU of its own (no
    machine: QMP's blockdev-add, nbd-server-start, block-export-add); its PID."""
    qmp = str(host.directory / "nbd.qmp")  # short: a unix socket's path has 107 bytes
    if len(qmp.encode()) > SUN_PATH_MAX:
        raise LabError(f"{qmp}: longer than a unix socket's {SUN_PATH_MAX} bytes; choose a "
                       "shorter --lab-root")
    Path(qmp).unlink(missing_ok=True)
    proc = host.runner.spawn([binary, "-machine", "none", "-nodefaults", "-display", "none",
                              "-qmp", f"unix:{qmp},server=on,wait=off"],
                             log=str(host.directory / "nbd.log"))
    host.record_process(proc.pid, f"nbd export {export}")
    deadline = time.monotonic() + timeout
    while not Path(qmp).exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise LabError(f"the NBD server QEMU on {host.name} did not start (exit "
                           f"{proc.poll()})")
        time.sleep(0.02)
    monitor = _Monitor(qmp)
    monitor.connect_within(QMP_CONNECT_S)
    monitor.settimeout(QMP_COMMAND_S)
    try:
        for command, args in (
                ("blockdev-add", {"driver": "raw", "node-name": export,
                                  "file": {"driver": "file", "filename": image}}),
                ("nbd-server-start", {"addr": {"type": "inet", "data": {
                    "host": host.address, "port": str(port)}}}),
                ("block-export-add", {"type": "nbd", "id": export, "node-name": export,
                                      "name": export, "writable": True})):
            reply = monitor.cmd_obj({"execute": command, "arguments": args})
            if "error" in reply:
                raise LabError(f"NBD server on {host.name}: {command}: "
                               f"{reply['error'].get('desc', reply)}")
    finally:
        with contextlib.suppress(Exception):
            monitor.close()
    return proc.pid


class EmbeddedHost(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def runner(self) -> Runner: ...
    @property
    def directory(self) -> Path: ...

    def record_process(self, pid: int, what: str) -> None: ...


def tap_name(domain: str, index: int) -> str:
    return f"vif-{domain}.{index}"[:15]


def qemu_argv(*, binary: str, config: DomainConfig, disk: DiskImage, address: IPv4Interface,
              qmp: str, console: str, incoming: str | None = None) -> list[str]:
    """The QEMU command line for a Xen-style domain config (pure)."""
    name = config.name
    append = " ".join(filter(None, [
        f"root={config.get_str('root')}", "ro", config.get_str("extra"),
        "console=ttyS0", "panic=-1", f"xenlab.ip={address.with_prefixlen}",
    ]))
    argv = [
        binary, "-name", name, "-machine", "q35", "-accel", "tcg",
        "-m", str(int(config.get_str("memory") or 0) or 128),
        "-smp", str(int(config.get_str("vcpus") or 1)),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-serial", f"file:{console}",
        "-kernel", config.get_str("kernel"), "-initrd", config.get_str("ramdisk"),
        "-append", append,
        "-blockdev", disk.blockdev(),
        "-device", "virtio-blk-pci,drive=disk0",
        "-qmp", f"unix:{qmp},server=on,wait=off",
    ]
    for i, vif in enumerate(config.vif_fields()):
        argv += ["-netdev", f"tap,id=net{i},ifname={tap_name(name, i)},script=no,downscript=no",
                 "-device", f"virtio-net-pci,netdev=net{i},mac={vif.get('mac', '')},romfile="]
    if incoming:
        argv += ["-incoming", incoming]
    return argv


def qemu_reason(log: str) -> str:
    """The destination QEMU's own reason for a failed incoming migration: its last error
    lines ("qemu-system-x86_64: Length mismatch: pc.ram: ...", "load of migration failed")."""
    said = [line.strip() for line in log.splitlines()
            if line.startswith("qemu-system") or "error" in line.lower()
            or "failed" in line.lower()]
    return "; ".join(said[-3:])[-600:]


def _tail(path: Path, size: int = 16384) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


class QemuDriver(HostStates):
    """Start, query and live-migrate the guest on the embedded lab's resource hosts."""

    toolstack = "qemu"

    def __init__(self, hosts: Sequence[EmbeddedHost], binary: str,
                 resolve_disk: Callable[[str, str], DiskImage],
                 addresses: Mapping[str, IPv4Interface], ports: Mapping[str, int],
                 config_of: Callable[[str, str], DomainConfig]) -> None:
        """Per domain: its guest address and the port its incoming QEMU listens on.
        `config_of(host, domain)`: the domain config as that host has it (a destination is
        started from its own); with a config path for `domain`, the config at that path."""
        self.config_of = config_of
        self.hosts = {h.name: h for h in hosts}
        self.binary = binary
        self.resolve_disk = resolve_disk
        self.addresses = dict(addresses)
        self.ports = dict(ports)
        self._monitors: dict[tuple[str, str], _Monitor] = {}
        self._processes: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self._disk_sources: dict[tuple[str, str], tuple[str, ...]] = {}

    # -- paths ---------------------------------------------------------------------------
    def _qmp_path(self, host: str, domain: str) -> str:
        return str(self.hosts[host].directory / f"{domain}.qmp")

    def console_path(self, host: str, domain: str) -> Path:
        return self.hosts[host].directory / f"{domain}.console"

    # -- QMP -----------------------------------------------------------------------------
    def _monitor(self, host: str, domain: str) -> _Monitor:
        key = (host, domain)
        if key not in self._monitors:
            monitor = _Monitor(self._qmp_path(host, domain))
            monitor.connect_within(QMP_CONNECT_S)
            monitor.settimeout(QMP_COMMAND_S)
            self._monitors[key] = monitor
        return self._monitors[key]

    def _disconnect(self, host: str, domain: str) -> None:
        monitor = self._monitors.pop((host, domain), None)
        if monitor is not None:
            with contextlib.suppress(Exception):
                monitor.close()

    def close(self) -> None:
        """Close every QMP connection (before the QEMU processes are ended)."""
        for host, domain in list(self._monitors):
            self._disconnect(host, domain)

    def qmp(self, host: str, domain: str, command: str, **args: Any) -> Any:
        """One QMP command. The connection is kept open: QEMU serves one QMP client at a
        time, and a client that reconnects at once can meet the last one's session."""
        message = {"execute": command, **({"arguments": args} if args else {})}
        for attempt in (1, 2):
            try:
                reply = self._monitor(host, domain).cmd_obj(message)
                break
            except (OSError, EOFError, QMPError) as exc:
                self._disconnect(host, domain)
                if attempt == 2 or command == "quit":
                    raise LabError(f"QMP of {domain} on {host} unreachable: {exc}") from None
        if "error" in reply:
            raise MigrationError(f"QMP {command} on {host}: {reply['error'].get('desc', reply)}")
        return reply.get("return")

    def state(self, host: str, domain: str) -> DomainState:
        if not Path(self._qmp_path(host, domain)).exists():
            return DomainState.ABSENT
        try:
            return domain_state(self.qmp(host, domain, "query-status"))
        except LabError:
            return DomainState.ABSENT

    def running_domain(self, host: str, domain: str) -> RunningDomain | None:
        """QEMU's own view (QMP): RAM, vCPUs, NIC MACs, the disk's byte range (named by the
        config's disk it resolves to); the bridges are the tap links' masters on the host."""
        if self.state(host, domain) is not DomainState.RUNNING:
            return None
        macs = nic_macs(self.qmp(host, domain, "query-rx-filter"))
        bridges = []
        for i in range(len(macs)):
            out = self.hosts[host].runner.run(["ip", "-j", "link", "show", tap_name(domain, i)],
                                              check=False)
            links = parse_links(out.stdout) if out.rc == 0 else []
            bridges.append(links[0].master if links else "")
        disks = []
        for backing in block_backings(self.qmp(host, domain, "query-block")):
            named = [s for s in self._disk_sources.get((host, domain), ())
                     if self._resolves_to(host, s, backing)]
            disks.append(disk_device(named[0]) if named else
                         f"{backing.path} (offset {backing.offset}, {backing.size} bytes)")
        return RunningDomain(
            domain, host, "QMP query-memory-size-summary, query-cpus-fast, query-rx-filter, "
            "query-block; ip link", memory_mib=memory_mib(
                self.qmp(host, domain, "query-memory-size-summary")),
            vcpus=vcpu_count(self.qmp(host, domain, "query-cpus-fast")), macs=macs,
            bridges=tuple(bridges), disks=tuple(disks))

    def _resolves_to(self, host: str, source: str, backing: BlockBacking) -> bool:
        try:
            disk = self.resolve_disk(host, source)
        except LabError:
            return False
        return (disk.path, disk.offset, disk.size) == (backing.path, backing.offset,
                                                       backing.size)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, host: str, config: DomainConfig, *, incoming: bool = False,
              timeout: float = 30.0, hold: bool = False) -> None:
        """Start the domain on `host` (paused, waiting for a migration, if `incoming`;
        still paused after it, if `hold`)."""
        h = self.hosts[host]
        disk_source = config.disk_fields()[0][0]
        self._disk_sources[(host, config.name)] = tuple(d[0] for d in config.disk_fields())
        disk = self.resolve_disk(host, disk_source)
        qmp = self._qmp_path(host, config.name)
        Path(qmp).unlink(missing_ok=True)
        console = self.console_path(host, config.name)
        uri = f"tcp:{h.address}:{self.ports[config.name]}" if incoming else None
        argv = qemu_argv(binary=self.binary, config=config, disk=disk,
                         address=self.addresses[config.name], qmp=qmp, console=str(console),
                         incoming=uri)
        if hold:
            argv.append("-S")
        log = h.directory / f"{config.name}.qemu.log"
        proc = h.runner.spawn(argv, log=str(log))
        h.record_process(proc.pid, f"qemu {config.name}")
        self._processes[(host, config.name)] = proc
        deadline = time.monotonic() + timeout
        # QMP answers only once QEMU's main loop runs, and so after `-incoming` listens
        while self.state(host, config.name) is DomainState.ABSENT:
            if proc.poll() is not None:
                raise LabError(f"QEMU for {config.name} on {host} exited {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-800:]}")
            if time.monotonic() > deadline:
                raise LabError(f"QEMU for {config.name} on {host} gave no QMP answer in {timeout} s")
            time.sleep(0.02)

    def create(self, host: str, config_path: str) -> None:
        """The protocol's create: QEMU started from the config as `host` has it (the lab
        hands the driver `config_of`, which reads the inventory's config path there)."""
        config = self.config_of(host, config_path)
        if not config.get_str("name"):
            raise LabError(f"{host}: {config_path} names no domain")
        self.start(host, config)

    def destroy(self, host: str, domain: str) -> None:
        self.stop(host, domain)

    def stop(self, host: str, domain: str) -> None:
        if Path(self._qmp_path(host, domain)).exists():
            try:
                self.qmp(host, domain, "quit")
            except (LabError, MigrationError, EOFError):
                pass
            self._disconnect(host, domain)
            Path(self._qmp_path(host, domain)).unlink(missing_ok=True)
        proc = self._processes.pop((host, domain), None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)  # reaped here: its PID is not reused behind the journal

    def kill(self, host: str, domain: str) -> str:
        """SIGKILL to the QEMU this driver started for `domain` on `host` (by its PID)."""
        proc = self._processes.pop((host, domain), None)
        if proc is None or proc.poll() is not None:
            raise LabError(f"no QEMU of {domain} runs on {host}")
        proc.kill()
        proc.wait(timeout=10)
        self._disconnect(host, domain)
        Path(self._qmp_path(host, domain)).unlink(missing_ok=True)
        return f"SIGKILL to QEMU (pid {proc.pid}) of {domain} on {host}"

    def diagnostics(self) -> list[tuple[str, str]]:
        return []  # its logs are files of the lab, saved with it

    def host_facts(self, host: str) -> HostFacts:
        """QEMU runs on the host's own memory: MemAvailable is what a guest can have."""
        runner = self.hosts[host].runner
        version = runner.run([self.binary, "--version"]).stdout.splitlines()
        meminfo = runner.run(["cat", "/proc/meminfo"]).stdout
        return HostFacts(host, self.toolstack, version[0].strip() if version else "QEMU",
                         meminfo_available_mib(meminfo), "MemAvailable")

    def migrate(self, domain: str, source: str, destination: str, timeout: float = 120.0,
                injection: Injection | None = None, *, poll: float = 0.02,
                audit: bool = False, bandwidth_mib_s: float | None = None) -> MigrationResult:
        """Live-migrate `domain` from `source` to `destination` (whose QEMU is started here).
        With `audit`, the destination is held paused after the migration while the source's
        final memory is compared with what it received (this lengthens the guest's pause).
        `injection`: a fault set off while the migration is active (the fault suite);
        `bandwidth_mib_s`: a cap, so that a small guest's migration lasts long enough."""
        dst = self.hosts[destination]
        config = self.config_of(destination, domain)
        self.start(destination, config, incoming=True, hold=audit)
        if bandwidth_mib_s is not None or injection is not None:
            self.qmp(source, domain, "migrate-set-parameters",
                     **{"max-bandwidth": int((bandwidth_mib_s or DEFAULT_BANDWIDTH_MIB_S) * MIB)})
        started = time.time()
        try:
            self.qmp(source, domain, "migrate", uri=f"tcp:{dst.address}:{self.ports[domain]}")
        except (LabError, MigrationError) as exc:
            self.stop(destination, domain)
            raise MigrationError(f"migration of {domain} {source} -> {destination} "
                                 f"did not start: {exc}") from None
        deadline = time.monotonic() + timeout
        figures: dict[str, object] = {}
        while True:
            figures = migration_figures(self.qmp(source, domain, "query-migrate"))
            if figures["status"] in FINAL_MIGRATION_STATES:
                break
            if injection is not None and figures["status"] == "active" \
                    and injection.due(time.time() - started):
                injection.fire(time.time() - started, cancel=lambda: self._cancel(source, domain))
            if time.monotonic() > deadline:
                self.qmp(source, domain, "migrate_cancel")
                figures = self._wait_final(source, domain)
                figures["status"] = "timeout"
                figures["error"] = (f"not completed within {timeout:g} s: cancelled, "
                                    f"{domain} stays on {source}")
                break
            time.sleep(poll)
        memory: MemoryAudit | None = None
        if figures["status"] == "completed" and audit:
            memory = self._audit(domain, source, destination, int(config.get_str("memory")))
            self.qmp(destination, domain, "cont")
        if figures["status"] == "completed":
            # the source says 'completed' once all is sent; the guest runs again only when the
            # destination has loaded it
            if not self._wait_running(destination, domain, timeout=30.0):
                figures["status"] = "failed"
                figures["error"] = f"{domain} did not resume on {destination} within 30 s"
        ended = time.time()
        if figures["status"] == "cancelled" and not figures.get("error"):
            figures["error"] = f"cancelled on request; {domain} stays on {source}"
        if figures["status"] == "completed":
            for _ in range(25):  # the figures settle a moment after 'completed'
                if figures_settled(figures):
                    break
                time.sleep(0.02)
                figures = migration_figures(self.qmp(source, domain, "query-migrate"))
            self.stop(source, domain)
        else:
            said = qemu_reason(_tail(dst.directory / f"{domain}.qemu.log"))
            if said:
                figures["error"] = (f"{figures.get('error') or 'failed'}; the destination's "
                                    f"QEMU said: {said}")
            self.stop(destination, domain)
            if self.state(source, domain) is not DomainState.RUNNING:
                with contextlib.suppress(LabError, MigrationError):
                    self.qmp(source, domain, "cont")  # the guest stays where it was
        if bandwidth_mib_s is not None or injection is not None:
            with contextlib.suppress(LabError, MigrationError):
                self.qmp(source if figures["status"] != "completed" else destination, domain,
                         "migrate-set-parameters",
                         **{"max-bandwidth": int(DEFAULT_BANDWIDTH_MIB_S * MIB)})
        return MigrationResult(
            domain=domain, source=source, destination=destination,
            status=str(figures["status"]), started_at=started, ended_at=ended,
            total_time_ms=figures["total_time_ms"],  # type: ignore[arg-type]
            downtime_ms=figures["downtime_ms"],  # type: ignore[arg-type]
            setup_time_ms=figures["setup_time_ms"],  # type: ignore[arg-type]
            bytes_transferred=figures["bytes_transferred"],  # type: ignore[arg-type]
            switchover_bytes=figures["switchover_bytes"],  # type: ignore[arg-type]
            bandwidth_mbps=figures["bandwidth_mbps"],  # type: ignore[arg-type]
            toolstack=self.toolstack, error=str(figures.get("error", "")),
            command=f"QMP migrate tcp:{dst.address}:{self.ports[domain]}",
            total_time_source="QMP query-migrate", memory_audit=memory, injection=injection,
        )

    def _cancel(self, source: str, domain: str) -> str:
        self.qmp(source, domain, "migrate_cancel")
        return f"QMP migrate_cancel to {domain} on {source}"

    def _audit(self, domain: str, source: str, destination: str, memory_mib: int) -> MemoryAudit:
        """Both sides paused: dump guest-physical memory of each (QMP pmemsave) and compare."""
        dumps = []
        # the destination reports 'inmigrate' while it still loads pages: dumping it then
        # would report pages as corrupted that simply had not arrived yet
        for host, status in ((source, "postmigrate"), (destination, "paused")):
            self._wait_status(host, domain, status)
            path = self.hosts[host].directory / f"{domain}.memory"
            self.qmp(host, domain, "pmemsave", val=0, size=memory_mib << 20, filename=str(path))
            dumps.append(path)
        try:
            return differing_pages(dumps[0].read_bytes(), dumps[1].read_bytes())
        finally:
            for path in dumps:
                path.unlink(missing_ok=True)

    def _wait_status(self, host: str, domain: str, status: str, timeout: float = 30.0) -> None:
        """Until QEMU's own run state (query-status) is exactly `status`."""
        deadline = time.monotonic() + timeout
        while self.qmp(host, domain, "query-status").get("status") != status:
            if time.monotonic() > deadline:
                raise MigrationError(f"{domain} on {host} never reached state {status!r}")
            time.sleep(0.01)

    def _wait_running(self, host: str, domain: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.state(host, domain) is not DomainState.RUNNING:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _wait_final(self, host: str, domain: str, timeout: float = 10.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while True:
            figures = migration_figures(self.qmp(host, domain, "query-migrate"))
            if figures["status"] in FINAL_MIGRATION_STATES or time.monotonic() > deadline:
                return figures
            time.sleep(0.05)
