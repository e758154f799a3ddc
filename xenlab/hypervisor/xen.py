"""xl and xm toolstack drivers: commands run on the resource hosts (dom0s) over SSH.

Pure parsers of `xl list`, `xl list -l` (JSON), `xl info` and `xl -v migrate`'s progress lines
are kept apart from the driver; each is tested against outputs saved from real dom0s.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from testinfra.host import Host

from xenlab.errors import LabError, ParseError
from xenlab.hosts.runner import Runner
from xenlab.hypervisor.base import (
    DomainState,
    HostFacts,
    HostStates,
    Injection,
    MigrationResult,
    RunningDomain,
    is_copy_of,
)


@dataclass(frozen=True)
class ListedDomain:
    name: str
    domid: int
    memory: int
    vcpus: int
    state: str  # the six flag columns, e.g. "r-----", "-b----", "--p---"


_LIST_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([-rbpscd]{6})\s+[\d.]+")


def parse_xl_list(text: str) -> list[ListedDomain]:
    """`xl list` / `xm list` table: Name ID Mem VCPUs State Time(s)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].split()[:2] == ["Name", "ID"]:
        raise ParseError("xl list", "no 'Name ID Mem VCPUs State Time(s)' header", text)
    rows = []
    for line in lines[1:]:
        match = _LIST_ROW.match(line)
        if not match:
            raise ParseError("xl list", f"unexpected row {line!r}", text)
        name, domid, mem, vcpus, state = match.groups()
        rows.append(ListedDomain(name, int(domid), int(mem), int(vcpus), state))
    return rows


def listed_state(domain: ListedDomain | None) -> DomainState:
    if domain is None:
        return DomainState.ABSENT
    flags = domain.state
    if "c" in flags or "s" in flags or "d" in flags:
        return DomainState.STOPPED
    if "p" in flags:
        return DomainState.PAUSED
    return DomainState.RUNNING  # r (running) or b (blocked, i.e. idle) are both alive


def parse_xl_info(text: str) -> dict[str, str]:
    """`xl info` / `xm info`: "key   : value" lines (values may contain ':')."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():  # warnings and the like: skipped
            info[key.strip()] = value.strip()
    for required in ("host", "xen_caps"):
        if required not in info:
            raise ParseError("xl info", f"no {required!r} line", text)
    if "xen_version" not in info and "xen_major" not in info:  # xm (Xen 3) has major/minor
        raise ParseError("xl info", "no 'xen_version' (or xm's 'xen_major') line", text)
    return info


def xen_host_facts(info: Mapping[str, str], host: str, toolstack: str) -> HostFacts:
    """`xl info` / `xm info` -> the host as Xen counts it (free_memory: what a new domain
    can be given, in MiB)."""
    version = info.get("xen_version") or (
        f"{info.get('xen_major', '?')}.{info.get('xen_minor', '?')}{info.get('xen_extra', '')}")
    try:
        free = int(info["free_memory"])
    except (KeyError, ValueError):
        raise ParseError(f"{toolstack} info", "no integer free_memory") from None
    caps = info.get("virt_caps")
    return HostFacts(host, toolstack, f"Xen {version}", free, f"{toolstack} info free_memory",
                     frozenset(caps.split()) if caps is not None else None,
                     info.get("xen_caps", ""))


def facts_blocker(facts: HostFacts, guest_type: str, hap: bool = True) -> str | None:
    """live_migration_blocker on a host's facts (no virt_caps reported: not blocked)."""
    info = {"host": facts.host, "xen_caps": facts.xen_caps}
    if facts.virt_caps is not None:
        info["virt_caps"] = " ".join(sorted(facts.virt_caps))
    return live_migration_blocker(info, guest_type, hap)


