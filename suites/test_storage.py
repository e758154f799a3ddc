"""Shared storage with testinfra: the AoE device on the resource hosts, the PV, VG and LV
seen by each of them, the LV active where the guest runs, and never mounted on a host."""

from __future__ import annotations

import shlex
from collections.abc import Callable

import pytest
from testinfra.host import Host

from xenlab.inventory import Inventory
from xenlab.lab import Lab
from xenlab.storage.lvm import LVS_ARGS, LvmReports, parse_lvs, parse_pvs, parse_vgs
from xenlab.storage.ref import mount_refs


@pytest.mark.needs("aoe-initiator")
def test_aoe_driver_loaded(resource_name: str, host_of: Callable[[str], Host]) -> None:
    modules = host_of(resource_name).run("cat /proc/modules").stdout
    assert any(line.split()[0] == "aoe" for line in modules.splitlines() if line.split()), (
        f"on {resource_name}: the aoe module is not loaded (modprobe aoe)")


@pytest.mark.needs("aoe-initiator")
def test_etherd_device_has_the_export_size(resource_name: str, host_of: Callable[[str], Host],
                                           inventory: Inventory, export_size: int) -> None:
    device = f"/dev/etherd/{inventory.aoe.target}"
    host = host_of(resource_name)
    assert host.run("test -b %s", device).rc == 0, (
        f"on {resource_name}: {device} is missing (modprobe aoe; aoe-discover; aoe-stat)")
    size = int(host.check_output("blockdev --getsize64 %s", device))
    assert size == export_size, (f"on {resource_name}: {device} has {size} bytes, "
                                 f"{inventory.storage.name} exports {export_size}")


def test_pv_vg_lv_visible(lvm_views: list[LvmReports], inventory: Inventory) -> None:
    lvm = inventory.lvm
    for view in lvm_views:
        pvs = [p for p in parse_pvs(view.pvs) if p.vg == lvm.vg]
        assert pvs, f"on {view.view}: no PV in volume group {lvm.vg}"
        assert any(v.name == lvm.vg for v in parse_vgs(view.vgs)), f"on {view.view}: no VG {lvm.vg}"
        lvs = [v for v in parse_lvs(view.lvs) if (v.vg, v.name) == (lvm.vg, lvm.lv)]
        assert lvs, f"on {view.view}: no LV {lvm.lv} in {lvm.vg}"
        assert lvs[0].size == lvm.size, (f"on {view.view}: {lvm.path} has {lvs[0].size} bytes, "
                                         f"the inventory says {lvm.size}")


@pytest.mark.needs("aoe-initiator")
def test_pv_is_the_aoe_device(lvm_views: list[LvmReports], inventory: Inventory) -> None:
    """The resource hosts reach the PV through AoE: it is /dev/etherd/eS.N on each."""
    etherd = f"/dev/etherd/{inventory.aoe.target}"
    for view in lvm_views:
        pvs = [p.name for p in parse_pvs(view.pvs) if p.vg == inventory.lvm.vg]
        assert etherd in pvs, f"on {view.view}: {inventory.lvm.vg}'s PVs are {pvs}, not {etherd}"


@pytest.mark.needs("device-mapper")
def test_lv_active_where_the_guest_runs(lab: Lab, host_of: Callable[[str], Host],
                                        inventory: Inventory) -> None:
    where = lab.guest_location()
    assert where is not None, f"{inventory.domain.name} runs on no single host"
    lvs = host_of(where).check_output(shlex.join([*LVS_ARGS, f"{inventory.lvm.vg}/{inventory.lvm.lv}"]))
    volume = parse_lvs(lvs)
    assert volume and volume[0].active, f"on {where}: {inventory.lvm.path} is not active"


def test_guest_disk_is_the_lv(lab: Lab, inventory: Inventory) -> None:
    """The running guest's disk reads the LV's bytes: the same device where the guest runs
    (a real lab), or the LV's byte range of the export (the embedded lab)."""
    where = lab.guest_location()
    assert where is not None, f"{inventory.domain.name} runs on no single host"
    disk, lv = lab.guest_disk_ref(), lab.device_ref(where, inventory.lvm.path)
    assert lv is not None, f"on {where}: {inventory.lvm.path} does not exist"
    assert disk is not None, f"on {where}: {inventory.domain.name} reports no disk"
    assert disk.same_bytes(lv), (f"on {where}: {inventory.domain.name}'s disk is {disk}; "
                                 f"{inventory.lvm.path} is {lv}")


def test_lv_not_mounted_on_any_host(lab_host_name: str, host_of: Callable[[str], Host],
                                    inventory: Inventory, lab: Lab) -> None:
    """The article mounts the LV on /mnt to fill it and never unmounts: a host mount beside
    the running guest corrupts the filesystem."""
    lv = lab.device_ref(lab_host_name, inventory.lvm.path)
    found = [f"{m.source} ({ref}) on {m.target}"
             for m, ref in mount_refs(host_of(lab_host_name), lab_host_name)
             if lv is not None and ref.overlaps(lv)]
    assert not found, (f"on {lab_host_name}: {inventory.lvm.path} is mounted ({'; '.join(found)}) "
                       f"while {inventory.domain.name} uses it: unmount it")
