"""libvirt toolstack driver: `virsh` run on the resource hosts over SSH.

Pure parsers of `virsh list --all` and `virsh domjobinfo --completed`, and the construction of
`virsh migrate` command lines, are kept apart from the driver (which only runs commands); each
is tested against outputs written in virsh's own layouts (tests/data/libvirt/README.md).

virsh translates its labels, so every command runs under `LC_ALL=C`.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from testinfra.host import Host

from xenlab.errors import LabError, ParseError
from xenlab.hypervisor.base import (
    DomainState,
    HostFacts,
    HostStates,
    Injection,
    MigrationResult,
    RunningDomain,
    is_copy_of,
    kib_to_mib,
)

# -- virsh list --all --------------------------------------------------------------------------

# virsh's words for virDomainState, and what each means to a migration check. "idle" is
# VIR_DOMAIN_BLOCKED (waiting for I/O or sleeping): alive. "no state" is an active domain whose
# hypervisor reported no flag (xl's "------"): alive too. "pmsuspended" (guest S3) keeps its
# memory and devices, like a paused one. "saved" only appears with `list --managed-save`.
VIRSH_STATES: dict[str, DomainState] = {
    "running": DomainState.RUNNING,
    "idle": DomainState.RUNNING,
    "blocked": DomainState.RUNNING,
    "no state": DomainState.RUNNING,
    "paused": DomainState.PAUSED,
    "pmsuspended": DomainState.PAUSED,
    "in shutdown": DomainState.STOPPED,
    "shut off": DomainState.STOPPED,
    "crashed": DomainState.STOPPED,
    "saved": DomainState.STOPPED,
}


@dataclass(frozen=True)
class VirshDomain:
    """One row of `virsh list --all`."""

    name: str
    domid: int | None  # None for an inactive domain (virsh prints "-")
    state: str  # virsh's word, e.g. "running", "shut off"

    @property
    def active(self) -> bool:
        return self.domid is not None


_LIST_HEADER = re.compile(r"^\s*Id\s+Name\s+State\s*$")
_LIST_RULE = re.compile(r"^-+$")
_STATE_WORDS = "|".join(re.escape(s) for s in sorted(VIRSH_STATES, key=len, reverse=True))
# names may hold spaces: the Id is the first word, the state the known word(s) at the end
_LIST_ROW = re.compile(rf"^\s*(?P<id>\d+|-)\s+(?P<name>\S.*?)\s+(?P<state>{_STATE_WORDS})\s*$")


def parse_virsh_list(text: str) -> list[VirshDomain]:
    """`virsh list --all` (the default --table output, either layout: virsh >= 5's aligned
    table or the older fixed-width one)."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines or not _LIST_HEADER.match(lines[0]):
        raise ParseError("virsh list", "no ' Id   Name   State' header", text)
    if len(lines) < 2 or not _LIST_RULE.match(lines[1].strip()):
        raise ParseError("virsh list", "no dashed line under the header", text)
    rows = []
    for line in lines[2:]:
        match = _LIST_ROW.match(line)
        if not match:
            raise ParseError("virsh list", f"unexpected row {line.strip()!r}: expected an Id "
                             f"(a number or '-'), a name and one of the states "
                             f"{', '.join(VIRSH_STATES)}", text)
        domid = None if match["id"] == "-" else int(match["id"])
        rows.append(VirshDomain(match["name"], domid, match["state"]))
    return rows


def virsh_state(state: str) -> DomainState:
    """A state word of `virsh list` / `virsh domstate` -> DomainState."""
    try:
        return VIRSH_STATES[state.strip()]
    except KeyError:
        raise ParseError("virsh state", f"unknown state {state!r} (expected one of "
                         f"{', '.join(VIRSH_STATES)})") from None


def listed_state(domain: VirshDomain | None) -> DomainState:
    return DomainState.ABSENT if domain is None else virsh_state(domain.state)


# -- virsh domjobinfo --------------------------------------------------------------------------

