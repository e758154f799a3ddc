"""The embedded lab: the article's three hosts built on this one machine.

xen_storage, xen_resource_1 .. N are network namespaces joined to a switch namespace; the
storage host exports a sparse image with the real vblade; LVM metadata is written on it with
the real LVM tools (no device-mapper: nothing is activated); the guest's root filesystem is
made in the LV's byte range; vm1 runs under QEMU (TCG) on the first resource host.
Everything is named after the lab, recorded in a journal before it is made, and removed by
`down()` or, after a killed run, by the next run (`journal.reap`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Interface
from pathlib import Path

import testinfra
from testinfra.host import Host

from xenlab.checks.storage import lv_range
from xenlab.errors import LabError
from xenlab.hosts.access import embedded_host
from xenlab.hosts.runner import Runner, anchor_argv, host_prefix
from xenlab.hypervisor.base import (
    Injection,
    MigrationFault,
    MigrationResult,
)
from xenlab.hypervisor.domconfig import DomainConfig, parse_domain_config, render_domain_config
from xenlab.hypervisor.qemu import DiskImage, QemuDriver, serve_over_nbd, tap_name
from xenlab.hypervisor.qmp import block_backings
from xenlab.inventory.model import HostSpec, Inventory, Role
from xenlab.lab import guest_of
from xenlab.lab import journal as jr
from xenlab.lab.build.cut import cut, uncut
from xenlab.lab.build.network import SWITCH_BRIDGE, add_switch
from xenlab.lab.build.sshkit import (
    client_key,
    guest_host_key,
    guest_ssh,
    namespace_proxy,
    ssh_entry,
)
from xenlab.lab.build.vblade import sparse_copy, sparse_image, start_vblade
from xenlab.lab.built import BuiltLab
from xenlab.lab.guestkit import ensure_guest_kit, ensure_memcheck, ensure_native_probe
from xenlab.lab.image import GuestSsh, stage_root
from xenlab.net.iproute import link_address
from xenlab.progress import Progress
from xenlab.storage.lvm import (
    LVS_ARGS,
    PVS_ARGS,
    VGS_ARGS,
    ByteRange,
    LvmReports,
    lv_byte_range,
    parse_lvs,
    parse_pvs,
    parse_vgs,
)
from xenlab.storage.ref import DiskRef

DEFAULT_CACHE = Path(os.environ.get("XENLAB_CACHE", "/var/cache/xenlab"))
# the fault suite: a migration capped at this rate lasts seconds, and the fault is set off
# this long into it
FAULT_BANDWIDTH_MIB_S = 16
FAULT_AFTER_S = 0.5

# Faults the embedded lab can be built with, so self-tests (and users) can see each check
# catch what it is meant to catch.
FAULTS = {
    "fstab-type": "the guest's fstab names reiserfs for a root filesystem that is ext4",
    "inittab-unedited": "the guest's inittab keeps the gettys of runlevels 2-6 (sed not run)",
    "inittabe": "the guest image keeps the /etc/inittabe backup that `sed -ie` leaves",
    "config-disk": "the domain configs name the article's disk phy:xen/lv_vm1 (no such VG)",
    "config-memory": "every domain config says twice the memory the guest runs with",
    "lv-mounted": "lv_vm1 is mounted on the last resource host while the guest runs",
    "relocation-closed": "the last resource host drops TCP to the relocation port",
    "second-vblade": "a second vblade on the last resource host exports the same shelf.slot",
    "other-export": "the storage host also exports a second image as the next slot",
    "no-vblade": "the storage host exports nothing: its vblade is never started",
    "migration-cut": "0.3 s into each migration the destination drops its relocation port",
    "local-disk": "the guest's disk is a copy local to the first resource host, served from "
                  "there over NBD: with that host's power pulled, the guest loses its disk",
}
NBD_PORT, NBD_EXPORT = 10809, "local-disk"
LVM_CONF = "devices { obtain_device_list_from_udev = 0 use_devicesfile = 0 }\n"


def incoming_ports(inventory: Inventory) -> dict[str, int]:
    """The port each guest's incoming QEMU listens on: the first guest on the relocation
    port (the article's 8002), each further guest on the next one, so that several guests
    can move to one host at once."""
    return {g.name: inventory.relocation_port + i for i, g in enumerate(inventory.guests)}


@dataclass
class LabHost:
    """One emulated host: its namespace, its private /etc overlay and its directory."""

    spec: HostSpec
    namespace: str
    directory: Path
    journal: jr.Journal
    anchor_pid: int = 0
    port: str = ""  # its link's port on the lab's switch
    runner: Runner = field(init=False)

    def __post_init__(self) -> None:
        self.runner = Runner(self.name)  # usable once the anchor runs

    def start_anchor(self, timeout: float = 10.0) -> None:
        """Start the process that holds this host's namespaces; commands then enter them."""
        ready = self.directory / ".ready"
        ready.unlink(missing_ok=True)
        proc = Runner(self.name).spawn(
            anchor_argv(self.namespace, str(self.etc_dir), str(ready)),
            log=str(self.directory / "host.log"))
        self.record_process(proc.pid, "host namespaces")
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "host.log").read_text(errors="replace")
                raise LabError(f"{self.name}: its namespaces could not be set up "
                               f"(exit {proc.poll()}): {log[-300:]}")
            time.sleep(0.01)
        self.anchor_pid = proc.pid
        self.runner = Runner(self.name, host_prefix(proc.pid))

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def address(self) -> str:
        return str(self.spec.address)

    @property
    def etc_dir(self) -> Path:
        return self.directory / "etc"

    def record_process(self, pid: int, what: str) -> None:
        self.journal.add_process(pid, self.name, what)

    def etc_file(self, path: str) -> Path:
        """Where the host's own copy of /etc/... lies on this machine."""
        relative = Path(path).relative_to("/etc")
        return self.etc_dir / relative