def live_migration_blocker(info: Mapping[str, str], guest_type: str,
                           hap: bool = True) -> str | None:
    """Why a guest of `guest_type` cannot be live-migrated on this hypervisor, or None.

    Live migration tracks dirty pages: PV guests need shadow paging for it ("log-dirty"),
    PVH and HVM guests need hardware paging (HAP) or shadow; with `hap = 0` in their
    config, shadow. A Xen built without shadow paging cannot live-migrate PV guests (xl:
    "Failed to enable logdirty").
    """
    if "virt_caps" not in info:  # Xen 3's xm info does not say; its PV guests migrate
        return None
    caps = set(info.get("virt_caps", "").split())
    host = info.get("host", "this host")
    kind = guest_type or "pv"
    if kind == "pv":
        if "shadow" in caps:
            return None
        return (f"{host}: the guest is PV and Xen here has no shadow paging (virt_caps: "
                f"{info.get('virt_caps', '?')}): PV guests cannot be live-migrated "
                f"(\"Failed to enable logdirty\"); make the guest PVH (type = \"pvh\")")
    if "hvm" not in caps:
        return (f"{host}: the guest is {kind.upper()} but Xen here has no HVM support "
                f"(virt_caps: {info.get('virt_caps', '?')}, xen_caps: {info.get('xen_caps', '?')})")
    if not caps & ({"hap", "shadow"} if hap else {"shadow"}):
        wanted = "neither HAP nor shadow paging" if hap else "no shadow paging (hap = 0)"
        return (f"{host}: the guest is {kind.upper()} and Xen here has {wanted} "
                f"(virt_caps: {info.get('virt_caps', '?')}): it cannot track dirty pages")
    return None


@dataclass(frozen=True)
class LongDomain:
    """One domain of `xl list -l` (JSON): what xl itself uses to re-create it."""

    name: str
    domid: int
    guest_type: str  # "pv", "pvh" or "hvm"
    memory_kb: int | None = None
    disks: tuple[str, ...] = ()
    macs: tuple[str, ...] = ()
    bridges: tuple[str, ...] = ()


def parse_xl_list_long(text: str) -> list[LongDomain]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError("xl list -l", f"not JSON ({exc.msg} at line {exc.lineno})",
                         text) from None
    if not isinstance(data, list):
        raise ParseError("xl list -l", "expected a JSON list of domains", text)
    out = []
    for item in data:
        try:
            c_info = item["config"]["c_info"]
            b_info = item["config"].get("b_info", {})
            disks = tuple(d.get("pdev_path", "") for d in item["config"].get("disks", []))
            nics = item["config"].get("nics", [])
            out.append(LongDomain(c_info["name"], int(item["domid"]), str(c_info["type"]),
                                  b_info.get("max_memkb"), disks,
                                  tuple(str(n.get("mac", "")).lower() for n in nics),
                                  tuple(str(n.get("bridge", "")) for n in nics)))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ParseError("xl list -l", "a domain without domid, config.c_info.name or "
                             "config.c_info.type", text) from None
    return out


# `xl -vvv migrate` progress, in the order it happens; the time between the guest's suspend
# and the target's start is the hypervisor side of the downtime, as seen from the controller
MIGRATE_EVENTS = {
    "ready": "migration target: Ready to receive domain",
    "suspend_requested": "issuing PVH/HVM suspend request",
    "suspended": "guest has suspended",
    "transferred": "migration target: Transfer complete",
    "acknowledged": "migration sender: Target has acknowledged transfer",
    "started": "migration target: Domain started successsfully",  # xl's own spelling
    "started_ok": "migration target: Domain started successfully",
    "reported": "migration sender: Target reports successful startup",
    "successful": "Migration successful",
}


@dataclass(frozen=True)
class XlMigration:
    events_s: dict[str, float]  # event -> seconds after the command started
    succeeded: bool
    error: str = ""
    lines: tuple[str, ...] = field(default=(), compare=False)

    @property
    def downtime_ms(self) -> float | None:
        """Suspend on the source to the domain started on the target (None when not seen)."""
        start = self.events_s.get("suspended")
        end = self.events_s.get("started", self.events_s.get("started_ok"))
        if start is None or end is None or end < start:
            return None
        return (end - start) * 1000.0