# vshPrettyCapacity's units
SIZE_UNITS: dict[str, int] = {
    "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
    "PiB": 1024**5, "EiB": 1024**6,
}
JOB_TYPES = ("None", "Bounded", "Unbounded", "Completed", "Failed", "Cancelled", "unknown")

_MS = re.compile(r"^(\d+)\s+ms$")
_SIZE = re.compile(rf"^(\d+(?:\.\d+)?)\s+({'|'.join(SIZE_UNITS)})$")
_RATE = re.compile(rf"^(\d+(?:\.\d+)?)\s+({'|'.join(SIZE_UNITS)})/s$")
_PAGES_RATE = re.compile(r"^(\d+)\s+pages/s$")
_BYTES = re.compile(r"^(\d+)\s+bytes$")
_COUNT = re.compile(r"^(\d+)$")

# label -> (JobInfo attribute, kind of value)
_JOB_FIELDS: dict[str, tuple[str, str]] = {
    "Operation": ("operation", "text"),
    "Time elapsed": ("time_elapsed_ms", "ms"),
    "Time elapsed w/o network": ("time_elapsed_net_ms", "ms"),
    "Time remaining": ("time_remaining_ms", "ms"),
    "Data processed": ("data_processed", "size"),
    "Data remaining": ("data_remaining", "size"),
    "Data total": ("data_total", "size"),
    "Memory processed": ("memory_processed", "size"),
    "Memory remaining": ("memory_remaining", "size"),
    "Memory total": ("memory_total", "size"),
    "Memory bandwidth": ("memory_bandwidth", "rate"),
    "Dirty rate": ("dirty_rate", "pages_rate"),
    "Page size": ("page_size", "bytes"),
    "Iteration": ("iteration", "count"),
    "Postcopy requests": ("postcopy_requests", "count"),
    "Constant pages": ("constant_pages", "count"),
    "Normal pages": ("normal_pages", "count"),
    "Normal data": ("normal_data", "size"),
    "Expected downtime": ("expected_downtime_ms", "ms"),
    "Total downtime": ("total_downtime_ms", "ms"),
    "Downtime w/o network": ("downtime_net_ms", "ms"),
    "Setup time": ("setup_time_ms", "ms"),
    "Error message": ("error_message", "text"),
}
_EXPECTED = {
    "ms": "a whole number of ms, e.g. '16 ms'",
    "size": f"a size in {', '.join(SIZE_UNITS)}, e.g. '279.566 MiB'",
    "rate": "a size per second, e.g. '117.402 MiB/s'",
    "pages_rate": "a whole number of pages/s",
    "bytes": "a whole number of bytes, e.g. '4096 bytes'",
    "count": "a whole number",
}


@dataclass(frozen=True)
class JobInfo:
    """`virsh domjobinfo [--completed]`: times in ms, sizes in bytes, rates in bytes/s.

    virsh prints sizes with three decimals in the largest fitting binary unit, so a size is
    exact to the printed digits (±0.0005 of its unit), not to the byte.
    """

    job_type: str  # "None", "Completed", "Unbounded", ...
    operation: str | None = None  # e.g. "Outgoing migration" (older virsh: no such line)
    time_elapsed_ms: int | None = None
    time_elapsed_net_ms: int | None = None
    time_remaining_ms: int | None = None
    data_processed: int | None = None
    data_remaining: int | None = None
    data_total: int | None = None
    memory_processed: int | None = None
    memory_remaining: int | None = None
    memory_total: int | None = None
    memory_bandwidth: int | None = None  # bytes/s
    dirty_rate: int | None = None  # pages/s
    page_size: int | None = None
    iteration: int | None = None
    postcopy_requests: int | None = None
    constant_pages: int | None = None
    normal_pages: int | None = None
    normal_data: int | None = None
    expected_downtime_ms: int | None = None
    total_downtime_ms: int | None = None
    downtime_net_ms: int | None = None
    setup_time_ms: int | None = None
    error_message: str | None = None
    raw: dict[str, str] = field(default_factory=dict)  # lines not known here, label -> value

    @property
    def has_job(self) -> bool:
        """False for "Job type: None": no job running, or no completed one left to read."""
        return self.job_type != "None"

    @property
    def completed(self) -> bool:
        return self.job_type == "Completed"


