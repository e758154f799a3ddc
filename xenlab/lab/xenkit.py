"""The embedded Xen lab's host kit: Debian 12's Xen 4.17 and a Debian dom0, bootable under QEMU.

Built once into the cache (about 3 minutes, most of it debootstrap's downloads) and shared by
every embedded Xen lab:

- `xen.elf`: the hypervisor, `zcat /boot/xen-4.17-amd64.gz` (a multiboot ELF for `-kernel`);
- `vmlinuz`: Debian's 6.1 amd64 kernel, dom0's and the PVH guest's;
- `dom0-initrd.gz`: busybox, the virtio and ext4 modules; mounts the root disk, runs xinit;
- `root.img`: the dom0 root filesystem (debootstrap minbase + Xen, LVM, aoetools, sshd);
  each host boots it copy-on-write (`snapshot=on`), so hosts never change it;
- `domu-initrd.gz` inside `root.img` too: the guest's initramfs (xen-blkfront, netfront).

What differs per lab and host (name, address, SSH keys, hosts file) comes from a small seed
disk made per host at boot (`seed_image`), never from the shared image.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from xenlab.errors import CommandError, LabError
from xenlab.hosts.runner import Runner
from xenlab.lab.guestkit import INITRAMFS_INIT, KernelTree, build_initramfs, unpack_kernel
from xenlab.progress import Progress

XEN_PACKAGES = (
    "xen-hypervisor-4.17-amd64", "xen-utils-4.17", "xenstore-utils",  # Xen and xl
    "openssh-server", "openssh-client",  # suites and xl migrate reach dom0s over SSH
    "lvm2", "aoetools",  # the article's storage: aoe-discover, pvcreate .. lvchange
    "python3-minimal",  # the on-host AoE probe and testinfra's modules
    "iproute2", "iputils-ping", "busybox", "procps", "kmod", "e2fsprogs", "tar", "gzip",
    "nftables",  # fault injection (migration cut) on the dom0s
    "libvirt-daemon-driver-xen", "libvirt-clients",  # the libvirt profile: libvirtd over libxl
)
KERNEL_META = "linux-image-amd64"
DOM0_BOOT_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
DOMU_MODULES = ("xen_blkfront", "xen_netfront", "crc32c_generic", "ext4")
# dom0 does not need these: leaving them out keeps the image small
PRUNED_MODULES = ("drivers/gpu", "drivers/media", "drivers/net/wireless", "drivers/infiniband",
                  "drivers/staging", "drivers/iio", "drivers/bluetooth", "sound",
                  "net/wireless", "net/mac80211", "net/bluetooth", "drivers/scsi", "drivers/usb",
                  "drivers/hid", "drivers/input", "drivers/mtd", "drivers/isdn")
DOMU_DIR = "/var/lib/xenlab"  # the guest's kernel and initramfs inside dom0
ROOT_IMAGE_SIZE = "1536M"

DOM0_INITRD_INIT = INITRAMFS_INIT.replace(
    'mount -o ro "$root" /newroot', 'mount -o rw,noatime "$root" /newroot').replace(
    "exec switch_root /newroot /sbin/init", "exec switch_root /newroot /sbin/xinit")

# PID 1 of each dom0 (after the initramfs): what systemd would do, in a second instead of a
# minute under TCG. Per-host facts come from the seed disk (/dev/vdb).
XINIT = r"""#!/bin/sh
# xenlab dom0 init: mounts, the host's seed, Xen's daemons, xenbr0, sshd; then busybox init.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
log() { read up _ </proc/uptime; echo "xinit[$up]: $*" >/dev/hvc0; }
mount -t proc proc /proc; mount -t sysfs sysfs /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm; mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
# udev would make these; Xen's hotplug locking (locking.sh) stats /dev/stdin and spins
# forever without it
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
mkdir -p /run/lock /run/sshd /run/xen /run/xenstored /run/lvm /var/log/xen /var/lib/xen /seed
mount -o ro /dev/vdb /seed || log "XENLAB-SEED-MISSING"
. /seed/host.env
cp -a /seed/files/. /
echo "$XENLAB_HOST" > /proc/sys/kernel/hostname  # hostname(1) refuses the article's '_'
log "modules"
modprobe -a xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc xen-blkback xen-netback \
  virtio_net bridge dm-mod