@dataclass(frozen=True)
class StorageFacts:
    """What the storage step made: the exported image and where the LV lies in it."""

    image: str
    first_lv: str  # the first guest's (lvm.lv)
    lv_ranges: dict[str, ByteRange] = field(default_factory=dict)  # by LV name

    @property
    def lv_range(self) -> ByteRange:
        """Where the first guest's LV lies (the faults that touch one LV touch that one)."""
        return self.lv_ranges[self.first_lv]


class EmbeddedLab(BuiltLab):
    def __init__(self, inventory: Inventory, *, progress: Progress,
                 root: Path = jr.DEFAULT_ROOT, cache: Path = DEFAULT_CACHE,
                 qemu_binary: str = "qemu-system-x86_64", faults: tuple[str, ...] = (),
                 memory_audit: bool = False) -> None:
        super().__init__(inventory, progress, root, cache)
        unknown = sorted(set(faults) - set(FAULTS))
        if unknown:
            raise LabError(f"unknown lab fault {unknown[0]!r}; known: {', '.join(FAULTS)}")
        self.faults = tuple(faults)
        self.memory_audit = memory_audit
        self.qemu_binary = qemu_binary
        self.hosts: dict[str, LabHost] = {}
        self.storage_facts: StorageFacts | None = None
        self.guest_hosts: dict[str, str] = {}  # domain -> where it runs now
        self._driver: QemuDriver | None = None
        self._lv_ranges: dict[tuple[str, ...], ByteRange] | None = None  # for device_ref

    # -- naming --------------------------------------------------------------------------
    @property
    def image_path(self) -> Path:
        return self.directory / "storage" / "export.img"

    def lab_hosts(self, role: Role) -> list[LabHost]:
        return [h for h in self.hosts.values() if h.spec.role is role]

    # -- lifecycle -----------------------------------------------------------------------
    def _quiesce(self) -> None:
        self._stop_guest()
        if self._driver:
            self._driver.close()

    def _forget_hosts(self) -> None:
        self.hosts.clear()
        self._lv_ranges = None

    def keep(self) -> str:
        """Leave the lab up after this run; `xenlab lab down` removes it later."""
        if self._driver:
            self._driver.close()
        return super().keep()

    def _stop_guest(self) -> None:
        if self._driver:
            for host in self._driver.hosts:
                for guest in self.inventory.guests:
                    try:
                        self._driver.stop(host, guest.name)
                    except Exception:  # noqa: BLE001 - best effort: the reaper kills the rest
                        pass

    # -- network -------------------------------------------------------------------------
    def enter_network(self) -> None:
        self.journal = jr.Journal.create(self.inventory.lab, self.directory)
        inv = self.inventory
        for spec in inv.hosts:
            if spec.role is Role.GUEST:
                continue
            directory = self.directory / spec.name
            (directory / "etc").mkdir(parents=True, exist_ok=True)
            self.hosts[spec.name] = LabHost(spec, self.namespace(spec.name), directory,
                                            self.journal)
        add_switch(self._add_namespace, self._ip, self.switch)
        prefix = inv.network.prefixlen
        for index, host in enumerate(self.hosts.values()):
            self._add_namespace(host.namespace)
            port = host.port = f"p{index}"
            self._ip(self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                     "netns", host.namespace)
            self._ip(self.switch, "link", "set", port, "master", SWITCH_BRIDGE, "up")
            self._ip(host.namespace, "link", "set", "lo", "up")
            self._ip(host.namespace, "link", "set", "eth0", "up")
            address = f"{host.address}/{prefix}"
            if host.spec.role is Role.RESOURCE:
                mac = self._mac(host.namespace, "eth0")
                self._ip(host.namespace, "link", "add", inv.bridge, "type", "bridge",
                         "stp_state", "0", "forward_delay", "0")
                # pin the bridge's MAC to the uplink's, or it changes when a VM's tap joins
                self._ip(host.namespace, "link", "set", inv.bridge, "address", mac)
                self._ip(host.namespace, "link", "set", "eth0", "master", inv.bridge)
                self._ip(host.namespace, "addr", "add", address, "dev", inv.bridge)
                self._ip(host.namespace, "link", "set", inv.bridge, "up")
                for guest in inv.guests:
                    for i, vif in enumerate(guest.domain.vifs):
                        tap = tap_name(guest.name, i)
                        self._ip(host.namespace, "tuntap", "add", "dev", tap, "mode", "tap")
                        self._ip(host.namespace, "link", "set", tap, "master", vif.bridge, "up")
            else:
                self._ip(host.namespace, "addr", "add", address, "dev", "eth0")
            self._write_etc(host)
            host.start_anchor()
        self._wait_reachable()

    def _mac(self, namespace: str, ifname: str) -> str:
        out = self.local.run(["ip", "-n", namespace, "-j", "link", "show", ifname]).stdout
        return link_address(out)

    def _write_etc(self, host: LabHost) -> None:
        (host.etc_dir / "hosts").write_text(self._hosts_file())
        (host.etc_dir / "hostname").write_text(host.name + "\n")

    def _wait_reachable(self, timeout: float = 10.0) -> None:
        """Every host answers ping from the storage host (the switch forwards at once)."""
        storage = self.lab_hosts(Role.STORAGE)[0]
        for host in self.hosts.values():
            if host is storage:
                continue
            deadline = time.monotonic() + timeout
            while storage.runner.run(["ping", "-c1", "-W1", "-q", host.address],
                                     check=False).rc != 0:
                if time.monotonic() > deadline:
                    raise LabError(f"{host.name} ({host.address}) does not answer ping from "
                                   f"{storage.name} after {timeout} s")

    # -- storage -------------------------------------------------------------------------
    def enter_storage(self) -> None:
        assert self.journal is not None
        inv = self.inventory
        image = self.image_path
        sparse_image(self.journal, image, inv.image_size)
        self.storage_facts = self._make_lvm(str(image))
        storage = self.lab_hosts(Role.STORAGE)[0]
        if "no-vblade" in self.faults:  # the guest's disk is the image itself: it still runs
            return
        start_vblade(storage.runner, storage.name, inv.aoe, image,
                     storage.directory / "vblade.log", storage.record_process)

    def _lvm_runner(self) -> Runner:
        conf = self.directory / "lvm"
        conf.mkdir(exist_ok=True)
        (conf / "lvm.conf").write_text(LVM_CONF)
        return Runner("controller", env={"LVM_SYSTEM_DIR": str(conf),
                                         "LVM_SUPPRESS_FD_WARNINGS": "1"})

    def export_lvm_reports(self) -> LvmReports:
        """pvs/vgs/lvs of the exported image, read through a read-only loop device: the
        bytes every resource host would read over AoE (no AoE initiator in this kernel)."""
        lvm = self._lvm_runner()
        loop = self.local.run(["losetup", "--find", "--show", "--read-only",
                               str(self.image_path)]).stdout.strip()
        try:
            opts = ["--driverloaded", "n", "--devices", loop]
            texts = [lvm.run([*args, *opts]).stdout for args in (PVS_ARGS, VGS_ARGS, LVS_ARGS)]
        finally:
            self.local.run(["losetup", "-d", loop], check=False)
        return LvmReports("export", *texts)

    def lvm_views(self) -> list[LvmReports]:
        return [self.export_lvm_reports()]

    @property
    def aoe_device(self) -> str:
        return str(self.image_path)

    probe_python = sys.executable

    @property
    def probe_binary(self) -> str | None:
        """The C prober, built on first use (the observer is on this machine)."""
        return str(ensure_native_probe(self.cache / "tools"))

    def _make_lvm(self, image: str) -> StorageFacts:
        """PV, VG and LV on the image through a loop device, metadata only (no device-mapper)."""
        inv = self.inventory
        lvm = self._lvm_runner()
        loop = self.local.run(["losetup", "--find", "--show", image]).stdout.strip()
        try:
            opts = ["--driverloaded", "n", "--devices", loop]
            lvm.run(["pvcreate", *opts, loop])
            lvm.run(["vgcreate", *opts, inv.lvm.vg, loop])
            for guest in inv.guests:  # each guest its own LV, the first lvm.lv
                lvm.run(["lvcreate", *opts, "-an", "-Zn", "-L", f"{inv.lvm.size}b", "-n",
                         guest.lv, inv.lvm.vg])
        finally:
            self.local.run(["losetup", "-d", loop], check=False)
        reports = self.export_lvm_reports()
        pvs, vgs, lvs = reports.pvs, reports.vgs, reports.lvs
        pv = parse_pvs(pvs)[0]
        vg = next(v for v in parse_vgs(vgs) if v.name == inv.lvm.vg)
        ranges = {v.name: lv_byte_range(v, pv, vg) for v in parse_lvs(lvs) if v.vg == vg.name}
        return StorageFacts(image=image, first_lv=inv.lvm.lv, lv_ranges=ranges)

    # -- guest image ---------------------------------------------------------------------
    def enter_guest_ready(self) -> None:
        inv = self.inventory
        with self.progress.step("guest kernel, initramfs and tools (cached after the first run)"):
            kit = ensure_guest_kit(self.cache / "guest")
            memcheck = ensure_memcheck(self.cache / "guest")
        for path, source in ((inv.domain.kernel, kit.kernel), (inv.domain.ramdisk, kit.initramfs)):
            if Path(path).resolve() != source.resolve():
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, path)
        assert self.storage_facts is not None
        ssh = self._make_ssh()
        for guest in inv.guests:  # the image faults: in the first guest's image only
            first = guest.name == inv.domain.name
            rng = self.storage_facts.lv_ranges[guest.lv]
            with tempfile.TemporaryDirectory(prefix="xenlab-root-", dir=self.directory) as tmp:
                stage_root(Path(tmp), hostname=guest.name, root_device=guest.domain.root,
                           filesystem=inv.filesystem, ssh=ssh, hosts=self._hosts_file(),
                           fstab_filesystem="reiserfs" if first and "fstab-type" in self.faults
                           else None,
                           edit_inittab=not first or "inittab-unedited" not in self.faults,
                           inittab_backup=first and "inittabe" in self.faults,
                           memcheck=memcheck)
                # mkfs.ext4 straight into the LV's byte range of the exported image
                self.local.run(["mke2fs", "-q", "-F", "-t", inv.filesystem, "-L", guest.name,
                                "-E", f"offset={rng.offset}", "-d", tmp,
                                self.storage_facts.image, f"{rng.size // 1024}k"])
            config = render_domain_config(guest.domain)
            for host in self.lab_hosts(Role.RESOURCE):
                target = host.etc_file(guest.domain.config_path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(config)

    def _make_ssh(self) -> GuestSsh:
        """A client key and a guest host key of this lab's own; the host key is pinned."""
        inv, d = self.inventory, self.ssh_dir
        client_key(self.local, d, f"xenlab-{inv.lab}")
        host_key = guest_host_key(self.local, d)
        guests = [g.host for g in inv.guests]  # one host key for every guest of the lab
        (d / "known_hosts").write_text("".join(f"{g.name},{g.address} {host_key}\n"
                                               for g in guests))
        storage = self.lab_hosts(Role.STORAGE)[0]
        (d / "config").write_text("".join(ssh_entry(g.name, str(g.address), d,
                                                    namespace_proxy(storage.namespace))
                                          for g in guests))
        return guest_ssh(self.local, d)

    @property
    def ssh_dir(self) -> Path:
        return self.directory / "ssh"

    # -- guest ---------------------------------------------------------------------------
    def enter_vm_running(self) -> None:
        inv = self.inventory
        resources = self.lab_hosts(Role.RESOURCE)
        addresses = {g.name: IPv4Interface(f"{g.host.address}/{inv.network.prefixlen}")
                     for g in inv.guests}
        self._driver = QemuDriver(resources, self.qemu_binary, self.resolve_disk, addresses,
                                     incoming_ports(inv), self.domain_config)
        first = resources[0]
        if "local-disk" in self.faults:  # the lie: the disk secretly on the first host
            self._serve_local_disk(first)
        for guest in inv.guests:
            with self.progress.step(f"{guest.name} started on {first.name}"):
                self._driver.start(first.name, self.domain_config(first.name, guest.name))
            self.guest_hosts[guest.name] = first.name
        for guest in inv.guests:
            with self.progress.step(f"{guest.name} answers ping"):
                self.wait_guest(timeout=90 * len(inv.guests), guest=guest.name)
        self._inject_faults()

    def _inject_faults(self) -> None:
        """Break the running lab on purpose (the image faults were made in guest_ready)."""
        inv = self.inventory
        last = self.lab_hosts(Role.RESOURCE)[-1]
        for fault in self.faults:
            self.progress.say(f"fault injected: {fault}: {FAULTS[fault]}")
        if "config-disk" in self.faults:
            for host in self.lab_hosts(Role.RESOURCE):
                path = host.etc_file(inv.domain.config_path)
                path.write_text(path.read_text().replace(f"phy:{inv.lvm.path},",
                                                         f"phy:xen/{inv.lvm.lv},"))
        if "config-memory" in self.faults:  # the same on every host: only the truth catches it
            for host in self.lab_hosts(Role.RESOURCE):
                path = host.etc_file(inv.domain.config_path)
                path.write_text(path.read_text().replace(f"memory = {inv.domain.memory}\n",
                                                         f"memory = {2 * inv.domain.memory}\n"))
        if "lv-mounted" in self.faults:
            assert self.storage_facts is not None
            rng = self.storage_facts.lv_range
            last.runner.run(["mount", "-o", f"loop,ro,noload,offset={rng.offset},"
                             f"sizelimit={rng.size}", self.storage_facts.image, "/mnt"])
        if "relocation-closed" in self.faults:
            last.runner.run(["nft", "-f", "-"], input=(
                "table inet xenlab_fault {\n chain input {\n"
                "  type filter hook input priority 0;\n"
                f"  tcp dport {inv.relocation_port} drop\n }}\n}}\n"))
        if "second-vblade" in self.faults:
            assert self.journal is not None
            rogue = last.directory / "second-export.img"
            self.journal.add_image(str(rogue))
            with open(rogue, "wb") as f:
                f.truncate(64 << 20)
            argv = ["vblade", str(inv.aoe.shelf), str(inv.aoe.slot), inv.aoe.initiator_interface,
                    str(rogue)]
            proc = last.runner.spawn(argv, log=str(last.directory / "vblade.log"))
            last.record_process(proc.pid, "second vblade (fault)")
            time.sleep(0.1)

        if "other-export" in self.faults:
            assert self.journal is not None
            storage = self.lab_hosts(Role.STORAGE)[0]
            other = storage.directory / "other-export.img"
            self.journal.add_image(str(other))
            with open(other, "wb") as f:
                f.truncate(16 << 20)
            argv = ["vblade", str(inv.aoe.shelf), str(inv.aoe.slot + 1), inv.aoe.interface,
                    str(other)]
            proc = storage.runner.spawn(argv, log=str(storage.directory / "vblade-other.log"))
            storage.record_process(proc.pid, "another vblade export (fault)")
            time.sleep(0.1)

    def domain_config(self, host: str, guest: str = "") -> DomainConfig:
        """The domain config of `guest` (a name, or its config path; "": the first) as that
        host has it (parsed from its /etc)."""
        path = guest if guest.startswith("/") else guest_of(self.inventory, guest).domain.config_path
        return parse_domain_config(self.hosts[host].etc_file(path).read_text(), f"{host}:{path}")

    def resolve_disk(self, host: str, source: str) -> DiskImage:
        """`phy:/dev/vg_xen/lv_vm1` -> the LV's byte range in the exported image."""
        assert self.storage_facts is not None
        kind, _, device = source.partition(":")
        lvs = {f"/dev/{self.inventory.lvm.vg}/{g.lv}": g.lv for g in self.inventory.guests}
        if kind != "phy" or device not in lvs:
            raise LabError(f"disk {source!r} of the domain config does not exist on {host} "
                           f"(the lab has {', '.join(lvs)})")
        rng = self.storage_facts.lv_ranges[lvs[device]]
        if self._local_disk is not None and lvs[device] == self.inventory.lvm.lv:
            return self._local_disk
        return DiskImage(self.storage_facts.image, rng.offset, rng.size)

    _local_disk: DiskImage | None = None

    def _serve_local_disk(self, host: LabHost) -> None:
        """The local-disk fault: the LV's bytes copied to `host`'s own directory and served
        from its address over NBD, which every QEMU of the guest then reads."""
        assert self.storage_facts is not None
        rng = self.storage_facts.lv_range
        copy = host.directory / "local-disk.img"
        sparse_copy(Path(self.storage_facts.image), rng.offset, rng.size, copy)
        serve_over_nbd(host, self.qemu_binary, str(copy), NBD_PORT, NBD_EXPORT)
        self._local_disk = DiskImage(str(copy), 0, rng.size,
                                     nbd=f"{host.address}:{NBD_PORT}/{NBD_EXPORT}")

    def wait_guest(self, timeout: float = 60.0, guest: str = "") -> float:
        """Wait until the guest answers ping from the observer; returns the seconds waited."""
        spec = guest_of(self.inventory, guest)
        observer = self.observer_runner()
        start = time.monotonic()
        while observer.run(["ping", "-c1", "-W1", "-q", str(spec.host.address)],
                           check=False, timeout=5).rc != 0:
            if time.monotonic() - start > timeout:
                console, where = "", self.guest_hosts.get(spec.name)
                if self._driver and where:
                    path = self._driver.console_path(where, spec.name)
                    console = path.read_text(errors="replace")[-1500:] if path.exists() else ""
                raise LabError(f"{spec.name} does not answer ping after {timeout} s; "
                               f"console:\n{console}")
        return time.monotonic() - start

    # -- what suites use ------------------------------------------------------------------
    def host(self, name: str) -> Host:
        """A testinfra Host for a lab host (commands run inside its namespace)."""
        if name in {g.host.name for g in self.inventory.guests}:
            return testinfra.get_host(f"ssh://{name}", ssh_config=str(self.ssh_dir / "config"),
                                      controlpersist=0, timeout=15)
        if name not in self.hosts:
            raise LabError(f"no host {name!r} in the embedded lab")
        h = self.hosts[name]
        return embedded_host(h.anchor_pid, h.name)

    def runner(self, name: str) -> Runner:
        """Argument-list commands (and streams) on a lab host."""
        if name not in self.hosts:
            raise LabError(f"no host {name!r} in the embedded lab")
        return self.hosts[name].runner

    def migrate(self, destination: str, *, fault: MigrationFault | None = None,
                timeout: float | None = None, guest: str = "") -> MigrationResult:
        """Live-migrate the guest from where it runs now to `destination`; with `fault`, one
        fault is set off mid-transfer (the fault suite) and undone afterwards."""
        assert self._driver is not None
        name = guest_of(self.inventory, guest).name
        source = self.guest_hosts.get(name)
        if source is None or destination not in self.hosts:
            raise LabError(f"cannot migrate {name} from {source} to {destination}")
        cut = self._cut_later(destination) if "migration-cut" in self.faults else None
        injection = self._injection(fault, destination) if fault else None
        try:
            result = self._driver.migrate(
                name, source, destination,
                timeout=timeout or self.inventory.limits.migration_timeout_s,
                audit=self.memory_audit, injection=injection,
                bandwidth_mib_s=FAULT_BANDWIDTH_MIB_S if fault else None)
        finally:
            if cut is not None:
                cut.cancel()
            if cut is not None or fault is MigrationFault.LINK_CUT:
                uncut(self.runner(destination))
        if result.completed:
            self.guest_hosts[name] = destination
        return result

    def _injection(self, fault: MigrationFault, destination: str) -> Injection:
        domain = self.inventory.domain.name
        assert self._driver is not None
        hypervisor = self._driver
        if fault is MigrationFault.LINK_CUT:
            return Injection(FAULT_AFTER_S, action=lambda: self._cut(destination))
        if fault is MigrationFault.DESTINATION_KILLED:
            return Injection(FAULT_AFTER_S, action=lambda: hypervisor.kill(destination, domain))
        return Injection(FAULT_AFTER_S, cancel=True)

    def _cut(self, destination: str) -> str:
        port = self.inventory.relocation_port
        cut(self.runner(destination), port)
        return f"nftables on {destination} drops tcp port {port} (the migration stream)"

    fault_timeout_s = 15.0  # a faulted migration of the small QEMU guest (capped rate)

    def fault_injector(self) -> EmbeddedLab:
        return self

    def storage_faults(self) -> None:
        return None  # the QEMU guest reads the LV's bytes directly, not through AoE

    def power_control(self) -> NamespacePower:
        return NamespacePower(self)

    def start_duplicate(self, host: str) -> None:
        """Self-test only: a second running copy of the guest on `host` (what a lying
        harness would not notice)."""
        assert self._driver is not None
        self._driver.start(host, self.domain_config(host))

    def stop_duplicate(self, host: str) -> None:
        assert self._driver is not None
        self._driver.stop(host, self.inventory.domain.name)

    @contextlib.contextmanager
    def relocation_listener(self, destination: str) -> Iterator[None]:
        """The destination listening on the relocation port, as it does for a migration
        (QEMU started with -incoming, paused), for as long as the block runs."""
        assert self._driver is not None
        if destination == self.guest_hosts.get(self.inventory.domain.name):
            raise LabError(f"{self.inventory.domain.name} runs on {destination} already")
        self._driver.start(destination, self.domain_config(destination), incoming=True)
        try:
            yield
        finally:
            self._driver.stop(destination, self.inventory.domain.name)

    def guest_disk_ref(self) -> DiskRef | None:
        """What the running guest's disk really reads, as QEMU reports it (query-block)."""
        assert self._driver is not None
        where = self.guest_location()
        if where is None:
            return None
        backings = block_backings(self._driver.qmp(where, self.inventory.domain.name,
                                                      "query-block"))
        if not backings:
            return None
        b = backings[0]
        return DiskRef(self.inventory.storage.name, b.path, b.offset, b.size or None)

    def device_ref(self, host: str, path: str) -> DiskRef | None:
        """No device nodes here: an LV path (/dev/VG/LV, as LVM names it) is its byte range
        in the exported image; any other path is no device."""
        parts = tuple(path.removeprefix("/dev/").split("/"))
        if self._lv_ranges is None:  # the image's LVM metadata, read once: made, never changed
            report = self.export_lvm_reports()
            self._lv_ranges = {(v.vg, v.name): lv_range(report, v.vg, v.name)
                               for v in parse_lvs(report.lvs)}
        rng = self._lv_ranges.get(parts) if path.startswith("/dev/") else None
        if rng is None:
            return None
        return DiskRef(self.inventory.storage.name, str(self.image_path), rng.offset, rng.size)

    def _cut_later(self, destination: str, after_s: float = 0.3) -> threading.Timer:
        """The migration-cut fault: drop the relocation port on the destination mid-way."""
        timer = threading.Timer(after_s, lambda: self._cut(destination))
        timer.start()
        return timer

    def observer_runner(self) -> Runner:
        return self.hosts[self.inventory.observer].runner  # never 'controller' (the loader)


class NamespacePower:
    """A resource host of the embedded lab powered off hard: every process in its network
    namespace (its anchor, any QEMU left there) killed with SIGKILL, no shutdown, and its
    link to the switch down; powered on: the link up and the host's namespaces held again
    by a new anchor (its /etc, its links and addresses are its disk: they stay)."""

    def __init__(self, lab: EmbeddedLab) -> None:
        self.lab = lab

    def _host(self, name: str) -> LabHost:
        host = self.lab.hosts.get(name)
        if host is None or host.spec.role is not Role.RESOURCE:
            raise LabError(f"{name} is not a resource host of lab {self.lab.inventory.lab}")
        return host

    def off(self, name: str) -> str:
        host = self._host(name)
        if not host.namespace.startswith(jr.namespace_prefix(self.lab.inventory.lab)):
            raise LabError(f"{host.namespace} is not a namespace of lab {self.lab.inventory.lab}")
        listed = self.lab.local.run(["ip", "netns", "pids", host.namespace]).stdout.split()
        pids = sorted({int(p) for p in listed if p.isdigit()} | {host.anchor_pid} - {0})
        for pid in pids:  # inside this lab's own namespace: processes this lab started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        # the link goes only after the processes: their sockets close as they die, as a
        # crashed host's peers learn at their next packet, rather than after TCP's timeouts
        self.lab._ip(self.lab.switch, "link", "set", host.port, "down")
        host.anchor_pid = 0
        return (f"{name} powered off: SIGKILL to {len(pids)} processes in its namespace "
                f"({', '.join(map(str, pids))}), its switch port {host.port} down")

    def on(self, name: str) -> str:
        host = self._host(name)
        started = time.monotonic()
        self.lab._ip(self.lab.switch, "link", "set", host.port, "up")
        host.start_anchor()
        self.lab._wait_reachable()
        return (f"{name} powered on: switch port {host.port} up, namespaces held again (pid "
                f"{host.anchor_pid}), reachable after {time.monotonic() - started:.1f} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").is_file() and " Z " not in Path(
        f"/proc/{pid}/stat").read_text()