def size_to_bytes(number: str, unit: str) -> int:
    """"279.566", "MiB" -> bytes, computed in decimal (no binary float rounding)."""
    try:
        value = Decimal(number) * SIZE_UNITS[unit]
    except (InvalidOperation, KeyError):
        raise ParseError("size", f"{number!r} {unit!r} is not a size in "
                         f"{', '.join(SIZE_UNITS)}") from None
    return int(value.to_integral_value())  # round half to even


def _job_value(label: str, kind: str, value: str, text: str) -> int | str:
    if kind == "text":
        return value
    pattern = {"ms": _MS, "size": _SIZE, "rate": _RATE, "pages_rate": _PAGES_RATE,
               "bytes": _BYTES, "count": _COUNT}[kind]
    match = pattern.match(value)
    if not match:
        raise ParseError("virsh domjobinfo", f"{label!r} is {value!r}: expected "
                         f"{_EXPECTED[kind]}", text)
    if kind in ("size", "rate"):
        return size_to_bytes(match[1], match[2])
    return int(match[1])


def parse_domjobinfo(text: str) -> JobInfo:
    """`LC_ALL=C virsh domjobinfo [--completed] DOMAIN` ("Label:   value" lines)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ParseError("virsh domjobinfo", "empty output (no 'Job type:' line)", text)
    values: dict[str, int | str] = {}
    raw: dict[str, str] = {}
    job_type = ""
    for index, line in enumerate(lines):
        label, sep, value = line.partition(":")
        label, value = label.strip(), value.strip()
        if not sep or not label:
            raise ParseError("virsh domjobinfo", f"line {line!r} is not 'Label: value'", text)
        if index == 0:
            if label != "Job type":
                raise ParseError("virsh domjobinfo", f"first line is {line!r}, not "
                                 "'Job type: ...'", text)
            if value.isdigit():
                raise ParseError("virsh domjobinfo", f"numeric job type {value!r}: that is "
                                 "--rawstats output, run without it", text)
            if value not in JOB_TYPES:
                raise ParseError("virsh domjobinfo", f"unknown job type {value!r} (expected "
                                 f"one of {', '.join(JOB_TYPES)})", text)
            job_type = value
            continue
        if label == "Job type":
            raise ParseError("virsh domjobinfo", "a second 'Job type:' line: two outputs "
                             "in one?", text)
        if label in _JOB_FIELDS:
            attribute, kind = _JOB_FIELDS[label]
            if attribute in values:
                raise ParseError("virsh domjobinfo", f"{label!r} appears twice", text)
            values[attribute] = _job_value(label, kind, value, text)
        else:
            raw[label] = value
    if job_type == "Completed" and "time_elapsed_ms" not in values:
        raise ParseError("virsh domjobinfo", "a completed job without 'Time elapsed:' "
                         "(truncated output?)", text)
    return JobInfo(job_type=job_type, raw=raw, **values)  # type: ignore[arg-type]


# -- command lines -----------------------------------------------------------------------------

HYPERVISOR_DRIVERS = ("qemu", "xen")
# a DNS name or an IPv4 address (underscores allowed: lab names such as xen_resource_1), or
# an IPv6 address; nothing a shell or a URI would read specially
_HOST_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?$")
_IPV6 = re.compile(r"^\[?[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\]?$")  # two colons at least
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_URI = re.compile(r"^[a-z][a-z0-9+]*://\S*$")


_UNITS_KIB = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "kb": 1000 / 1024,
              "m": 1024, "mib": 1024, "mb": 1000 ** 2 / 1024, "g": 1024 ** 2, "gib": 1024 ** 2}


def parse_domain_xml(text: str, host: str) -> RunningDomain:
    """`virsh dumpxml DOM` of a running domain: its memory (currentMemory), vcpus, NICs
    (MAC, bridge) and disks (the device or file behind each), as libvirt has them."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ParseError("virsh dumpxml", f"not XML ({exc})", text) from None
    name = root.findtext("name") or ""
    if root.tag != "domain" or not name:
        raise ParseError("virsh dumpxml", "no <domain> with a <name>", text)
    memory = root.find("currentMemory")
    if memory is None:
        memory = root.find("memory")
    try:
        unit = _UNITS_KIB[(memory.get("unit", "KiB") if memory is not None else "KiB").lower()]
        memory_mib = (kib_to_mib(int(int((memory.text or "").strip()) * unit))
                      if memory is not None else None)
        vcpu = root.find("vcpu")
        vcpus = (int(vcpu.get("current") or (vcpu.text or "").strip())
                 if vcpu is not None else None)
    except (KeyError, ValueError):
        raise ParseError("virsh dumpxml", "memory or vcpu is not a number with a known "
                         "unit", text) from None
    interfaces = root.findall("devices/interface")
    disks = []
    for disk in root.findall("devices/disk"):
        source = disk.find("source")
        if source is not None and disk.get("device", "disk") == "disk":
            disks.append(source.get("dev") or source.get("file") or "")

    def attribute(element: ET.Element, child: str, name: str) -> str:
        found = element.find(child)
        return found.get(name, "") if found is not None else ""

    return RunningDomain(
        name, host, "virsh dumpxml", memory_mib=memory_mib, vcpus=vcpus,
        macs=tuple(attribute(i, "mac", "address").lower() for i in interfaces),
        bridges=tuple(attribute(i, "source", "bridge") for i in interfaces),
        disks=tuple(disks))


