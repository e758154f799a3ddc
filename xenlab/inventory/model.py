"""Typed, frozen models of a lab inventory. Built by `xenlab.inventory.load`, never by hand I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network


class Role(enum.StrEnum):
    STORAGE = "storage"
    RESOURCE = "resources"
    GUEST = "guests"


class LabKind(enum.StrEnum):
    EMBEDDED = "embedded"  # built on this machine from namespaces, vblade, LVM metadata, QEMU
    EMBEDDED_XEN = "embedded-xen"  # built here too, the resource hosts real Xen under QEMU
    REAL = "real"  # existing machines reached over SSH
    FAKE = "fake"  # in memory only, for xenlab's own tests (xenlab/lab/fake.py)

    @property
    def built_here(self) -> bool:
        """Built and torn down by xenlab on this machine (journal, reaper, lab network)."""
        return self is not LabKind.REAL


class Toolstack(enum.StrEnum):
    QEMU = "qemu"  # the embedded lab's stand-in hypervisor, driven over QMP
    XL = "xl"
    XM = "xm"
    LIBVIRT = "libvirt"


class Connection(enum.StrEnum):
    EMBEDDED = "embedded"  # a network namespace of the embedded lab
    SSH = "ssh"
    PARAMIKO = "paramiko"
    LOCAL = "local"


@dataclass(frozen=True)
class HostSpec:
    name: str
    role: Role
    address: IPv4Address
    connection: Connection
    user: str = "root"
    port: int = 22
    key_file: str | None = None
    ssh_config: str | None = None
    known_hosts: str | None = None  # xenlab_known_hosts (or the lab's known_hosts)
    power_off: str | None = None  # xenlab_power_off: a command run here (real labs only)
    power_on: str | None = None  # xenlab_power_on


@dataclass(frozen=True)
class AoeSpec:
    shelf: int
    slot: int
    interface: str
    device: str | None  # None on the embedded lab: the lab's own image file
    initiator_interface: str = "xenbr0"  # where the resource hosts meet the storage segment
    require_mac_allowlist: bool = False  # a security finding when vblade runs without -m

    @property
    def target(self) -> str:
        return f"e{self.shelf}.{self.slot}"


@dataclass(frozen=True)
class LvmSpec:
    vg: str
    lv: str
    size: int  # bytes

    @property
    def path(self) -> str:
        return f"/dev/{self.vg}/{self.lv}"


@dataclass(frozen=True)
class Vif:
    mac: str
    bridge: str


@dataclass(frozen=True)
class DomainSpec:
    """The guest's domain configuration, in the terms of a Xen config file."""

    name: str
    config_path: str
    memory: int  # MiB
    kernel: str
    ramdisk: str
    root: str
    extra: str
    vifs: tuple[Vif, ...]
    disks: tuple[str, ...]
    guest_type: str = ""  # xl's `type`: pv, pvh or hvm ("" : the toolstack's default, pv)
    vcpus: int = 1  # the config's `vcpus` (absent in the article's file: one)
    options: tuple[tuple[str, int | str], ...] = ()  # further config keys, e.g. (("hap", 0),)


def disk_lv(domain: DomainSpec, vg: str) -> str | None:
    """The LV of `vg` that the domain's first disk names (`phy:/dev/VG/LV,...`), if it does."""
    if not domain.disks:
        return None
    source = domain.disks[0].split(",")[0].split(":", 1)[-1]
    prefix = f"/dev/{vg}/"
    if not source.startswith(prefix) or "/" in source[len(prefix):]:
        return None
    return source[len(prefix):] or None


@dataclass(frozen=True)
class Guest:
    """One guest of the lab: its host entry, its domain config and its own LV."""

    host: HostSpec
    domain: DomainSpec
    lv: str

    @property
    def name(self) -> str:
        return self.domain.name


@dataclass(frozen=True)
class Limits:
    downtime_ms: float = 1000.0
    loss_pct: float = 5.0
    migration_timeout_s: float = 120.0


@dataclass(frozen=True)
class LoadSpec:
    """The guest's memory-dirtying load of the `memory-dirty` scenario, and the memory
    checker's own slow sweep in the `idle` one."""

    size_mib: int = 64
    rate_mib_s: float = 100.0
    idle_rate_mib_s: float = 2.0


@dataclass(frozen=True)
class RunDefaults:
    """How this lab is certified unless the command line says otherwise (`run:`): a slow
    lab (nested Xen under TCG) probes less often and migrates fewer times."""

    interval_ms: float = 1.0
    roundtrips: int = 3
    scenarios: tuple[str, ...] = ("idle", "memory-dirty")
    tcp_interval_ms: float = 10.0
    evacuation: str = "sequential"  # the maintenance suite: sequential, or N at a time
    storm: bool = True  # the migration storm (false: a lab too slow for a dozen migrations)


@dataclass(frozen=True)
class Inventory:
    path: str
    lab: str
    kind: LabKind
    toolstack: str  # a name of xenlab/hypervisor/registry.py (the known ones: Toolstack)
    distribution: str
    network: IPv4Network
    bridge: str
    relocation_port: int
    filesystem: str
    observer: str
    aoe: AoeSpec
    lvm: LvmSpec
    image_size: int  # bytes of the exported image on the embedded lab
    limits: Limits
    load: LoadSpec
    hosts: tuple[HostSpec, ...]
    domains: tuple[DomainSpec, ...]  # one per guest, in the order of the guests group
    run: RunDefaults = RunDefaults()
    image: str | None = None  # the guest image tarball (xenimage.tgz) for provisioning
    libvirt_driver: str = "xen"  # toolstack libvirt: its hypervisor driver, xen or qemu
    security: tuple[tuple[str, str], ...] = ()  # finding name -> "warn" or "fail"
    extra_vars: dict[str, object] = field(default_factory=dict, compare=False)

    def host(self, name: str) -> HostSpec:
        for spec in self.hosts:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def by_role(self, role: Role) -> tuple[HostSpec, ...]:
        return tuple(h for h in self.hosts if h.role is role)

    @property
    def storage(self) -> HostSpec:
        return self.by_role(Role.STORAGE)[0]

    @property
    def resources(self) -> tuple[HostSpec, ...]:
        return self.by_role(Role.RESOURCE)

    @property
    def guest(self) -> HostSpec:
        """The first guest's host entry (the article's vm1)."""
        return self.by_role(Role.GUEST)[0]

    @property
    def domain(self) -> DomainSpec:
        """The first guest's domain config (the article's vm1)."""
        return self.domains[0]

    @property
    def guests(self) -> tuple[Guest, ...]:
        """Every guest, each with its domain config and LV (the first's is `lvm.lv`)."""
        return tuple(Guest(host, domain, self.lvm.lv if i == 0 else
                           disk_lv(domain, self.lvm.vg) or "")
                     for i, (host, domain) in enumerate(zip(self.by_role(Role.GUEST),
                                                            self.domains, strict=True)))

    def guest_named(self, name: str = "") -> Guest:
        """The guest of that domain or host name ("": the first). KeyError: none."""
        for guest in self.guests:
            if name in ("", guest.name, guest.host.name):
                return guest
        raise KeyError(name)
