"""The one place that picks a lab and its driver from the inventory, and says what that lab
can do. Suites and fixtures ask the lab (`lab.features`, `lab.hypervisor`); they never ask
which kind of lab or toolstack it is."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from xenlab.errors import LabError
from xenlab.hypervisor.registry import driver_features
from xenlab.inventory.load import MAX_GUESTS
from xenlab.inventory.model import Inventory, LabKind
from xenlab.lab import Lab
from xenlab.lab.features import check_features
from xenlab.progress import Progress

EMBEDDED_TOOLS = {"ip": "iproute2", "vblade": "vblade", "pvcreate": "lvm2",
                  "losetup": "mount", "mke2fs": "e2fsprogs", "unshare": "util-linux",
                  "ping": "iputils-ping", "busybox": "busybox-static",
                  "dropbear": "dropbear-bin", "dropbearkey": "dropbear-bin",
                  "ssh": "openssh-client", "ssh-keygen": "openssh-client"}

# what each kind of lab brings itself; its toolstack's driver brings the rest
LAB_FEATURES: dict[LabKind, frozenset[str]] = {
    LabKind.EMBEDDED: frozenset({"build-faults", "fault-selftest", "built-here",
                                 "power-control"}),
    LabKind.EMBEDDED_XEN: frozenset({"aoe-initiator", "device-mapper", "storage-outage",
                                     "built-here", "power-control"}),
    LabKind.REAL: frozenset({"aoe-initiator", "device-mapper", "provisioning"}),
    LabKind.FAKE: frozenset({"fault-selftest", "built-here", "power-control"}),
}


# guests each kind of lab runs at once (each its own LV, config and MACs, checked when the
# inventory is read). The embedded QEMU lab runs up to 8; the embedded Xen lab 2, as its
# hosts' memory allows (640 MiB each, 384 of it dom0's: 128 + 64 MiB of guests fit on one,
# checked by the lab); a real lab as many as the inventory lists (its hosts' free memory is
# checked before an evacuation moves anything)
GUESTS_RUN: dict[LabKind, int] = {LabKind.EMBEDDED: 8, LabKind.EMBEDDED_XEN: 2,
                                  LabKind.REAL: MAX_GUESTS, LabKind.FAKE: 1}


def lab_features(inventory: Inventory) -> frozenset[str]:
    """Everything the inventory's lab can do: its own features and its driver's. The fault
    suite needs a lab built here (it kills processes, cuts links) and a driver that sets a
    fault off in flight."""
    features = LAB_FEATURES[inventory.kind] | driver_features(inventory.toolstack)
    if "built-here" in features and "in-flight-faults" in features:
        features |= {"fault-injection"}
    resources = [h for h in inventory.hosts if h.role.value == "resources"]
    if resources and all(h.power_off and h.power_on for h in resources):
        features |= {"power-control"}  # a real lab whose every resource host has commands
    check_features(features, f"lab {inventory.lab}")
    return features


class LabUnavailable(LabError):
    """This machine cannot build the lab (not root, tools missing): a reason to skip."""


def embedded_prerequisites(qemu: str) -> str | None:
    """Why an embedded lab cannot be built here, or None."""
    if os.geteuid() != 0:
        return "the embedded lab needs root (network namespaces, loop devices)"
    missing = [f"{tool} (package {pkg})" for tool, pkg in EMBEDDED_TOOLS.items()
               if shutil.which(tool) is None]
    if shutil.which(qemu) is None:
        missing.append(f"{qemu} (package qemu-system-x86 from bookworm-backports)")
    if missing:
        return "missing on this machine: " + ", ".join(missing) + " (run `make setup`)"
    return None


def make_lab(inventory: Inventory, *, progress: Progress, root: Path, cache: Path,
             qemu: str = "qemu-system-x86_64", faults: tuple[str, ...] = (),
             memory_audit: bool = False, accept_new_host_keys: bool = False,
             allow_power_off: bool = False) -> Lab:
    """The lab the inventory names, not yet up. LabUnavailable: it cannot be built here."""
    guests = [g.name for g in inventory.guests]
    most = GUESTS_RUN[inventory.kind]
    if len(guests) > most:
        raise LabError(f"{inventory.path}: all.children.guests.hosts lists {len(guests)} "
                       f"guests ({', '.join(guests)}); a {inventory.kind.value} lab runs at "
                       f"most {most} in this version of xenlab: keep {most}, or certify the "
                       "others with an inventory of their own")
    if inventory.kind is LabKind.EMBEDDED:
        from xenlab.lab.embedded import EmbeddedLab
        from xenlab.lab.qemu_kit import ensure_debian_qemu, is_version

        reason = embedded_prerequisites("qemu-system-x86_64" if is_version(qemu) else qemu)
        if reason:
            raise LabUnavailable(reason)
        if is_version(qemu):
            with progress.step(f"QEMU {qemu} from Debian (cached after the first run)"):
                qemu = str(ensure_debian_qemu(qemu, cache))
        return EmbeddedLab(inventory, progress=progress, root=root, cache=cache,
                           qemu_binary=qemu, faults=faults, memory_audit=memory_audit)
    if inventory.kind is LabKind.EMBEDDED_XEN:
        from xenlab.lab.embedded_xen import EmbeddedXenLab

        reason = embedded_prerequisites("qemu-system-x86_64")
        if reason:
            raise LabUnavailable(reason)
        return EmbeddedXenLab(inventory, progress=progress, root=root, cache=cache)
    if inventory.kind is LabKind.FAKE:
        from xenlab.lab.fake import FakeLab

        return FakeLab(inventory, progress=progress, root=root, cache=cache)
    from xenlab.lab.real import RealLab

    return RealLab(inventory, progress=progress, cache=cache,
                   accept_new_host_keys=accept_new_host_keys, allow_power_off=allow_power_off)