def parse_freecell(text: str) -> int:
    """`virsh freecell` (no cell given): "Total: N KiB", the machine's free memory as the
    hypervisor driver counts it -> KiB."""
    match = re.search(r"^\s*Total:\s+(\d+) KiB\s*$", text, re.MULTILINE)
    if not match:
        raise ParseError("virsh freecell", "no 'Total: N KiB' line", text)
    return int(match.group(1))


def parse_virsh_version(text: str) -> str:
    """`virsh version` -> "libvirt 9.0.0 (Xen 4.17.0)"."""
    library = re.search(r"^Using library: (.+)$", text, re.MULTILINE)
    running = re.search(r"^Running hypervisor: (.+)$", text, re.MULTILINE)
    if not library:
        raise ParseError("virsh version", "no 'Using library:' line", text)
    return library.group(1).strip() + (f" ({running.group(1).strip()})" if running else "")


def check_host_name(host: str) -> str:
    """The host as it may stand in a URI (IPv6 in brackets), or LabError saying why not."""
    if _IPV6.match(host) and host.strip("[]"):
        return f"[{host.strip('[]')}]"
    if not _HOST_NAME.match(host) or ".." in host:
        raise LabError(f"host name {host!r} cannot be used in a libvirt URI: expected a DNS "
                       "name or an IP address (letters, digits, '.', '-', '_'; no spaces, "
                       "no shell or URI characters)")
    return host


def destination_uri(driver: str, host: str, user: str = "root") -> str:
    """The libvirt URI of `host`'s hypervisor over SSH, as libvirt documents it:
    qemu+ssh://root@HOST/system (QEMU/KVM), xen+ssh://root@HOST/system (the libxl driver,
    which also accepts the older xen+ssh://root@HOST/)."""
    if driver not in HYPERVISOR_DRIVERS:
        raise LabError(f"libvirt driver {driver!r}: expected one of "
                       f"{', '.join(HYPERVISOR_DRIVERS)}")
    if not _USER.match(user):
        raise LabError(f"user name {user!r} cannot be used in a libvirt URI")
    return f"{driver}+ssh://{user}@{check_host_name(host)}/system"