mount -t xenfs xenfs /proc/xen
log "xenstored"
export XENSTORED_ROOTDIR=/run/xenstored
/usr/lib/xen-4.17/bin/xenstored --pid-file /run/xenstore.pid
i=0; until xenstore-read -s / >/dev/null 2>&1 || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done
/usr/lib/xen-4.17/bin/xen-init-dom0 >/dev/null
/usr/lib/xen-4.17/bin/xenconsoled --pid-file /run/xenconsoled.pid
log "network"
ip link set lo up
ip link add xenbr0 type bridge stp_state 0 forward_delay 0
ip link set xenbr0 address "$(cat /sys/class/net/eth0/address)"
ip link set eth0 mtu "$XENLAB_MTU" master xenbr0 up
ip link set xenbr0 mtu "$XENLAB_MTU" up
ip addr add "$XENLAB_ADDRESS" dev xenbr0
/usr/sbin/sshd
log "XENLAB-DOM0-READY host=$XENLAB_HOST"
exec /bin/busybox init
"""

INITTAB = """# busybox init, after /sbin/xinit: only reaps orphans (no console getty: a respawning
# shell on hvc0 costs dom0 its CPU under TCG; the lab reaches dom0 over SSH)
::shutdown:/bin/sync
"""

SSHD_CONFIG = """# xenlab dom0: key logins only
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
PrintMotd no
"""

XL_CONF = 'autoballoon="off"\nvif.default.bridge="xenbr0"\n'
LVM_SED = [  # no udev in dom0: LVM makes its own device nodes
    r"s/^\(\s*\)# udev_sync = 1/\1udev_sync = 0/",
    r"s/^\(\s*\)# udev_rules = 1/\1udev_rules = 0/",
    r"s/^\(\s*\)# obtain_device_list_from_udev = 1/\1obtain_device_list_from_udev = 0/",
    r"s/^\(\s*\)# monitoring = 1/\1monitoring = 0/",
]

RECIPE_VERSION = "2"  # bump when the steps below change what a kit holds


def recipe_digest() -> str:
    """Changes whenever what goes into the kit changes: a new digest builds a new kit."""
    text = json.dumps([RECIPE_VERSION, XEN_PACKAGES, KERNEL_META, DOM0_BOOT_MODULES,
                       DOMU_MODULES, PRUNED_MODULES, DOM0_INITRD_INIT, XINIT, INITTAB,
                       SSHD_CONFIG, XL_CONF, LVM_SED, INITRAMFS_INIT, ROOT_IMAGE_SIZE])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class XenKit:
    directory: Path
    kernel_version: str

    @property
    def xen(self) -> Path:
        return self.directory / "xen.elf"

    @property
    def vmlinuz(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def dom0_initrd(self) -> Path:
        return self.directory / "dom0-initrd.gz"

    @property
    def root_image(self) -> Path:
        return self.directory / "root.img"

    @property
    def domu_kernel(self) -> str:
        return f"{DOMU_DIR}/vmlinuz"

    @property
    def domu_ramdisk(self) -> str:
        return f"{DOMU_DIR}/initrd.gz"


def debian_mirror(sources: str) -> str | None:
    """The first bookworm mirror in apt's sources (deb822 or one-line), never security's."""
    for line in sources.splitlines():
        fields = line.split()
        if line.startswith("URIs:") and len(fields) > 1 and "security" not in fields[1]:
            return fields[1]
        if len(fields) > 2 and fields[0] == "deb" and fields[2] == "bookworm":
            return fields[1]
    return None


def _apt_sources() -> str:
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            texts.append(path.read_text())
        except OSError:
            continue
    return "\n".join(texts)


def ensure_xen_kit(cache: Path, progress: Progress, runner: Runner | None = None) -> XenKit:
    """The kit for this recipe, built on first use (one progress line per step). Two runs
    starting at once (two labs side by side) build it once: the second waits for the first."""
    directory = cache / f"kit-{recipe_digest()}"
    done = directory / "kit.json"
    if done.exists():
        return XenKit(directory, json.loads(done.read_text())["kernel"])
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with progress.step("Xen kit: another run is building it; waiting"):
                fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return XenKit(directory, json.loads(done.read_text())["kernel"])
        return _build(cache, directory, done, progress, runner or Runner())


def _build(cache: Path, directory: Path, done: Path, progress: Progress,
           runner: Runner) -> XenKit:
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed (scripts/setup.sh installs it)")
    mirror = debian_mirror(_apt_sources())
    if mirror is None:
        raise LabError("no Debian mirror for bookworm in /etc/apt/sources.list*")
    for old in stale_builds(cache, _KIT_NAME, directories=True):
        shutil.rmtree(old, ignore_errors=True)  # one kit at a time: an old one is 1.5 GB
    directory.mkdir(parents=True, exist_ok=True)
    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xenlab-xenkit-", dir=cache) as tmp:
        work = Path(tmp)
        rootfs = work / "rootfs"
        # debootstrap's result is kept (by package list) apart from the recipe's other steps
        base = cache / f"rootfs-{hashlib.sha256(','.join(XEN_PACKAGES).encode()).hexdigest()[:12]}.tar"
        if not base.exists():
            with progress.step("Xen kit: debootstrap of the dom0 root filesystem (minutes, "
                               "once)", announce=True):
                try:
                    runner.run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}",
                                "--include=" + ",".join(XEN_PACKAGES), "bookworm", str(rootfs),
                                mirror], timeout=1800)
                except CommandError as exc:
                    raise LabError(f"debootstrap of the dom0 root failed: {exc}") from None
                for old in stale_builds(cache, _ROOTFS_TAR, directories=False):
                    old.unlink()
                runner.run(["tar", "-C", str(rootfs), "-cf", str(base.with_suffix(".tmp")), "."],
                           timeout=600)
                os.replace(base.with_suffix(".tmp"), base)
        else:
            with progress.step("Xen kit: dom0 root filesystem from the debootstrap cache"):
                rootfs.mkdir()
                runner.run(["tar", "-C", str(rootfs), "-xf", str(base)], timeout=600)
        with progress.step("Xen kit: dom0 kernel"):
            tree = unpack_kernel(KERNEL_META, work, runner)
        with progress.step("Xen kit: dom0 and guest initramfs"):
            build_initramfs(tree, DOM0_BOOT_MODULES, DOM0_INITRD_INIT,
                            directory / "dom0-initrd.gz", runner)
            domu = rootfs / DOMU_DIR.lstrip("/")
            domu.mkdir(parents=True, exist_ok=True)
            build_initramfs(tree, DOMU_MODULES, INITRAMFS_INIT, domu / "initrd.gz", runner)
            shutil.copyfile(tree.vmlinuz, domu / "vmlinuz")
        with progress.step("Xen kit: dom0 configuration"):
            _configure_rootfs(rootfs, tree, runner)
            with open(directory / "xen.elf", "wb") as out:
                subprocess.run(["zcat", str(rootfs / "boot/xen-4.17-amd64.gz")], stdout=out,
                               check=True)
            shutil.copyfile(tree.vmlinuz, directory / "vmlinuz")
        with progress.step("Xen kit: root image (mke2fs -d)"):
            runner.run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "xenlab-dom0",
                        "-E", "root_owner=0:0", "-d", str(rootfs),
                        str(directory / "root.img"), ROOT_IMAGE_SIZE], timeout=600)
    done.write_text(json.dumps({"kernel": tree.version, "recipe": recipe_digest(),
                                "packages": list(XEN_PACKAGES)}))
    return XenKit(directory, tree.version)


def _configure_rootfs(rootfs: Path, tree: KernelTree, runner: Runner) -> None:
    modules = _inside(rootfs, "lib/modules")
    shutil.rmtree(modules, ignore_errors=True)
    modules.mkdir(parents=True)
    shutil.copytree(tree.modules_dir, modules / tree.version, symlinks=True)
    for pruned in PRUNED_MODULES:
        shutil.rmtree(_inside(rootfs, f"lib/modules/{tree.version}/kernel/{pruned}"),
                      ignore_errors=True)
    runner.run(["depmod", "-b", str(rootfs), tree.version])
    for junk in ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/cache/apt/archives",
                 "var/lib/apt/lists"):
        for child in _inside(rootfs, junk).glob("*"):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)  # a file, or a link itself (never its target)
    for key in _inside(rootfs, "etc/ssh").glob("ssh_host_*"):  # per lab and host, from the seed
        key.unlink()
    _write(rootfs / "sbin/xinit", XINIT, 0o755)
    _write(rootfs / "etc/inittab", INITTAB)
    _write(rootfs / "etc/fstab", "/dev/vda / ext4 rw,noatime 0 1\n")
    _write(rootfs / "etc/ssh/sshd_config.d/xenlab.conf", SSHD_CONFIG)
    _write(rootfs / "etc/xen/xl.conf", XL_CONF)
    runner.run(["sed", "-i", *[a for e in LVM_SED for a in ("-e", e)],
                str(rootfs / "etc/lvm/lvm.conf")])
    _fit_libvirt(rootfs)
    (rootfs / "root/.ssh").mkdir(mode=0o700, parents=True, exist_ok=True)


def _fit_libvirt(rootfs: Path) -> None:
    """libvirtd in a dom0 under QEMU TCG: its Xen driver needs a CPU model matching the host
    CPU, and TCG's qemu64 (+svm) has neither `vme` nor `sep`, which every model in libvirt's
    cpu_map needs ("Cannot find suitable CPU model for given data"): add qemu64 without sep.
    The qemu driver (pulled in by libvirt-daemon) refuses to load without the libvirt-qemu
    user of libvirt-daemon-system, and a dom0 does not need it: left out."""
    cpu_map = rootfs / "usr/share/libvirt/cpu_map"
    model = cpu_map / "x86_qemu64.xml"
    if not model.exists():
        raise LabError(f"libvirt's CPU map has no {model.name}: the libvirt packages changed")
    text = model.read_text().replace("name='qemu64'", "name='qemu64-nosep'")
    _write(cpu_map / "x86_qemu64-nosep.xml",
           "".join(line for line in text.splitlines(keepends=True) if "name='sep'" not in line))
    index = cpu_map / "index.xml"
    include = "<include filename='x86_qemu64.xml'/>"
    if include not in index.read_text():
        raise LabError(f"libvirt's {index.name} does not include x86_qemu64.xml")
    index.write_text(index.read_text().replace(
        include, include + "\n    <include filename='x86_qemu64-nosep.xml'/>", 1))
    for driver in _inside(rootfs, "usr/lib").glob(
            "*/libvirt/connection-driver/libvirt_driver_qemu.so"):
        _inside(rootfs, str(driver.relative_to(rootfs))).unlink()
    (rootfs / "var/log/libvirt").mkdir(parents=True, exist_ok=True)


_KIT_NAME = re.compile(r"kit-[0-9a-f]{12}")
_ROOTFS_TAR = re.compile(r"rootfs-[0-9a-f]{12}\.tar")


def stale_builds(cache: Path, name: re.Pattern[str], directories: bool) -> list[Path]:
    """Earlier builds in `cache` that xenlab may remove: entries of exactly its own names
    (`kit-<digest>` directories, `rootfs-<digest>.tar` files), real ones, no symlinks."""
    return [p for p in cache.iterdir() if name.fullmatch(p.name) and not p.is_symlink()
            and (p.is_dir() if directories else p.is_file())]


def _inside(rootfs: Path, relative: str) -> Path:
    """`rootfs/relative` with every link in it resolved, refused (LabError) if it leaves the
    root filesystem being built: an absolute link in the chroot must never turn a clean-up of
    the image into one of this machine."""
    path = (rootfs / relative).resolve()
    if not path.is_relative_to(rootfs.resolve()):
        raise LabError(f"{rootfs / relative} leads to {path}, outside the dom0 root being "
                       "built; refusing to remove anything through it")
    return path


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)


def seed_image(target: Path, files: dict[str, tuple[str, int]], env: dict[str, str],
               runner: Runner | None = None) -> None:
    """A host's seed disk: `host.env` (shell variables) and files copied over / at boot."""
    runner = runner or Runner()
    with tempfile.TemporaryDirectory(prefix="xenlab-seed-", dir=target.parent) as tmp:
        root = Path(tmp)
        _write(root / "host.env", "".join(f"{k}={v}\n" for k, v in env.items()))
        for path, (text, mode) in files.items():
            _write(root / "files" / path.lstrip("/"), text, mode)
        runner.run(["mke2fs", "-q", "-F", "-t", "ext4", "-E", "root_owner=0:0", "-d", str(root),
                    str(target), "8M"])
