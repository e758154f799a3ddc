"""The guest image as the article prepares it, read from inside the running guest: fstab's
root line agrees with the domain config and the LV's filesystem; inittab has the gettys of
runlevels 2-6 commented out and keeps a console login; passwd and shadow are there."""

from __future__ import annotations

import warnings
from collections.abc import Callable

from testinfra.host import Host

from xenlab.checks.image import (
    active_gettys_2_to_6,
    console_gettys,
    fstab_root,
    parse_fstab,
    parse_inittab,
    root_fstype,
)
from xenlab.checks.storage import lv_range
from xenlab.hypervisor.domconfig import parse_domain_config
from xenlab.inventory import Inventory, LabKind
from xenlab.lab import Lab
from xenlab.storage.lvm import LvmReports


class ImageWarning(UserWarning):
    """Something in the guest image worth a look that does not stop a certification."""


def lv_filesystem(lab: Lab, inventory: Inventory, host_of: Callable[[str], Host],
                  lvm_views: list[LvmReports]) -> str:
    """blkid's word on the LV: on the export at the LV's offset here; on the LV device on the
    guest's host of a real lab."""
    lvm = inventory.lvm
    if inventory.kind is LabKind.EMBEDDED:
        rng = lv_range(lvm_views[0], lvm.vg, lvm.lv)
        return host_of(inventory.storage.name).check_output(
            "blkid -p -O %s -o value -s TYPE %s", str(rng.offset), lab.aoe_device)
    where = lab.guest_location() or inventory.resources[0].name
    return host_of(where).check_output("blkid -p -o value -s TYPE %s", lvm.path)


def test_fstab_root_agrees_with_config_and_lv(guest_host: Host, lab: Lab, inventory: Inventory,
                                             host_of: Callable[[str], Host],
                                             lvm_views: list[LvmReports]) -> None:
    guest = inventory.domain.name
    root = fstab_root(parse_fstab(guest_host.file("/etc/fstab").content_string))
    assert root is not None, f"{guest}:/etc/fstab has no entry for /"
    where = lab.guest_location() or inventory.resources[0].name
    config = parse_domain_config(host_of(where).file(inventory.domain.config_path).content_string,
                                 f"{where}:{inventory.domain.config_path}")
    assert root.device == config.get_str("root"), (
        f"{guest}:/etc/fstab mounts / from {root.device}; the domain config on {where} says "
        f"root = {config.get_str('root')!r}")
    mounted = root_fstype(guest_host.file("/proc/mounts").content_string)
    blkid = lv_filesystem(lab, inventory, host_of, lvm_views)
    assert root.fstype == blkid, (
        f"{guest}:/etc/fstab says / is {root.fstype}; {inventory.lvm.path} holds {blkid} "
        f"(blkid), mounted as {mounted}")


def test_inittab_runlevels_2_to_6_commented_out(guest_host: Host, inventory: Inventory) -> None:
    guest = inventory.domain.name
    entries = parse_inittab(guest_host.file("/etc/inittab").content_string)
    left = active_gettys_2_to_6(entries)
    assert not left, (f"{guest}:/etc/inittab still runs gettys "
                      f"{', '.join(f'line {e.line} ({e.id}:{e.runlevels}:{e.action})' for e in left)}"
                      f": the guest re-spawns them forever (sed -e 's/^[2-6]:/#\\0/')")
    assert console_gettys(entries), f"{guest}:/etc/inittab leaves no console login at all"


def test_passwd_and_shadow(guest_host: Host, inventory: Inventory) -> None:
    guest = inventory.domain.name
    passwd, shadow = guest_host.file("/etc/passwd"), guest_host.file("/etc/shadow")
    assert passwd.exists and "root:" in passwd.content_string, f"{guest}:/etc/passwd has no root"
    assert shadow.exists, f"{guest}:/etc/shadow is missing"
    assert shadow.mode & 0o007 == 0, f"{guest}:/etc/shadow is world-readable ({shadow.mode:o})"


def test_no_stray_sed_backup(guest_host: Host, inventory: Inventory) -> None:
    """`sed -ie` is -i with backup suffix 'e': it leaves /etc/inittabe behind (a warning)."""
    if guest_host.file("/etc/inittabe").exists:
        warnings.warn(ImageWarning(
            f"{inventory.domain.name}:/etc/inittabe exists: the backup `sed -ie` leaves "
            f"(use sed -i -e); remove it"), stacklevel=1)