def _check_domain_name(domain: str) -> None:
    if not domain or domain.startswith("-") or "\n" in domain:
        raise LabError(f"domain name {domain!r}: empty, starting with '-' (virsh would read "
                       "an option) or multi-line")


def virsh_argv(*args: str, connect: str | None = None) -> list[str]:
    return ["virsh", *(["--connect", connect] if connect else []), *args]


def migrate_argv(domain: str, destination_uri: str, live: bool = True,
                 persistent: bool = False, undefine_source: bool = False,
                 verbose: bool = True, connect: str | None = None) -> list[str]:
    """`virsh migrate [--live] [--persistent] [--undefinesource] [--verbose] DOMAIN URI`.

    --persistent defines the domain on the destination, --undefinesource removes its
    definition from the source; --verbose prints "Migration: [ 42 %]" on stderr."""
    _check_domain_name(domain)
    if not _URI.match(destination_uri):
        raise LabError(f"destination URI {destination_uri!r}: expected driver+transport://..., "
                       "without spaces")
    flags = [flag for flag, wanted in (("--live", live), ("--persistent", persistent),
                                       ("--undefinesource", undefine_source),
                                       ("--verbose", verbose)) if wanted]
    return virsh_argv("migrate", *flags, domain, destination_uri, connect=connect)


def domjobinfo_argv(domain: str, completed: bool = True, connect: str | None = None) -> list[str]:
    _check_domain_name(domain)
    return virsh_argv("domjobinfo", *(["--completed"] if completed else []), domain,
                      connect=connect)


def shell_command(argv: list[str], timeout: float | None = None) -> str:
    """One shell command line for Host.run(): C locale, optionally under `timeout`."""
    prefix = ["env", "LC_ALL=C"] + (["timeout", str(int(timeout))] if timeout else [])
    return shlex.join(prefix + argv)


# -- the driver --------------------------------------------------------------------------------


