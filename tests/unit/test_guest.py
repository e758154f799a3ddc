"""The guest kit and image: module order, initramfs archive, the article's fix-ups."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from xenlab.errors import LabError
from xenlab.hypervisor.domconfig import parse_domain_config
from xenlab.hypervisor.qemu import DiskImage, qemu_argv
from xenlab.lab.guestkit import GUEST_MODULES, module_load_order, newc_archive
from xenlab.lab.image import (
    DIRINSTALL_INITTAB,
    GuestSsh,
    article_fstab,
    comment_runlevels,
    parse_ldd,
    stage_root,
)


def depends(data: Path) -> dict[str, list[str]]:
    table = {}
    for line in (data / "guest/modinfo-depends.txt").read_text().splitlines():
        name, _, deps = line.partition(" ")
        table[name] = [d for d in deps.strip().split(",") if d]
    return table


def test_module_order_puts_dependencies_first(data: Path) -> None:
    order = module_load_order(depends(data), GUEST_MODULES)
    for name in order:
        for dep in depends(data)[name]:
            assert order.index(dep) < order.index(name), f"{dep} after {name} in {order}"
    assert set(GUEST_MODULES) <= set(order) and len(order) == len(set(order))
    assert "virtio_balloon" not in order


def test_module_order_errors() -> None:
    with pytest.raises(LabError, match="cycle"):
        module_load_order({"a": ["b"], "b": ["a"]}, ["a"])
    with pytest.raises(LabError, match="not found"):
        module_load_order({"a": ["zz"]}, ["a"])


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio not installed")
def test_newc_archive_reads_back_with_cpio(tmp_path: Path) -> None:
    archive = newc_archive({"init": b"#!/bin/sh\n", "lib/modules/order": b"virtio\n"})
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=archive, capture_output=True,
                             check=True).stdout.decode().split()
    assert {"init", "lib", "lib/modules", "lib/modules/order", "dev", "proc"} <= set(listing)
    subprocess.run(["cpio", "-id", "--quiet"], input=gzip.decompress(gzip.compress(archive)),
                   cwd=tmp_path, check=True)
    assert (tmp_path / "lib/modules/order").read_bytes() == b"virtio\n"
    assert (tmp_path / "init").stat().st_mode & 0o111


def test_runlevel_fixup_matches_the_articles_sed() -> None:
    """Our pure function against the article's very command, run by the real sed."""
    sed = subprocess.run(["sed", "-e", "s/^[2-6]:/#\\0/"], input=DIRINSTALL_INITTAB,
                         capture_output=True, text=True, check=True).stdout
    assert comment_runlevels(DIRINSTALL_INITTAB) == sed
    assert "#2:2345:respawn:/sbin/mingetty tty2" in sed
    assert "\n1:2345:respawn:/sbin/mingetty --noclear tty1" in sed
    assert "\nl2:2:wait:/etc/init.d/rc 2" in sed  # only lines *starting* with 2-6: change


def test_article_fstab() -> None:
    assert article_fstab("/dev/hda1", "reiserfs") == "/dev/hda1 / reiserfs defaults 1 1\n"


def test_stage_root(tmp_path: Path) -> None:
    stage_root(tmp_path, hostname="vm1", root_device="/dev/vda", filesystem="ext4")
    assert (tmp_path / "etc/fstab").read_text() == "/dev/vda / ext4 defaults 1 1\n"
    assert "#3:2345" in (tmp_path / "etc/inittab").read_text()
    assert (tmp_path / "etc/shadow").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "sbin/init").stat().st_mode & 0o111
    assert (tmp_path / "bin/sh").is_symlink() and not (tmp_path / "inittabe").exists()
    assert not (tmp_path / "etc/inittabe").exists()


def test_qemu_argv_from_domain_config(data: Path) -> None:
    cfg = parse_domain_config((data / "domconfig/embedded-vm1").read_text())
    argv = qemu_argv(binary="qemu", config=cfg, disk=DiskImage("/x.img", 1048576, 5 << 30),
                     address=IPv4Interface("198.18.0.21/24"), qmp="/q", console="/c",
                     incoming="tcp:198.18.0.12:8002")
    joined = " ".join(argv)
    assert argv[argv.index("-m") + 1] == "256"
    assert "offset=1048576,size=5368709120" in joined and "filename=/x.img" in joined
    assert "mac=aa:cc:00:00:00:01" in joined and "ifname=vif-vm1.0" in joined
    assert argv[-2:] == ["-incoming", "tcp:198.18.0.12:8002"]
    append = argv[argv.index("-append") + 1]
    assert append.startswith("root=/dev/vda ro 3 ") and "xenlab.ip=198.18.0.21/24" in append


def test_parse_ldd_of_dropbear(data: Path) -> None:
    libs = parse_ldd((data / "guest/ldd-dropbear.txt").read_text())
    assert "/lib64/ld-linux-x86-64.so.2" in libs
    assert "/lib/x86_64-linux-gnu/libc.so.6" in libs
    assert not any("vdso" in lib for lib in libs) and len(libs) == 7


def test_stage_root_with_ssh(tmp_path: Path, data: Path) -> None:
    key = tmp_path / "hostkey"
    key.write_bytes(b"not really a key")
    fake_lib = tmp_path / "libfake.so"
    fake_lib.write_bytes(b"\x7fELF")
    root = tmp_path / "root"
    stage_root(root, hostname="vm1", root_device="/dev/vda", filesystem="ext4",
               ssh=GuestSsh(server="/bin/busybox", libraries=(str(fake_lib),), host_key=key,
                            authorized_key="ssh-ed25519 AAAA lab\n"))
    assert (root / "root/.ssh/authorized_keys").read_text() == "ssh-ed25519 AAAA lab\n"
    assert (root / "root/.ssh").stat().st_mode & 0o777 == 0o700
    assert (root / str(fake_lib).lstrip("/")).read_bytes() == b"\x7fELF"
    assert (root / "etc/dropbear/dropbear_ed25519_host_key").stat().st_mode & 0o777 == 0o600
    assert "dropbear -s" in (root / "etc/xenlab/rc.d/50-sshd").read_text()
    assert (root / "etc/shadow").read_text().startswith("root:*:")  # no password, not locked
