"""The embedded Xen lab: the article's lab with real Xen, built on this one machine.

xen_storage is a network namespace running the real vblade (as in the QEMU-only profile);
xen_resource_1 .. N are QEMU (TCG) machines booting Debian 12's Xen 4.17 with a Debian dom0
(`xenkit`), their NICs taps on the lab's switch, so the storage network is one layer-2
segment. Each dom0 is reached over real SSH (a key made per lab, host keys pinned) and runs
the article's steps for real: `modprobe aoe`, `aoe-discover`, `/dev/etherd/e0.0`, LVM with
device-mapper, `mkfs` and the guest image on `lv_vm1`; vm1 is a PVH domU started with `xl
create` and live-migrated with `xl migrate` (over SSH between the dom0s, xl's default).

States: network -> hosts (dom0s booted) -> storage (vblade, AoE, LVM) -> guest_ready (image
and domain configs) -> vm_running. Everything is recorded in the lab's journal before it is
made; `down()` or, after a killed run, the next run removes it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import shlex
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import testinfra
from testinfra.host import Host

from xenlab.errors import CommandError, LabError
from xenlab.hosts.runner import Runner, host_prefix, ssh_runner
from xenlab.hypervisor.base import (
    Injection,
    MigrationFault,
    MigrationResult,
)
from xenlab.hypervisor.domconfig import DomainConfig, parse_domain_config
from xenlab.hypervisor.virsh import VirshDriver
from xenlab.hypervisor.xen import (
    XenCliDriver,
    live_migration_blocker,
    parse_xl_info,
    receiver_pids,
)
from xenlab.inventory.model import Inventory, Toolstack
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
from xenlab.lab.build.vblade import sparse_image, start_vblade
from xenlab.lab.built import BuiltLab
from xenlab.lab.embedded import DEFAULT_CACHE, LabHost
from xenlab.lab.guestkit import ensure_memcheck, ensure_native_probe
from xenlab.lab.image import stage_root
from xenlab.lab.state import LabState
from xenlab.lab.xenkit import XenKit, ensure_xen_kit, seed_image
from xenlab.progress import Progress
from xenlab.provision.steps import (
    Outcome,
    Step,
    apply,
    config_steps,
    image_steps,
    libvirt_xml_path,
    restore_steps,
    storage_steps,
    tree_digest,
)
from xenlab.storage.lvm import LVS_ARGS, PVS_ARGS, VGS_ARGS, LvmReports
from xenlab.storage.ref import BlockDeviceStorage

HOST_MTU = 65000  # the dom0s' link: halves migration time against 1500 (measured)
HOST_MEMORY_MIB = 768
# what one dom0 host leaves its guests: `xl info` said free_memory 372 MiB with no guest;
# every guest must fit on one host, as they all start on the first and an evacuation puts
# them all on the other
GUEST_ROOM_MIB = 360
# the least a guest runs the harness's witnesses with: xl loads the guest kernel
# uncompressed into the guest's memory, so 128 MiB leaves 82 MB to Linux; at 64 MiB the
# guest does not build, at 96 it boots with 49 MB and the kernel's OOM killer ends the
# 16 MiB memory checker (both seen)
GUEST_MIN_MIB = 128
XEN_HOST = "Xen host (QEMU)"  # what the journal says of a dom0's machine
# bootscrub=0: a Xen booted again after its power was pulled scrubbed its free memory in
# its idle loop under TCG, and a migration into it took 174 s instead of 44 (seen)
XEN_ARGS = ("console=com1 com1=115200,8n1 dom0_mem=384M,max:384M dom0_max_vcpus=1 "
            "loglvl=all guest_loglvl=all noreboot bootscrub=0")
DOM0_ARGS = "console=hvc0 earlyprintk=xen"
BOOT_TIMEOUT_S = 240.0
# SSH between the dom0s (xl migrate's transport) notices a dead peer within ~6 s, as a lab
# administrator sets it up so a cut link fails a migration instead of hanging it for hours
DOM0_SSH_CLIENT = "Host *\n  ServerAliveInterval 2\n  ServerAliveCountMax 3\n"
DOM0_SSHD_ALIVE = "ClientAliveInterval 2\nClientAliveCountMax 3\n"
FAULT_AFTER_S = 2.0  # after the transfer is seen to begin (the save stream lasts ~40 s here)
SETTLE_S = 20.0  # how long a half-received copy may take to go away by itself


def _mac(index: int) -> str:
    return f"52:54:00:18:00:{index:02x}"


class EmbeddedXenLab(BlockDeviceStorage, BuiltLab):
    STATES = (LabState.NETWORK, LabState.HOSTS, LabState.STORAGE, LabState.GUEST_READY,
              LabState.VM_RUNNING)

    def __init__(self, inventory: Inventory, *, progress: Progress,
                 root: Path = jr.DEFAULT_ROOT, cache: Path = DEFAULT_CACHE,
                 qemu_binary: str = "qemu-system-x86_64") -> None:
        super().__init__(inventory, progress, root, cache)
        small = [g for g in inventory.guests if g.domain.memory < GUEST_MIN_MIB]
        if small:
            raise LabError(f"{inventory.path}: {small[0].name} has {small[0].domain.memory} "
                           f"MiB; a guest of the embedded Xen lab needs at least "
                           f"{GUEST_MIN_MIB} MiB (xl loads its kernel uncompressed into it, and the "
                           "memory checker needs 16 MiB beside the guest's own)")
        wanted = sum(g.domain.memory for g in inventory.guests)
        if wanted > GUEST_ROOM_MIB:
            raise LabError(
                f"{inventory.path}: the guests ask for {wanted} MiB together ("
                + ", ".join(f"{g.name} {g.domain.memory}" for g in inventory.guests)
                + f"); an embedded Xen host has room for {GUEST_ROOM_MIB} MiB of guests, and "
                "every guest must fit on one host: give them less memory (domain.memory)")
        self.qemu_binary = qemu_binary
        self.storage: LabHost | None = None
        self.kit: XenKit | None = None
        self._driver: XenCliDriver | VirshDriver | None = None
        self._hosts: dict[str, Host] = {}
        self._vblade: subprocess.Popen[bytes] | None = None
        self._machines: dict[str, subprocess.Popen[bytes]] = {}  # the dom0s this run booted

    # -- naming --------------------------------------------------------------------------
    @property
    def ssh_dir(self) -> Path:
        return self.directory / "ssh"

    @property
    def control_dir(self) -> Path:
        """SSH's connection-sharing sockets: a short path (a socket path has 108 bytes at
        most, and a lab under a test's tmp dir is deep); removed with the lab."""
        return jr.control_dir(self.inventory.lab)

    @property
    def image_path(self) -> Path:
        return self.directory / "storage" / "export.img"

    def tap(self, index: int) -> str:
        return f"x{index}"

    # -- lifecycle -----------------------------------------------------------------------
    def _quiesce(self) -> None:
        for spec in self.inventory.hosts:  # the shared SSH connections, before their processes
            if spec.connection.value == "ssh":
                self._close_connection(spec.name)

    def _forget_hosts(self) -> None:
        self._hosts.clear()

    def _close_connection(self, name: str) -> None:
        if (self.ssh_dir / "config").exists():
            subprocess.run(["ssh", "-F", str(self.ssh_dir / "config"), "-O", "exit", name],
                           capture_output=True, check=False, timeout=10)

    def forget_host(self, name: str) -> None:
        """A dom0 that lost its power: its shared SSH connection closed, its Host forgotten."""
        self._close_connection(name)
        self._hosts.pop(name, None)

    # -- network -------------------------------------------------------------------------
    def enter_network(self) -> None:
        self.journal = jr.Journal.create(self.inventory.lab, self.directory)
        inv = self.inventory
        add_switch(self._add_namespace, self._ip, self.switch, mtu=HOST_MTU)
        spec = inv.storage
        directory = self.directory / spec.name
        (directory / "etc").mkdir(parents=True, exist_ok=True)
        storage = LabHost(spec, self.namespace(spec.name), directory, self.journal)
        self._add_namespace(storage.namespace)
        self._ip(self.switch, "link", "add", "p0", "mtu", str(HOST_MTU), "type", "veth", "peer",
                 "name", "eth0", "netns", storage.namespace)
        self._ip(self.switch, "link", "set", "p0", "master", SWITCH_BRIDGE, "up")
        self._ip(storage.namespace, "link", "set", "lo", "up")
        self._ip(storage.namespace, "link", "set", "eth0", "mtu", str(HOST_MTU), "up")
        self._ip(storage.namespace, "addr", "add", f"{spec.address}/{inv.network.prefixlen}",
                 "dev", "eth0")
        (storage.etc_dir / "hosts").write_text(self._hosts_file())
        (storage.etc_dir / "hostname").write_text(spec.name + "\n")
        storage.start_anchor()
        self.storage = storage
        for index, _host in enumerate(inv.resources, start=1):
            self._ip(self.switch, "tuntap", "add", "dev", self.tap(index), "mode", "tap")
            self._ip(self.switch, "link", "set", self.tap(index), "mtu", str(HOST_MTU),
                     "master", SWITCH_BRIDGE, "up")

    # -- hosts: Xen and dom0 under QEMU ---------------------------------------------------
    def enter_hosts(self) -> None:
        assert self.journal is not None
        self.kit = ensure_xen_kit(self.cache / "xen", self.progress, self.local)
        keys = self._make_keys()
        procs = {}
        for index, spec in enumerate(self.inventory.resources, start=1):
            directory = self.directory / spec.name
            directory.mkdir(parents=True, exist_ok=True)
            seed = directory / "seed.img"
            seed_image(seed, self._seed_files(spec.name, keys), {
                "XENLAB_HOST": spec.name, "XENLAB_MTU": str(HOST_MTU),
                "XENLAB_ADDRESS": f"{spec.address}/{self.inventory.network.prefixlen}"},
                self.local)
            procs[spec.name] = self._boot(index, spec.name, directory, seed)
        started = time.monotonic()
        for spec in self.inventory.resources:
            self._wait_ssh(spec.name, procs[spec.name], started)
        names = [h.name for h in self.inventory.resources]
        if self.inventory.toolstack is Toolstack.LIBVIRT:
            for name in names:
                self._start_libvirtd(name)
            self._driver = VirshDriver(
                {n: self.host(n) for n in names}, driver="xen",
                addresses={h.name: str(h.address) for h in self.inventory.resources})
        else:
            self._driver = XenCliDriver("xl", {n: self.host(n) for n in names},
                                        runners={n: self.runner(n) for n in names})

    def _start_libvirtd(self, host: str) -> None:
        """libvirtd in a dom0 (no systemd there): started, then asked for its URI."""
        with self.progress.step(f"{host}: libvirtd (xen:///system)"):
            self._ssh(host, "mkdir -p /var/log/libvirt /run/libvirt && libvirtd -d")
            deadline = time.monotonic() + 60
            while self.runner(host).run(["virsh", "-c", "xen:///system", "uri"], check=False,
                                        timeout=30).rc != 0:
                if time.monotonic() > deadline:
                    log = self._ssh(host, "tail -5 /var/log/libvirt/libvirtd.log || true")
                    raise LabError(f"{host}: libvirtd does not answer on xen:///system: {log}")
                time.sleep(0.5)

    def _make_keys(self) -> dict[str, str]:
        """The lab's client key (also the dom0s' own, for xl migrate between them) and one
        host key per dom0, all pinned in known_hosts here and in every dom0."""
        d = self.ssh_dir
        self.control_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        client_key(self.local, d, f"xenlab-{self.inventory.lab}")
        known = []
        for spec in self.inventory.resources:
            key = d / f"host_{spec.name}"
            self.local.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", spec.name,
                            "-f", str(key)])
            public = " ".join((key.with_suffix(".pub").read_text().split())[:2])
            known.append(f"{spec.name},{spec.address} {public}")
        guest_key = guest_host_key(self.local, d)  # one host key for every guest of the lab
        guests = [g.host for g in self.inventory.guests]
        known += [f"{g.name},{g.address} {guest_key}" for g in guests]
        (d / "known_hosts").write_text("\n".join(known) + "\n")
        assert self.storage is not None
        proxy = namespace_proxy(self.storage.namespace)
        (d / "config").write_text("".join(
            ssh_entry(h.name, str(h.address), d, proxy, control=self.control_dir,
                      connect_timeout=20)
            for h in (*self.inventory.resources, *guests)))
        return {"client": (d / "id_ed25519").read_text(),
                "client_pub": (d / "id_ed25519.pub").read_text(),
                "known_hosts": (d / "known_hosts").read_text()}

    def _seed_files(self, name: str, keys: dict[str, str]) -> dict[str, tuple[str, int]]:
        d = self.ssh_dir
        return {
            "/etc/hostname": (name + "\n", 0o644),
            "/etc/hosts": (self._hosts_file(), 0o644),
            "/etc/ssh/ssh_host_ed25519_key": ((d / f"host_{name}").read_text(), 0o600),
            "/etc/ssh/ssh_host_ed25519_key.pub": ((d / f"host_{name}.pub").read_text(), 0o644),
            "/root/.ssh/authorized_keys": (keys["client_pub"], 0o600),
            "/root/.ssh/id_ed25519": (keys["client"], 0o600),
            "/root/.ssh/known_hosts": (keys["known_hosts"], 0o644),
            "/root/.ssh/config": (DOM0_SSH_CLIENT, 0o600),
            "/etc/ssh/sshd_config.d/xenlab-alive.conf": (DOM0_SSHD_ALIVE, 0o644),
        }

    def _boot(self, index: int, name: str, directory: Path, seed: Path) -> subprocess.Popen[bytes]:
        assert self.kit is not None and self.journal is not None
        kit = self.kit
        argv = ["ip", "netns", "exec", self.switch, self.qemu_binary, "-name", name,
                "-machine", "pc,accel=tcg", "-cpu", "qemu64,+svm,+npt", "-smp", "1",
                "-m", str(HOST_MEMORY_MIB), "-nodefaults", "-display", "none", "-vga", "none",
                "-kernel", str(kit.xen), "-append", XEN_ARGS,
                "-initrd", f"{kit.vmlinuz} {DOM0_ARGS},{kit.dom0_initrd}",
                "-drive", f"file={kit.root_image},if=virtio,format=raw,snapshot=on,cache=unsafe",
                "-drive", f"file={seed},if=virtio,format=raw,readonly=on",
                "-netdev", f"tap,id=n0,ifname={self.tap(index)},script=no,downscript=no",
                "-device", f"virtio-net-pci,netdev=n0,mac={_mac(index)},host_mtu={HOST_MTU}",
                "-serial", f"file:{directory / 'host.console'}"]
        env = dict(os.environ, TMPDIR=str(directory))  # snapshot=on's overlay: in the lab
        with open(directory / "qemu.log", "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.journal.add_process(proc.pid, name, XEN_HOST)
        self._machines[name] = proc
        return proc

    def _wait_ssh(self, name: str, proc: subprocess.Popen[bytes], started: float) -> None:
        console = self.directory / name / "host.console"
        with self.progress.step(f"{name}: Xen and dom0 boot, SSH ready"):
            while True:
                if proc.poll() is not None:
                    raise LabError(f"{name}: QEMU exited {proc.returncode}: "
                                   f"{_tail(self.directory / name / 'qemu.log')}")
                text = console.read_text(errors="replace") if console.exists() else ""
                if "XENLAB-DOM0-READY" in text:
                    result = self.runner(name).run(["true"], check=False, timeout=30)
                    if result.rc == 0:
                        break
                if "Kernel panic" in text or "Panic on CPU" in text:
                    raise LabError(f"{name} crashed while booting: {_tail(console)}")
                if time.monotonic() - started > BOOT_TIMEOUT_S:
                    raise LabError(f"{name} not reachable over SSH after {BOOT_TIMEOUT_S:.0f} "
                                   f"s; console:\n{_tail(console)}")
                time.sleep(0.5)

    # -- storage: vblade here, the article's AoE and LVM steps in the dom0s --------------
    def enter_storage(self) -> None:
        assert self.journal is not None and self.storage is not None
        inv = self.inventory
        sparse_image(self.journal, self.image_path, inv.image_size)
        self._start_vblade()
        apply(storage_steps(inv, self.etherd_device), self.runner,
                                 self.progress)

    def _start_vblade(self) -> None:
        assert self.storage is not None
        storage = self.storage
        self._vblade = start_vblade(storage.runner, storage.name, self.inventory.aoe,
                                    self.image_path, storage.directory / "vblade.log",
                                    storage.record_process)

    def storage_outage(self, seconds: float) -> str:
        """The storage target stopped (SIGTERM to the vblade this lab started) for `seconds`,
        then started again on the same image: the dom0s' aoe driver retransmits meanwhile."""
        assert self.storage is not None
        proc = self._vblade
        if proc is None or proc.poll() is not None:
            raise LabError(f"vblade does not run on {self.storage.name}")
        proc.terminate()
        proc.wait(timeout=10)
        time.sleep(seconds)
        self._start_vblade()
        return (f"vblade (pid {proc.pid}) on {self.storage.name} stopped for {seconds:g} s, "
                f"then started again (pid {self._vblade.pid if self._vblade else '?'})")

    def _built_xen(self, host: str) -> dict[str, str]:
        """The Xen this lab booted on `host`, as `xl info` says (the kit's own check, under
        either toolstack: not a driver's)."""
        return parse_xl_info(self._ssh(host, "xl info", timeout=60))

    def _ssh(self, host: str, script: str, input: str | None = None,
             timeout: float = 300.0) -> str:
        try:
            return self.runner(host).run(["sh", "-c", script], input=input,
                                         timeout=timeout).stdout
        except CommandError as exc:
            raise LabError(f"{host}: {exc}") from None

    @property
    def aoe_device(self) -> str:
        """What the storage host exports (the sparse image), as on a real lab the partition."""
        return str(self.image_path)

    @property
    def etherd_device(self) -> str:
        """The export as the dom0s' aoe driver shows it."""
        return f"/dev/etherd/{self.inventory.aoe.target}"

    # -- guest image and configs -----------------------------------------------------------
    def enter_guest_ready(self) -> None:
        apply(self._image_and_config_steps(), self.runner, self.progress)

    def _image_and_config_steps(self) -> list[Step]:
        """Each guest's image (the article's xenimage.tgz, fixed up; its own host name) and
        the domain configs."""
        inv = self.inventory
        ssh = guest_ssh(self.local, self.ssh_dir)
        memcheck = ensure_memcheck(self.cache / "guest")
        images = {}
        for guest in inv.guests:
            with tempfile.TemporaryDirectory(prefix="xenlab-image-", dir=self.directory) as tmp:
                root = Path(tmp) / "root"
                stage_root(root, hostname=guest.name, root_device=guest.domain.root,
                           filesystem=inv.filesystem, ssh=ssh, hosts=self._hosts_file(),
                           memcheck=memcheck)
                tarball = Path(tmp) / "xenimage.tgz"  # the article's name for it
                with tarfile.open(tarball, "w:gz", compresslevel=1) as tar:
                    tar.add(root, arcname=".")
                # the content's digest, so a second run finds it in place
                images[guest.name] = (base64.encodebytes(tarball.read_bytes()).decode(),
                                      tree_digest(root))
        return [*image_steps(inv, images), *config_steps(inv, "xl")]

    def provision_again(self) -> list[Outcome]:
        """The article's steps once more on a running lab: each should find itself done."""
        if not (self.ssh_dir / "config").exists():
            raise LabError(f"no running embedded Xen lab '{self.inventory.lab}' under "
                           f"{self.root} (keep one up with --lab-keep)")
        steps = [*storage_steps(self.inventory, self.etherd_device),
                 *self._image_and_config_steps()]
        return apply(steps, self.runner, self.progress)

    def domain_config(self, host: str, guest: str = "") -> DomainConfig:
        path = guest_of(self.inventory, guest).domain.config_path
        text = self.host(host).file(path).content_string
        return parse_domain_config(text, f"{host}:{path}")

    # -- guest ---------------------------------------------------------------------------
    def enter_vm_running(self) -> None:
        assert self._driver is not None
        inv = self.inventory
        first = inv.resources[0].name
        for spec in inv.resources:  # fail early: a guest Xen here cannot live-migrate
            xen = self._built_xen(spec.name)
            for guest in inv.guests:
                blocker = live_migration_blocker(
                    xen, guest.domain.guest_type,
                    hap=dict(guest.domain.options).get("hap", 1) != 0)
                if blocker:
                    raise LabError(f"{guest.name}: {blocker}")
        for guest in inv.guests:
            path = guest.domain.config_path
            if inv.toolstack is not Toolstack.XL:
                path = libvirt_xml_path(path)
            with self.progress.step(f"{first}: {'xl' if inv.toolstack is Toolstack.XL else 'virsh'} "
                                    f"create {path}"):
                self._driver.create(first, path)
        for guest in inv.guests:
            with self.progress.step(f"{guest.name} answers ping and SSH"):
                self.wait_guest(guest=guest.name)

    def wait_guest(self, timeout: float = 120.0, guest: str = "") -> float:
        assert self.storage is not None
        start = time.monotonic()
        spec = guest_of(self.inventory, guest)
        while True:
            pinged = self.storage.runner.run(["ping", "-c1", "-W1", "-q",
                                              str(spec.host.address)], check=False).rc == 0
            if pinged and self.runner(spec.host.name).run(["true"], check=False,
                                                           timeout=30).rc == 0:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                where = self.inventory.resources[0].name
                console = self._ssh(where, f"timeout 2 xl console {shlex.quote(spec.name)} "
                                           "</dev/null || true")
                raise LabError(f"{spec.name} does not answer ping and SSH after {timeout} s; "
                               f"console:\n{console[-1500:]}")
            time.sleep(0.5)

    # -- what suites use ------------------------------------------------------------------
    probe_python = "python3"  # the dom0s' (python3-minimal) and this machine's alike

    @property
    def probe_binary(self) -> str | None:
        return str(ensure_native_probe(self.cache / "tools"))

    def host(self, name: str) -> Host:
        if self.storage is not None and name == self.storage.name:
            from xenlab.hosts.access import embedded_host

            return embedded_host(self.storage.anchor_pid, name)
        if name not in self._hosts:
            self.inventory.host(name)  # KeyError for an unknown name
            self._hosts[name] = testinfra.get_host(
                f"ssh://{name}", ssh_config=str(self.ssh_dir / "config"), controlpersist=0,
                timeout=30)
        return self._hosts[name]

    def runner(self, name: str) -> Runner:
        if self.storage is not None and name == self.storage.name:
            return self.storage.runner
        spec = self.inventory.host(name)
        return ssh_runner(name, str(spec.address), ssh_config=str(self.ssh_dir / "config"))

    def lvm_views(self) -> list[LvmReports]:
        views = []
        for spec in self.inventory.resources:
            texts = [self._ssh(spec.name, shlex.join(args)) for args in
                     (PVS_ARGS, VGS_ARGS, LVS_ARGS)]
            views.append(LvmReports(spec.name, *texts))
        return views

    @contextlib.contextmanager
    def relocation_listener(self, destination: str) -> Iterator[None]:
        """xl migrates over SSH: sshd listens already."""
        yield

    def migrate(self, destination: str, *, fault: MigrationFault | None = None,
                timeout: float | None = None, guest: str = "") -> MigrationResult:
        """`xl migrate` from where the guest runs to `destination`; with `fault`, one fault
        set off mid-stream, undone afterwards, and half-received copies waited for."""
        assert self._driver is not None
        name = guest_of(self.inventory, guest).name
        source = self.guest_location(name)
        if source is None or destination == source:
            raise LabError(f"cannot migrate {name} from {source} to {destination}")
        injection = self._injection(fault, source, destination) if fault else None
        limit = timeout or self.inventory.limits.migration_timeout_s
        try:
            if isinstance(self._driver, VirshDriver):
                if injection is not None:
                    raise LabError("faults are set off by the xl and QEMU drivers, not by "
                                   "virsh: run the fault suite on the xl profile")
                result = self._driver.migrate(name, source,
                                                 destination, timeout=limit)
            else:
                result = self._driver.migrate(name, source,
                                                 destination, timeout=limit,
                                                 injection=injection)
        finally:
            if fault is MigrationFault.LINK_CUT:
                uncut(self.runner(destination))
        if fault is not None:
            result = dataclasses.replace(result, cleanup=tuple(self.settle(destination)))
        return result

    def _injection(self, fault: MigrationFault, source: str, destination: str) -> Injection:
        if fault is MigrationFault.LINK_CUT:
            return Injection(FAULT_AFTER_S, action=lambda: self._cut(source, destination))
        if fault is MigrationFault.DESTINATION_KILLED:
            return Injection(FAULT_AFTER_S, action=lambda: self._kill_receiver(destination))
        return Injection(FAULT_AFTER_S, cancel=True)

    def _cut(self, source: str, destination: str) -> str:
        address = self.inventory.host(source).address
        cut(self.runner(destination), 22, saddr=str(address))
        return (f"nftables on {destination} drops tcp port 22 from {source} ({address}): "
                "xl's migration stream")

    def _kill_receiver(self, destination: str) -> str:
        """SIGKILL to `xl migrate-receive` on the destination (started by this migration)."""
        table = self.runner(destination).run(["ps", "-eo", "pid=,args="]).stdout
        pids = receiver_pids(table)
        if len(pids) != 1:
            raise LabError(f"expected one `xl migrate-receive` on {destination}, found "
                           f"{len(pids)} in: {table.strip()[-600:]}")
        self.runner(destination).run(["kill", "-KILL", str(pids[0])])
        return f"SIGKILL to `xl migrate-receive` (pid {pids[0]}) on {destination}"

    fault_timeout_s = 120.0  # an xl migration under TCG

    def fault_injector(self) -> EmbeddedXenLab | None:
        return self if "fault-injection" in self.features else None

    def storage_faults(self) -> EmbeddedXenLab | None:
        return self if "storage-outage" in self.features else None

    def settle(self, destination: str) -> list[str]:
        """After a faulted migration: wait for half-received copies to go away by themselves
        (xl's receiver destroys its copy when the stream ends); destroy what stays, and say
        so."""
        names = {g.name for g in self.inventory.guests}
        assert self._driver is not None
        deadline = time.monotonic() + SETTLE_S
        while True:
            strays = [(h, n) for g in names for h, n, _ in self.copies(g) if n not in names]
            if not strays or time.monotonic() > deadline:
                break
            time.sleep(1)
        notes = []
        for host, stray in strays:
            self._driver.destroy(host, stray)
            notes.append(f"destroyed {stray} left on {host} {SETTLE_S:.0f} s after the fault")
        return notes

    def power_control(self) -> DomZeroPower:
        return DomZeroPower(self)

    def attach(self) -> None:
        """Take up a lab another run built and kept (`xenlab lab power`): its journal, its
        storage host's namespaces, the Xen kit it booted."""
        journal = jr.Journal.read(self.directory) if jr.owned_child(
            self.root, self.inventory.lab) else None
        if journal is None or not (self.ssh_dir / "config").exists():
            raise LabError(f"no running embedded Xen lab '{self.inventory.lab}' under "
                           f"{self.root} (keep one up with --lab-keep)")
        spec = self.inventory.storage
        anchors = [p for p in journal.processes
                   if p.host == spec.name and p.what == "host namespaces" and p.alive()]
        if not anchors:
            raise LabError(f"lab '{self.inventory.lab}' has no running storage host")
        if journal.owner_alive() and not journal.kept:
            raise LabError(f"lab '{self.inventory.lab}' is in use by the run with PID "
                           f"{journal.owner_pid}: that run switches its power itself")
        self.journal = journal
        self.storage = LabHost(spec, self.namespace(spec.name), self.directory / spec.name,
                               journal)
        self.storage.anchor_pid = anchors[-1].pid
        self.storage.runner = Runner(spec.name, host_prefix(anchors[-1].pid))
        self.kit = ensure_xen_kit(self.cache / "xen", self.progress, self.local)

    def start_duplicate(self, host: str) -> None:
        raise LabError("the fault suite's self-tests run on the QEMU-only embedded lab")

    def stop_duplicate(self, host: str) -> None:
        raise LabError("the fault suite's self-tests run on the QEMU-only embedded lab")


def _tail(path: Path, size: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


class DomZeroPower:
    """A dom0 of the embedded Xen lab powered off hard: its QEMU machine (the PID this lab
    recorded, start time checked) killed with SIGKILL, no shutdown; powered on: booted again
    from the same disks, its root a fresh snapshot as a server's memory starts empty, then set
    up as its own boot would: the aoe driver, the export seen, every guest's LV active, the
    domain configs (and libvirtd under libvirt)."""

    def __init__(self, lab: EmbeddedXenLab) -> None:
        self.lab = lab

    def _index(self, name: str) -> int:
        for index, spec in enumerate(self.lab.inventory.resources, start=1):
            if spec.name == name:
                return index
        raise LabError(f"{name} is not a resource host of lab {self.lab.inventory.lab}")

    def _machines(self, name: str) -> list[jr.ProcessRecord]:
        assert self.lab.journal is not None
        return [p for p in self.lab.journal.processes
                if p.host == name and p.what == XEN_HOST and p.alive()]

    def off(self, name: str) -> str:
        self._index(name)
        machines = self._machines(name)
        if len(machines) != 1:
            raise LabError(f"{name} has {len(machines)} running machines in lab "
                           f"{self.lab.inventory.lab}'s journal, not one: it is not on")
        pid = machines[0].pid
        if jr.process_start(pid) == machines[0].start:  # still the machine this lab booted
            os.kill(pid, signal.SIGKILL)
        proc = self.lab._machines.pop(name, None)
        if proc is not None:
            proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not jr.ended(machines[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.lab.forget_host(name)
        return f"{name} powered off: SIGKILL to its QEMU machine (pid {pid}), no shutdown"

    def on(self, name: str) -> str:
        lab = self.lab
        index = self._index(name)
        if self._machines(name):
            raise LabError(f"{name} is already on")
        started = time.monotonic()
        directory = lab.directory / name
        console = directory / "host.console"
        if console.exists():  # the boot before the power pull, kept for the logs
            console.rename(directory / "host-before-power-off.console")
        proc = lab._boot(index, name, directory, directory / "seed.img")
        lab._wait_ssh(name, proc, started)
        apply(restore_steps(lab.inventory, lab.etherd_device, name, "xl"), lab.runner,
              lab.progress)
        if lab.inventory.toolstack is Toolstack.LIBVIRT:
            lab._start_libvirtd(name)
        return (f"{name} powered on: booted again (QEMU pid {proc.pid}), the aoe driver, "
                f"the export and every LV set up again, {time.monotonic() - started:.0f} s")