def parse_xl_migrate(stamped: Sequence[tuple[float, str]]) -> XlMigration:
    """(seconds since the command started, line) pairs of `xl -vvv migrate` -> events."""
    events: dict[str, float] = {}
    errors = []
    for at, line in stamped:
        for name, needle in MIGRATE_EVENTS.items():
            if needle in line and name not in events:
                events[name] = at
        lowered = line.lower()
        if ("error" in lowered or "failed" in lowered) and "debug:" not in lowered \
                and "xc: detail" not in lowered:
            errors.append(line.strip())
    return XlMigration(events, "successful" in events, "; ".join(errors[-3:]),
                       tuple(line for _, line in stamped))


# xend (the article's xm toolstack) prints nothing while `xm migrate` runs; its log says
# what happens, in the layout of Xen 3's XendLogging (LOGFILE_FORMAT, whole seconds only):
#   [2006-09-12 14:22:31 3210] INFO (XendCheckpoint:105) Domain 3 suspended.
# so the lines are timed as they reach the controller, as xl's are. The messages are those
# XendCheckpoint and XendDomainInfo log on the source and on the destination.
XEND_LOG = "/var/log/xen/xend.log"
XEND_STARTED = re.compile(r"XendDomainInfo\.completeRestore done")  # logged last, on arrival
XEND_EVENTS = (
    ("source", "suspend_requested", re.compile(r"\bSuspending \d+ \.\.\.")),
    ("source", "suspended", re.compile(r"\bDomain \d+ suspended\.")),
    ("destination", "restore_started", re.compile(r"\[xc_restore\]:")),
    ("destination", "started", XEND_STARTED),
)
_XEND_ERROR = re.compile(r"^\[[^]]*\] ERROR \([^)]*\) (.*)$")


def parse_xend_migration(stamped: Sequence[tuple[float, str, str]], rc: int) -> XlMigration:
    """(seconds since `xm migrate` started, where, line) with `where` one of "xm" (its own
    output), "source" or "destination" (their xend.log) -> events, as for xl: the
    hypervisor's downtime runs from the source's "Domain N suspended." to the destination's
    "completeRestore done". xm exits 0 and silent on success."""
    events: dict[str, float] = {}
    errors = []
    for at, where, line in stamped:
        for side, name, pattern in XEND_EVENTS:
            if where == side and name not in events and pattern.search(line):
                events[name] = at
        if where == "xm" and line.strip().startswith("Error"):
            errors.append(line.strip())
        elif where != "xm" and (match := _XEND_ERROR.match(line.strip())):
            errors.append(f"{where} xend: {match.group(1)}")
    return XlMigration(events, rc == 0 and not any(e.startswith("Error") for e in errors),
                       "; ".join(errors[-3:]), tuple(f"{where}: {line}" for _, where, line in stamped))


