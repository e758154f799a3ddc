"""The embedded guest's kernel and initramfs: Debian's cloud kernel and busybox-static.

Fetched once into a cache (`apt-get download`, no install on this machine); the initramfs
loads the virtio modules in dependency order, mounts the root filesystem from the LV's byte
range (/dev/vda) and switches to it.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from xenlab.errors import CommandError, LabError
from xenlab.hosts.runner import Runner

GUEST_MODULES = ("virtio_pci", "virtio_blk", "virtio_net")
KERNEL_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX = "/bin/busybox"

INITRAMFS_INIT = """#!/bin/busybox sh
# xenlab guest initramfs: load virtio drivers, mount the root from the domain's disk, switch.
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko; done
root=/dev/vda
for arg in $(cat /proc/cmdline); do case $arg in root=*) root=${arg#root=};; esac; done
i=0; while [ ! -b "$root" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
mount -o ro "$root" /newroot || { echo "xenlab: cannot mount $root"; exec sh; }
umount /proc /sys; mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
"""


def module_load_order(depends: Mapping[str, Sequence[str]], wanted: Sequence[str]) -> list[str]:
    """Modules to insmod, dependencies first (a depth-first topological order)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise LabError(f"module dependency cycle through {name}")
        if name not in depends:
            raise LabError(f"kernel module {name} not found in the guest kernel package")
        visiting.add(name)
        for dep in depends[name]:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name)
    return order


@dataclass(frozen=True)
class GuestKit:
    kernel: Path
    initramfs: Path
    version: str


def ensure_guest_kit(cache: Path, runner: Runner | None = None) -> GuestKit:
    """Kernel and initramfs in `cache`, fetched and built on first use."""
    runner = runner or Runner()
    kernel, initramfs, version_file = cache / "vmlinuz", cache / "initrd.gz", cache / "version"
    if kernel.exists() and initramfs.exists() and version_file.exists():
        return GuestKit(kernel, initramfs, version_file.read_text().strip())
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xenlab-kit-") as tmp:
        tree = unpack_kernel(KERNEL_PACKAGE, Path(tmp), runner)
        build_initramfs(tree, GUEST_MODULES, INITRAMFS_INIT, initramfs, runner)
        shutil.copyfile(tree.vmlinuz, kernel.with_suffix(".tmp"))
        os.replace(kernel.with_suffix(".tmp"), kernel)
        version_file.write_text(tree.version + "\n")
    return GuestKit(kernel, initramfs, tree.version)


@dataclass(frozen=True)
class KernelTree:
    """A Debian kernel package unpacked (dpkg-deb -x): its image, version and modules."""

    root: Path
    version: str

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.version}"

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib/modules" / self.version


def unpack_kernel(meta_package: str, work: Path, runner: Runner) -> KernelTree:
    """Download the kernel behind `meta_package` (no install on this machine) and unpack it."""
    package = _resolve_kernel_package(runner, meta_package)
    runner.run(["apt-get", "download", package], timeout=600, cwd=str(work))
    debs = sorted(work.glob(f"{package}_*.deb"))
    if not debs:
        raise LabError(f"apt-get download {package} left no .deb in {work}")
    tree = work / "kernel"
    runner.run(["dpkg-deb", "-x", str(debs[0]), str(tree)])
    vmlinuz = sorted((tree / "boot").glob("vmlinuz-*"))
    if not vmlinuz:
        raise LabError(f"{package} has no /boot/vmlinuz-*")
    return KernelTree(tree, vmlinuz[0].name.removeprefix("vmlinuz-"))


def build_initramfs(tree: KernelTree, wanted: Sequence[str], init: str, target: Path,
                    runner: Runner) -> None:
    """A busybox initramfs that insmods `wanted` (dependencies first) and runs `init`."""
    # depmod once (the package ships no modules.dep), instead of modinfo per module
    runner.run(["depmod", "-b", str(tree.root), tree.version])
    modules, depends = parse_modules_dep(
        (tree.modules_dir / "modules.dep").read_text(), tree.modules_dir)
    order = module_load_order(depends, [w.replace("-", "_") for w in wanted])
    payload = {f"lib/modules/{m}.ko": modules[m].read_bytes() for m in order}
    payload["lib/modules/order"] = ("\n".join(order) + "\n").encode()
    payload["bin/busybox"] = Path(BUSYBOX).read_bytes()
    payload["init"] = init.encode()
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(newc_archive(payload), compresslevel=1))
    os.replace(tmp, target)


