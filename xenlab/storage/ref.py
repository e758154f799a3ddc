"""Where bytes of storage are, the same question on every lab: a block device as a host
resolves it, or a byte range of a file (the embedded lab's LV inside the exported image).
The suites compare references; each lab says how its LV, its devices and the guest's disk
resolve, so no check branches on the kind of lab."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Protocol

from testinfra.host import Host

from xenlab.checks.storage import Mount, parse_mounts
from xenlab.hypervisor.base import RunningDomain
from xenlab.hypervisor.domconfig import disk_device, parse_domain_config
from xenlab.inventory.model import Inventory


@dataclass(frozen=True)
class DiskRef:
    """`path` (a resolved block device or a file) from `offset`, `size` bytes (None: to
    the end), readable on `host`."""

    host: str
    path: str
    offset: int = 0
    size: int | None = None

    def overlaps(self, other: DiskRef) -> bool:
        if self.path != other.path:
            return False
        self_end = self.offset + self.size if self.size is not None else float("inf")
        other_end = other.offset + other.size if other.size is not None else float("inf")
        return self.offset < other_end and other.offset < self_end

    def same_bytes(self, other: DiskRef) -> bool:
        return (self.path, self.offset, self.size) == (other.path, other.offset, other.size)

    def blkid_command(self) -> str:
        """blkid's word on the filesystem there (probing at the offset, if any)."""
        offset = ["-O", str(self.offset)] if self.offset else []
        return shlex.join(["blkid", "-p", *offset, "-o", "value", "-s", "TYPE", self.path])

    def __str__(self) -> str:
        if self.offset or self.size is not None:
            return f"{self.path} at offset {self.offset}, {self.size or 'to the end'} bytes"
        return self.path


def block_device_ref(host: Host, name: str, path: str) -> DiskRef | None:
    """A block device as `host` resolves it (symlinks followed), or None if it is none."""
    if host.run("test -b %s", path).rc != 0:
        return None
    return DiskRef(name, host.check_output("readlink -f %s", path))


def mount_refs(host: Host, name: str) -> list[tuple[Mount, DiskRef]]:
    """Every mount of a block device or loop device on `host`, with what it reads: a loop
    device's backing file, offset and size limit; another device, resolved."""
    out = []
    for m in parse_mounts(host.check_output("cat /proc/mounts")):
        if not m.source.startswith("/dev/"):
            continue
        if m.source.startswith("/dev/loop"):
            sysdir = f"/sys/block/{m.source.removeprefix('/dev/')}/loop"
            backing = host.run("cat %s/backing_file %s/offset %s/sizelimit", sysdir, sysdir,
                               sysdir).stdout.split()
            if len(backing) == 3 and backing[1].isdigit() and backing[2].isdigit():
                out.append((m, DiskRef(name, backing[0], int(backing[1]),
                                       int(backing[2]) or None)))
                continue
        resolved = host.run("readlink -f %s", m.source).stdout.strip()
        if resolved:
            out.append((m, DiskRef(name, resolved)))
    return out


class _BlockDeviceLab(Protocol):
    inventory: Inventory

    def host(self, name: str) -> Host: ...
    def running_guest(self) -> RunningDomain | None: ...
    def device_ref(self, host: str, path: str) -> DiskRef | None: ...


class BlockDeviceStorage:
    """The storage answers of a lab whose hosts have block devices (a real lab, and the
    embedded Xen lab, whose dom0s run the aoe driver and device-mapper)."""

    def device_ref(self: _BlockDeviceLab, host: str, path: str) -> DiskRef | None:
        return block_device_ref(self.host(host), host, path)

    def guest_disk_ref(self: _BlockDeviceLab) -> DiskRef | None:
        """The running guest's first disk as its host resolves it: the device the hypervisor
        reports, or (xm reports none) the one in that host's domain config."""
        running = self.running_guest()
        if running is None:
            return None
        if running.disks:
            return self.device_ref(running.host, running.disks[0])
        text = self.host(running.host).file(self.inventory.domain.config_path).content_string
        disks = parse_domain_config(text, f"{running.host}:{self.inventory.domain.config_path}"
                                    ).disk_fields()
        return self.device_ref(running.host, disk_device(disks[0][0])) if disks else None