class VirshDriver(HostStates):
    """libvirt's `virsh` on the resource hosts, talking to their local daemon
    (qemu:///system or xen:///system); a migration goes over SSH to the destination's."""

    toolstack = "libvirt"

    def __init__(self, hosts: Mapping[str, Host], driver: str = "qemu",
                 clock: Callable[[], float] = time.time, user: str = "root",
                 addresses: Mapping[str, str] | None = None, persistent: bool = False,
                 undefine_source: bool = False) -> None:
        """`addresses`: how the source reaches each host (default: its name)."""
        if driver not in HYPERVISOR_DRIVERS:
            raise LabError(f"libvirt driver {driver!r}: expected one of "
                           f"{', '.join(HYPERVISOR_DRIVERS)}")
        self.hosts = dict(hosts)
        self.driver = driver
        self.clock = clock
        self.user = user
        self.addresses = dict(addresses or {})
        self.persistent = persistent
        self.undefine_source = undefine_source
        self.connect = f"{driver}:///system"

    def _check(self, host: str, argv: list[str]) -> str:
        command = shell_command(argv)
        result = self.hosts[host].run(command)
        if result.rc != 0:
            raise LabError(f"on {host}: `{command}` failed (exit {result.rc}): "
                           f"{(result.stderr or result.stdout).strip()[-500:]}")
        return str(result.stdout)

    def create(self, host: str, config_path: str) -> None:
        """`virsh create FILE` (the domain XML): a transient domain, as `xl create` makes."""
        self._check(host, virsh_argv("create", config_path, connect=self.connect))

    def destroy(self, host: str, domain: str) -> None:
        _check_domain_name(domain)
        self._check(host, virsh_argv("destroy", domain, connect=self.connect))

    def list_domains(self, host: str) -> list[VirshDomain]:
        return parse_virsh_list(self._check(host, virsh_argv("list", "--all",
                                                             connect=self.connect)))

    def copies(self, domain: str) -> list[tuple[str, str, DomainState]]:
        """With the copies libxl is still receiving (`vm1--incoming`) or left behind."""
        return [(host, d.name, listed_state(d)) for host in self.hosts
                for d in self.list_domains(host) if is_copy_of(d.name, domain)]

    def state(self, host: str, domain: str) -> DomainState:
        found = [d for d in self.list_domains(host) if d.name == domain]
        return listed_state(found[0] if found else None)

    def running_domain(self, host: str, domain: str) -> RunningDomain | None:
        _check_domain_name(domain)
        if self.state(host, domain) is not DomainState.RUNNING:
            return None
        return parse_domain_xml(self._check(host, virsh_argv("dumpxml", domain,
                                                             connect=self.connect)), host)

    def destination(self, host: str) -> str:
        return destination_uri(self.driver, self.addresses.get(host, host), self.user)

    def migrate_argv(self, domain: str, destination: str) -> list[str]:
        return migrate_argv(domain, self.destination(destination), live=True,
                            persistent=self.persistent, undefine_source=self.undefine_source,
                            connect=self.connect)

    def completed_job(self, host: str, domain: str) -> JobInfo:
        """The hypervisor's figures of the last job on `host` (read once: virsh then drops
        them). The libxl driver (Xen) does not keep them: LabError there."""
        return parse_domjobinfo(self._check(host, domjobinfo_argv(domain, True, self.connect)))

    def diagnostics(self) -> list[tuple[str, str]]:
        logs = "/var/log/libvirt/libxl" if self.driver == "xen" else "/var/log/libvirt/qemu"
        return [("libvirt-logs", f"tail -n 300 {logs}/*.log 2>/dev/null; true")]

    def host_facts(self, host: str) -> HostFacts:
        """libvirt's own figures: `virsh freecell` (the free memory its driver counts: under
        Xen, the hypervisor's, not dom0's) and `virsh version`."""
        version = parse_virsh_version(self._check(host, virsh_argv("version",
                                                                   connect=self.connect)))
        free_kib = parse_freecell(self._check(host, virsh_argv("freecell",
                                                              connect=self.connect)))
        return HostFacts(host, self.toolstack, version, free_kib // 1024, "virsh freecell")

    def migrate(self, domain: str, source: str, destination: str,
                timeout: float = 300.0, injection: Injection | None = None) -> MigrationResult:
        if injection is not None:
            raise LabError("virsh migrate cannot have a fault set off in flight here")
        argv = self.migrate_argv(domain, destination)
        started = self.clock()
        result = self.hosts[source].run(shell_command(argv, timeout))
        ended = self.clock()
        status = "completed" if result.rc == 0 else ("timeout" if result.rc == 124 else "failed")
        note = ""
        job: JobInfo | None = None
        if status == "completed":
            try:
                job = self.completed_job(source, domain)
            except (LabError, ParseError) as exc:  # the migration stands; its figures don't
                note = str(exc)[-500:]
            else:
                if not job.completed:
                    note = f"no completed job on {source} (Job type: {job.job_type})"
                    job = None
        figures = job if job is not None else JobInfo("None")
        total = figures.time_elapsed_ms
        return MigrationResult(
            domain=domain, source=source, destination=destination, status=status,
            started_at=started, ended_at=ended,
            total_time_ms=float(total) if total is not None else (ended - started) * 1000.0,
            downtime_ms=_ms(figures.total_downtime_ms),
            setup_time_ms=_ms(figures.setup_time_ms),
            bytes_transferred=figures.data_processed,
            toolstack=self.toolstack,
            error="" if status == "completed" else result.stderr.strip()[-500:],
            command=shlex.join(argv), output=(result.stdout + result.stderr)[-3000:],
            total_time_source="domjobinfo" if total is not None else "wall clock", note=note,
        )


def _ms(value: int | None) -> float | None:
    return None if value is None else float(value)