class _Follower:
    """`tail -F` of a file on a lab host, each line timed as it arrives (a thread reads it);
    ended by PID on that host, then here."""

    def __init__(self, runner: Runner, path: str, where: str, t0: float,
                 into: list[tuple[float, str, str]], limit_s: float) -> None:
        self.runner, self.pid = runner, ""
        self.proc = runner.stream(["sh", "-c", f"echo {PID_MARK}$$; exec timeout "
                                   f"{int(limit_s)} tail -n0 -F {shlex.quote(path)}"])
        self.started = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith(PID_MARK) and not self.pid:
                    self.pid = line[len(PID_MARK):].strip()
                    self.started.set()
                    continue
                into.append((time.monotonic() - t0, where, line.rstrip("\n")))
            self.started.set()

        self.thread = threading.Thread(target=read, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.pid.isdigit():
            self.runner.run(["kill", self.pid], check=False, timeout=15)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.thread.join(timeout=5)


class XenCliDriver(HostStates):
    """`xl` (Xen 4.x) or `xm` (xend, the article's) on the resource hosts."""

    def __init__(self, toolstack: str, hosts: Mapping[str, Host],
                 clock: Callable[[], float] = time.time,
                 runners: Mapping[str, Runner] | None = None) -> None:
        """`runners`: argument-list access to the same hosts, to read `xl -v migrate` while
        it runs (its progress lines get times); without them only the wall time is known."""
        if toolstack not in ("xl", "xm"):
            raise ValueError(toolstack)
        self.toolstack = toolstack
        self.hosts = dict(hosts)
        self.clock = clock
        self.runners = dict(runners or {})
        self.xend_log = XEND_LOG  # xm: where xend logs, on every resource host

    def _check(self, host: str, command: str) -> str:
        result = self.hosts[host].run(command)
        if result.rc != 0:
            raise LabError(f"on {host}: `{command}` failed (exit {result.rc}): "
                           f"{(result.stderr or result.stdout).strip()[-500:]}")
        return result.stdout

    def info(self, host: str) -> dict[str, str]:
        return parse_xl_info(self._check(host, f"{self.toolstack} info"))

    def host_facts(self, host: str) -> HostFacts:
        return xen_host_facts(self.info(host), host, self.toolstack)

    def diagnostics(self) -> list[tuple[str, str]]:
        """What a failed run keeps of each dom0: the hypervisor's log and the toolstack's."""
        if self.toolstack == "xm":
            return [("xm-dmesg", "xm dmesg"),
                    ("xend", f"tail -n 500 {shlex.quote(self.xend_log)}")]
        return [("xl-dmesg", "xl dmesg"),
                ("xl-logs", "tail -n 200 /var/log/xen/xl-*.log /var/log/xen/qemu-dm-*.log "
                            "2>/dev/null; true")]

    def create(self, host: str, config_path: str) -> None:
        self._check(host, f"{self.toolstack} create {shlex.quote(config_path)}")

    def destroy(self, host: str, domain: str) -> None:
        self._check(host, f"{self.toolstack} destroy {shlex.quote(domain)}")

    def list_long(self, host: str) -> list[LongDomain]:
        if self.toolstack != "xl":
            raise LabError("`xm list -l` prints S-expressions, not JSON: use xl")
        return parse_xl_list_long(self._check(host, "xl list -l"))

    def state(self, host: str, domain: str) -> DomainState:
        out = self.hosts[host].check_output(f"{self.toolstack} list")
        found = [d for d in parse_xl_list(out) if d.name == domain]
        return listed_state(found[0] if found else None)

    def running_domain(self, host: str, domain: str) -> RunningDomain | None:
        """`xl list` (memory and VCPUs as Xen has them now) and, with xl, `xl list -l`
        (the NICs and disks xl set up); xm's long listing is S-expressions: not read."""
        rows = [d for d in self.listed(host) if d.name == domain]
        if not rows:
            return None
        row = rows[0]
        if self.toolstack != "xl":
            return RunningDomain(domain, host, "xm list", memory_mib=row.memory,
                                 vcpus=row.vcpus)
        long = [d for d in self.list_long(host) if d.name == domain]
        if not long:
            return RunningDomain(domain, host, "xl list", memory_mib=row.memory,
                                 vcpus=row.vcpus)
        return RunningDomain(domain, host, "xl list; xl list -l", memory_mib=row.memory,
                             vcpus=row.vcpus, macs=long[0].macs, bridges=long[0].bridges,
                             disks=long[0].disks)

    def migrate_command(self, domain: str, destination: str) -> str:
        if self.toolstack == "xm":
            return f"xm migrate --live {shlex.quote(domain)} {shlex.quote(destination)}"
        return f"xl migrate {shlex.quote(domain)} {shlex.quote(destination)}"

    def listed(self, host: str) -> list[ListedDomain]:
        return parse_xl_list(self._check(host, f"{self.toolstack} list"))

    def copies(self, domain: str) -> list[tuple[str, str, DomainState]]:
        """With the copies xl is still receiving (`vm1--incoming`) or left behind."""
        return [(host, d.name, listed_state(d)) for host in self.hosts
                for d in self.listed(host) if is_copy_of(d.name, domain)]

    def migrate(self, domain: str, source: str, destination: str,
                timeout: float = 300.0, injection: Injection | None = None) -> MigrationResult:
        if self.toolstack == "xl" and source in self.runners:
            return self._migrate_streamed(domain, source, destination, timeout, injection)
        if self.toolstack == "xm" and source in self.runners and destination in self.runners \
                and injection is None:
            return self._migrate_xm_streamed(domain, source, destination, timeout)
        if injection is not None:
            raise LabError(f"faults are set off only in streamed `xl migrate` runs, not {self.toolstack}")
        command = self.migrate_command(domain, destination)
        started = self.clock()
        result = self.hosts[source].run(f"timeout {int(timeout)} {command}")
        ended = self.clock()
        status = "completed" if result.rc == 0 else ("timeout" if result.rc == 124 else "failed")
        return MigrationResult(
            domain=domain, source=source, destination=destination, status=status,
            started_at=started, ended_at=ended, total_time_ms=(ended - started) * 1000.0,
            toolstack=self.toolstack,
            error="" if status == "completed" else (result.stderr.strip()[-500:]
                                                    or f"exited {result.rc} without a message"),
            command=command, output=(result.stdout + result.stderr)[-3000:],
            total_time_source="wall clock",
        )

    def _migrate_xm_streamed(self, domain: str, source: str, destination: str,
                             timeout: float, settle_s: float = 5.0) -> MigrationResult:
        """`xm migrate --live` with both hosts' xend.log followed: each line timed as it
        arrives, so the hypervisor's downtime comes from the same events as xl's."""
        stamped: list[tuple[float, str, str]] = []
        t0 = time.monotonic()
        followers = [_Follower(self.runners[h], self.xend_log, where, t0, stamped,
                               timeout + 60)
                     for h, where in ((source, "source"), (destination, "destination"))]
        try:
            for follower in followers:
                follower.started.wait(timeout=30)
            time.sleep(0.3)  # tail has opened the file and sits at its end
            command = self.migrate_command(domain, destination)
            started = self.clock()
            t0_migrate = time.monotonic() - t0
            proc = self.runners[source].stream(["sh", "-c", f"exec timeout {int(timeout)} "
                                                f"{command}"])
            assert proc.stdout is not None
            for line in proc.stdout:
                stamped.append((time.monotonic() - t0, "xm", line.rstrip("\n")))
            rc = proc.wait()
            ended = self.clock()
            deadline = time.monotonic() + settle_s  # the destination logs its start last
            while rc == 0 and time.monotonic() < deadline and not any(
                    where == "destination" and XEND_STARTED.search(line)
                    for _, where, line in list(stamped)):
                time.sleep(0.05)
        finally:
            for follower in followers:
                follower.stop()
        relative = [(at - t0_migrate, where, line) for at, where, line in sorted(stamped)
                    if at >= t0_migrate]  # what xend logged before is another story
        parsed = parse_xend_migration(relative, rc)
        status = ("completed" if parsed.succeeded else "timeout" if rc == 124 else "failed")
        error = "" if status == "completed" else (
            parsed.error or f"xm migrate exited {rc} without an error line")
        return MigrationResult(
            domain=domain, source=source, destination=destination, status=status,
            started_at=started, ended_at=ended, total_time_ms=(ended - started) * 1000.0,
            downtime_ms=parsed.downtime_ms, toolstack="xm", error=error,
            command=command, output="\n".join(parsed.lines[-40:])[-3000:],
            events_s={k: round(v, 3) for k, v in parsed.events_s.items()},
            total_time_source="wall clock",
        )

    def _migrate_streamed(self, domain: str, source: str, destination: str,
                          timeout: float, injection: Injection | None = None) -> MigrationResult:
        """`xl -vvv migrate`, each line timed as it arrives. The remote shell prints its PID
        first (it becomes `timeout`, which passes a SIGINT on to xl and its helpers): that
        is how a migration is cancelled."""
        command = shlex.join(["xl", "-vvv", "migrate", domain, destination])
        argv = ["sh", "-c", f"echo {PID_MARK}$$; exec timeout {int(timeout)} {command}"]
        started = self.clock()
        t0 = time.monotonic()
        proc = self.runners[source].stream(argv)
        assert proc.stdout is not None
        stamped: list[tuple[float, str]] = []
        pid = ""
        timer: threading.Timer | None = None
        armed_at = 0.0

        def cancel() -> str:
            if not pid:
                raise LabError("the remote xl's PID is not known")
            self.runners[source].run(["kill", "-INT", pid])
            return f"SIGINT to `timeout xl migrate` (pid {pid}) on {source}"

        for line in proc.stdout:
            at = time.monotonic() - t0
            if line.startswith(PID_MARK) and not pid:
                pid = line[len(PID_MARK):].strip()
                continue
            stamped.append((at, line.rstrip("\n")))
            if injection is not None and timer is None and transfer_started(line):
                def fire(injection: Injection = injection) -> None:
                    injection.fire(time.monotonic() - t0, cancel=cancel)
                armed_at = at
                timer = threading.Timer(injection.after_s, fire)
                timer.daemon = True
                timer.start()
        rc = proc.wait()
        if timer is not None:
            timer.cancel()
            timer.join()
        if injection is not None and not injection.done:
            ended_s = time.monotonic() - t0
            injection.missed = (
                f"xl migrate ended {ended_s:.1f} s after it was started, before the fault was "
                f"due ({injection.after_s:.1f} s after the transfer began at {armed_at:.1f} s)"
                if timer is not None else
                f"xl migrate ended {ended_s:.1f} s after it was started and printed no sign "
                f"of a transfer ({', '.join(TRANSFER_MARKS)})")
        ended = self.clock()
        parsed = parse_xl_migrate(stamped)
        status = ("completed" if rc == 0 and parsed.succeeded
                  else "timeout" if rc == 124 else "cancelled"
                  if injection is not None and injection.cancel and injection.done
                  and not injection.failed else "failed")
        tail = [line for _, line in stamped if "debug:" not in line
                and "xc: detail" not in line][-40:]
        error = ""
        if status != "completed":
            error = parsed.error or f"xl migrate exited {rc} without an error line"
            if status == "cancelled":
                error = f"cancelled on request (xl exited {rc}); {error}"
        return MigrationResult(
            domain=domain, source=source, destination=destination, status=status,
            started_at=started, ended_at=ended, total_time_ms=(ended - started) * 1000.0,
            downtime_ms=parsed.downtime_ms, toolstack="xl", error=error,
            command=command, output="\n".join(tail)[-3000:],
            events_s={k: round(v, 3) for k, v in parsed.events_s.items()},
            total_time_source="wall clock", injection=injection,
        )


def receiver_pids(ps_text: str) -> list[int]:
    """PIDs of `xl migrate-receive` in `ps -eo pid=,args=` output (xl may be called by any
    path, e.g. /usr/sbin/xl, with options before the subcommand)."""
    pids = []
    for line in ps_text.splitlines():
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        args = fields[1:]
        if args[0].rsplit("/", 1)[-1] == "xl" and "migrate-receive" in args[1:]:
            pids.append(int(fields[0]))
    return pids


PID_MARK = "XENLAB-PID "
# signs that the transfer has begun, on either side. Each is matched on its own, without the
# logger's prefix: the sender's xl writes a log line in several pieces and the receiver's
# lines, which ssh forwards to the same stream, land between them (seen:
# "libxl: debug: migration sender: Target reports successful startup."), so any one line
# may come broken
TRANSFER_MARKS = ("Ready to receive domain", "Saving to migration stream",
                  "Loading new save file", "Saving domain", "Restoring domain")


def transfer_started(line: str) -> bool:
    """Whether a line of `xl -vvv migrate` output shows the transfer under way."""
    return any(mark in line for mark in TRANSFER_MARKS)
