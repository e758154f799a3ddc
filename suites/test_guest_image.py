"""The guest image as the article prepares it, read from inside the running guest: fstab's
root line agrees with the domain config and the LV's filesystem; inittab has the gettys of
runlevels 2-6 commented out and keeps a console login; passwd and shadow are there."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
from testinfra.host import Host

from xenlab.checks.image import (
    active_gettys_2_to_6,
    console_gettys,
    fstab_root,
    parse_fstab,
    parse_inittab,
    root_fstype,
)
from xenlab.hypervisor.domconfig import parse_domain_config
from xenlab.inventory import Inventory
from xenlab.inventory.model import Guest
from xenlab.lab import Lab


class ImageWarning(UserWarning):
    """Something in the guest image worth a look that does not stop a certification."""


def lv_filesystem(lab: Lab, inventory: Inventory, host_of: Callable[[str], Host],
                  guest: Guest) -> str:
    """blkid's word on the LV's bytes, read where they are (at the LV's offset of the export
    on the embedded lab, the LV's device on a real one)."""
    __tracebackhide__ = True
    where = lab.guest_location(guest.name) or inventory.resources[0].name
    lv_path = f"/dev/{inventory.lvm.vg}/{guest.lv}"
    ref = lab.device_ref(where, lv_path)
    if ref is None:
        pytest.fail(f"not checked: {lv_path} does not exist on {where} "
                    f"(test_storage.py says why)", pytrace=False)
    assert ref is not None
    return host_of(ref.host).check_output(ref.blkid_command())


def test_fstab_root_agrees_with_config_and_lv(per_guest_host: Host, lab: Lab,
                                             inventory: Inventory,
                                             host_of: Callable[[str], Host],
                                             guest: Guest) -> None:
    name, guest_host, path = guest.name, per_guest_host, guest.domain.config_path
    root = fstab_root(parse_fstab(guest_host.file("/etc/fstab").content_string))
    assert root is not None, f"{name}:/etc/fstab has no entry for /"
    where = lab.guest_location(guest.name) or inventory.resources[0].name
    config = parse_domain_config(host_of(where).file(path).content_string, f"{where}:{path}")
    assert root.device == config.get_str("root"), (
        f"{name}:/etc/fstab mounts / from {root.device}; the domain config on {where} says "
        f"root = {config.get_str('root')!r}")
    mounted = root_fstype(guest_host.file("/proc/mounts").content_string)
    blkid = lv_filesystem(lab, inventory, host_of, guest)
    assert root.fstype == blkid, (
        f"{name}:/etc/fstab says / is {root.fstype}; /dev/{inventory.lvm.vg}/{guest.lv} "
        f"holds {blkid} "
        f"(blkid), mounted as {mounted}")


def test_inittab_runlevels_2_to_6_commented_out(per_guest_host: Host, guest: Guest) -> None:
    name = guest.name
    entries = parse_inittab(per_guest_host.file("/etc/inittab").content_string)
    left = active_gettys_2_to_6(entries)
    assert not left, (f"{name}:/etc/inittab still runs gettys "
                      f"{', '.join(f'line {e.line} ({e.id}:{e.runlevels}:{e.action})' for e in left)}"
                      f": the guest re-spawns them forever (sed -e 's/^[2-6]:/#\\0/')")
    assert console_gettys(entries), f"{name}:/etc/inittab leaves no console login at all"


def test_passwd_and_shadow(per_guest_host: Host, guest: Guest) -> None:
    name = guest.name
    passwd, shadow = per_guest_host.file("/etc/passwd"), per_guest_host.file("/etc/shadow")
    assert passwd.exists and "root:" in passwd.content_string, f"{name}:/etc/passwd has no root"
    assert shadow.exists, f"{name}:/etc/shadow is missing"
    assert shadow.mode & 0o007 == 0, f"{name}:/etc/shadow is world-readable ({shadow.mode:o})"


def test_no_stray_sed_backup(per_guest_host: Host, guest: Guest) -> None:
    """`sed -ie` is -i with backup suffix 'e': it leaves /etc/inittabe behind (a warning)."""
    if per_guest_host.file("/etc/inittabe").exists:
        warnings.warn(ImageWarning(
            f"{guest.name}:/etc/inittabe exists: the backup `sed -ie` leaves "
            f"(use sed -i -e); remove it"), stacklevel=1)
