"""Shared storage with testinfra: the AoE device on the resource hosts, the PV, VG and LV
seen by each of them, the LV active where the guest runs, and never mounted on a host."""

from __future__ import annotations

import shlex
from collections.abc import Callable

import pytest
from testinfra.host import Host

from xenlab.checks.storage import lv_range, overlaps, parse_mounts
from xenlab.hypervisor.domconfig import parse_domain_config
from xenlab.inventory import Inventory, LabKind
from xenlab.lab import Lab
from xenlab.storage.lvm import LVS_ARGS, LvmReports, parse_lvs, parse_pvs, parse_vgs

NO_AOE = ("this kernel has no aoe initiator: the embedded lab's resource hosts reach the "
          "export at frame level only (suites/test_aoe.py)")
NO_DM = ("this kernel has no device-mapper: the embedded lab's LV is never activated; the "
         "guest's disk is the LV's byte range (test_guest_disk_is_the_lv)")


def _real_only(inventory: Inventory, reason: str) -> None:
    if inventory.kind is LabKind.EMBEDDED:
        pytest.skip(reason)


def test_aoe_driver_loaded(resource_name: str, host_of: Callable[[str], Host],
                           inventory: Inventory) -> None:
    _real_only(inventory, NO_AOE)
    modules = host_of(resource_name).run("cat /proc/modules").stdout
    assert any(line.split()[0] == "aoe" for line in modules.splitlines() if line.split()), (
        f"on {resource_name}: the aoe module is not loaded (modprobe aoe)")


def test_etherd_device_has_the_export_size(resource_name: str, host_of: Callable[[str], Host],
                                           inventory: Inventory, export_size: int) -> None:
    _real_only(inventory, NO_AOE)
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
        if inventory.kind is not LabKind.EMBEDDED:  # dom0s reach the PV through AoE
            etherd = f"/dev/etherd/{inventory.aoe.target}"
            assert any(p.name == etherd for p in pvs), (
                f"on {view.view}: {lvm.vg}'s PVs are {[p.name for p in pvs]}, not {etherd}")
        assert any(v.name == lvm.vg for v in parse_vgs(view.vgs)), f"on {view.view}: no VG {lvm.vg}"
        lvs = [v for v in parse_lvs(view.lvs) if (v.vg, v.name) == (lvm.vg, lvm.lv)]
        assert lvs, f"on {view.view}: no LV {lvm.lv} in {lvm.vg}"
        assert lvs[0].size == lvm.size, (f"on {view.view}: {lvm.path} has {lvs[0].size} bytes, "
                                         f"the inventory says {lvm.size}")


def test_lv_active_where_the_guest_runs(lab: Lab, host_of: Callable[[str], Host],
                                        inventory: Inventory) -> None:
    _real_only(inventory, NO_DM)
    where = lab.guest_location()
    assert where is not None, f"{inventory.domain.name} runs on no single host"
    lvs = host_of(where).check_output(shlex.join([*LVS_ARGS, f"{inventory.lvm.vg}/{inventory.lvm.lv}"]))
    volume = parse_lvs(lvs)
    assert volume and volume[0].active, f"on {where}: {inventory.lvm.path} is not active"


def test_guest_disk_is_the_lv(lab: Lab, host_of: Callable[[str], Host], inventory: Inventory,
                              lvm_views: list[LvmReports]) -> None:
    """The running guest's disk is the LV: by device on a real lab, by byte range here."""
    where = lab.guest_location()
    assert where is not None, f"{inventory.domain.name} runs on no single host"
    if inventory.kind is LabKind.EMBEDDED:
        disk = lab.guest_disk()
        expected = lv_range(lvm_views[0], inventory.lvm.vg, inventory.lvm.lv)
        assert (disk.path, disk.offset, disk.size) == (lab.aoe_device, expected.offset,
                                                       expected.size), (
            f"on {where}: {inventory.domain.name}'s disk is {disk.path} at offset {disk.offset}, "
            f"{disk.size} bytes; {inventory.lvm.path} is {lab.aoe_device} at offset "
            f"{expected.offset}, {expected.size} bytes")
        return
    host = host_of(where)
    lv_device = host.check_output("readlink -f %s", inventory.lvm.path)
    config = parse_domain_config(host.file(inventory.domain.config_path).content_string)
    for source, _, _ in config.disk_fields():
        if source.startswith("phy:"):
            device = source.removeprefix("phy:")
            device = device if device.startswith("/") else f"/dev/{device}"
            assert host.check_output("readlink -f %s", device) == lv_device, (
                f"on {where}: the domain's disk {source} is not {inventory.lvm.path}")


def test_lv_not_mounted_on_any_host(lab_host_name: str, host_of: Callable[[str], Host],
                                    inventory: Inventory, lab: Lab,
                                    lvm_views: list[LvmReports]) -> None:
    """The article mounts the LV on /mnt to fill it and never unmounts: a host mount beside
    the running guest corrupts the filesystem."""
    host = host_of(lab_host_name)
    mounts = parse_mounts(host.check_output("cat /proc/mounts"))
    lvm = inventory.lvm
    found = []
    if inventory.kind is LabKind.EMBEDDED:
        rng = lv_range(lvm_views[0], lvm.vg, lvm.lv)
        for m in mounts:
            if not m.source.startswith("/dev/loop"):
                continue
            sysdir = f"/sys/block/{m.source.removeprefix('/dev/')}/loop"
            backing = host.run("cat %s/backing_file %s/offset %s/sizelimit", sysdir, sysdir,
                               sysdir).stdout.split()
            if len(backing) == 3 and backing[0] == lab.aoe_device and overlaps(
                    int(backing[1]), int(backing[2]), rng):
                found.append(f"{m.source} (bytes {backing[1]}+ of the export) on {m.target}")
    else:
        lv_device = host.run("readlink -f %s", lvm.path).stdout.strip()
        for m in mounts:
            if m.source.startswith("/dev/") and lv_device and host.run(
                    "readlink -f %s", m.source).stdout.strip() == lv_device:
                found.append(f"{m.source} on {m.target}")
    assert not found, (f"on {lab_host_name}: {lvm.path} is mounted ({'; '.join(found)}) "
                       f"while {inventory.domain.name} uses it: unmount it")
