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
from xenlab.lab import Lab


class ImageWarning(UserWarning):
    """Something in the guest image worth a look that does not stop a certification."""


def lv_filesystem(lab: Lab, inventory: Inventory, host_of: Callable[[str], Host]) -> str:
    """blkid's word on the LV's bytes, read where they are (at the LV's offset of the export
    on the embedded lab, the LV's device on a real one)."""
    __tracebackhide__ = True
    where = lab.guest_location() or inventory.resources[0].name
    ref = lab.device_ref(where, inventory.lvm.path)
    if ref is None:
        pytest.fail(f"not checked: {inventory.lvm.path} does not exist on {where} "
                    f"(test_storage.py says why)", pytrace=False)
    assert ref is not None
    return host_of(ref.host).check_output(ref.blkid_command())


def test_fstab_root_agrees_with_config_and_lv(guest_host: Host, lab: Lab, inventory: Inventory,
                                             host_of: Callable[[str], Host]) -> None:
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
    blkid = lv_filesystem(lab, inventory, host_of)
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