def _module_name(path: str) -> str:
    return Path(path).name.split(".ko")[0].replace("-", "_")


def parse_modules_dep(text: str, base: Path) -> tuple[dict[str, Path], dict[str, list[str]]]:
    """modules.dep ("kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko ...") -> module files by
    name, and each module's dependencies by name ('-' and '_' are one in module names)."""
    modules: dict[str, Path] = {}
    depends: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, deps = line.split(":", 1)
        name = _module_name(path)
        modules[name] = base / path.strip()
        depends[name] = [_module_name(d) for d in deps.split()]
    return modules, depends


def _resolve_kernel_package(runner: Runner, meta_package: str = KERNEL_PACKAGE) -> str:
    """The versioned package behind a kernel meta-package such as `linux-image-cloud-amd64`."""
    try:
        out = runner.run(["apt-cache", "depends", meta_package]).stdout
    except CommandError as exc:
        raise LabError(f"cannot look up {meta_package} (run `apt-get update`?): {exc}") from None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends:") and "linux-image-" in line:
            return line.split(":", 1)[1].strip()
    raise LabError(f"apt-cache depends {meta_package} names no kernel package "
                   "(run apt-get update)")


def newc_archive(files: Mapping[str, bytes]) -> bytes:
    """A cpio 'newc' archive (the initramfs format) of regular files; directories implied."""
    out = io.BytesIO()
    dirs = sorted({str(Path(p).parent) for p in files if str(Path(p).parent) != "."}
                  | {"dev", "proc", "sys", "newroot"})
    all_dirs = sorted({"/".join(d.split("/")[: i + 1]) for d in dirs for i in range(d.count("/") + 1)})
    ino = 1

    def entry(name: str, mode: int, data: bytes) -> None:
        nonlocal ino
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0))
        out.write(header.encode() + encoded)
        out.write(b"\0" * (-(110 + len(encoded)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))
        ino += 1

    for d in all_dirs:
        entry(d, stat.S_IFDIR | 0o755, b"")
    for name, data in sorted(files.items()):
        executable = name in ("init", "bin/busybox")
        entry(name, stat.S_IFREG | (0o755 if executable else 0o644), data)
    entry("TRAILER!!!", 0, b"")
    return out.getvalue()


MEMCHECK_SOURCE = Path(__file__).parent / "guest" / "memcheck.c"
PROBE_SOURCE = Path(__file__).parents[1] / "measure" / "native" / "probe.c"
ECHO_SOURCE = Path(__file__).parent / "guest" / "echo.c"


def build_c(source: Path, name: str, cache: Path, static: bool,
            runner: Runner | None = None) -> Path:
    """A C program of the project, built once per source version into the cache."""
    import hashlib

    runner = runner or Runner()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    binary = cache / f"{name}-{digest}"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    try:
        runner.run(["gcc", "-O2", *(["-static"] if static else []), "-Wall", "-o", str(tmp),
                    str(source)])
    except CommandError as exc:
        raise LabError(f"cannot build {name} (gcc and libc6-dev needed): {exc}") from None
    os.replace(tmp, binary)
    return binary


def ensure_memcheck(cache: Path, runner: Runner | None = None) -> Path:
    """The guest's memory checker: static, it runs on the busybox guest."""
    return build_c(MEMCHECK_SOURCE, "xenlab-memcheck", cache, static=True, runner=runner)


def ensure_echo(cache: Path, runner: Runner | None = None) -> Path:
    """The TCP echo service, static, for guests that have none (shipped by digest)."""
    return build_c(ECHO_SOURCE, "xenlab-echo", cache, static=True, runner=runner)


def ensure_native_probe(cache: Path, runner: Runner | None = None, static: bool = False) -> Path:
    """The meter's prober in C: dynamic for observers on this machine (the embedded lab),
    static for observers elsewhere (shipped over SSH, it needs nothing installed there)."""
    return build_c(PROBE_SOURCE, "xenlab-probe-static" if static else "xenlab-probe", cache,
                   static=static, runner=runner)
