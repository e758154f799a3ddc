"""AoE at frame level: the exported target answers every resource host correctly.

Frames are built and dissected with scapy; the probe runs on each resource host's storage
interface; every exchange is kept as a pcap (reports/aoe/HOST.pcap) with a frame summary.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from xenlab.aoe import frames as fr
from xenlab.aoe.session import AoeProbe
from xenlab.inventory import Inventory
from xenlab.report.extras import Attach
from xenlab.storage.lvm import LvmReports, parse_pvs

ROOT_CHECK = "test_query_config_answered_exactly_once"


def _answers(probe: AoeProbe, inventory: Inventory, needed: bool = True) -> list[fr.AoeFrame]:
    """The named target's answers to the Query Config. A check that depends on them
    (`needed`) and finds none fails in one line naming the cause, which the root check
    reports in full; it never passes on nothing, nor shows the probe's repr."""
    __tracebackhide__ = True
    if probe.error:
        pytest.fail(f"AoE probe from {probe.host}:{probe.interface} failed: {probe.error}",
                    pytrace=False)
    answers = probe.answers_for(inventory.aoe.shelf, inventory.aoe.slot)
    if needed and not answers:
        pytest.fail(f"not checked: {inventory.aoe.target} answered no Query Config from "
                    f"{probe.host}:{probe.interface} (the cause: see {ROOT_CHECK})",
                    pytrace=False)
    return answers


def _needs(frame: fr.AoeFrame | None, what: str, probe: AoeProbe,
           inventory: Inventory) -> fr.AoeFrame:
    __tracebackhide__ = True
    if frame is None:
        pytest.fail(f"from {probe.host}: {inventory.aoe.target} answered the Query Config but "
                    f"not {what}", pytrace=False)
    return frame


def test_query_config_answered_exactly_once(resource_name: str,
                                            aoe_probe: Callable[[str], AoeProbe],
                                            inventory: Inventory,
                                            attach: Attach) -> None:
    probe = aoe_probe(resource_name)
    attach.aoe(probe.summary, probe.pcap, resource_name)
    answers = _answers(probe, inventory, needed=False)
    target = inventory.aoe.target
    assert answers, (f"from {resource_name}:{probe.interface}: no answer from {target} to a "
                     f"Query Config broadcast (answers seen: "
                     f"{[f.target for f in probe.config_answers] or 'none'}; is vblade exporting "
                     f"{target} on {inventory.storage.name}:{inventory.aoe.interface}?)")
    assert len(answers) == 1, (
        f"from {resource_name}: {target} answered {len(answers)} times, from "
        f"{', '.join(sorted(f.src for f in answers))}: two exports of one shelf.slot conflict")


def test_no_export_the_inventory_does_not_name(resource_name: str,
                                               aoe_probe: Callable[[str], AoeProbe],
                                               inventory: Inventory) -> None:
    """Every target the storage network answers for (a Query Config to every shelf and
    slot) is listed; one the inventory does not name is a finding: a second export on the
    storage network, which a resource host's aoe driver would discover as well."""
    probe = aoe_probe(resource_name)
    _answers(probe, inventory)
    named = (inventory.aoe.shelf, inventory.aoe.slot)
    others = sorted({f"{f.target} from {f.src}" for f in probe.config_answers
                     if (f.shelf, f.slot) != named})
    assert not others, (f"from {resource_name}: the storage network also exports "
                        f"{', '.join(others)}, which the inventory does not name (only "
                        f"{inventory.aoe.target})")


def test_config_answer_header(resource_name: str, aoe_probe: Callable[[str], AoeProbe],
                              inventory: Inventory) -> None:
    for frame in _answers(aoe_probe(resource_name), inventory):
        assert frame.version == 1, f"{frame.target} from {frame.src}: AoE version {frame.version}"
        assert frame.response, f"{frame.target} from {frame.src}: response flag not set"
        assert not frame.error_flag, (f"{frame.target} from {frame.src}: error flag set: "
                                      f"{frame.error_text}")
        assert frame.config().aoe_version == 1, f"{frame.target}: config AoE version not 1"


def test_answer_comes_from_the_storage_interface(resource_name: str,
                                                 aoe_probe: Callable[[str], AoeProbe],
                                                 inventory: Inventory, storage_mac: str) -> None:
    wrong = [f.src for f in _answers(aoe_probe(resource_name), inventory)
             if f.src.lower() != storage_mac.lower()]
    assert not wrong, (f"from {resource_name}: {inventory.aoe.target} answered from {wrong}, "
                       f"not from {inventory.storage.name}:{inventory.aoe.interface} "
                       f"({storage_mac})")


def test_identify_capacity_is_the_export_size(resource_name: str,
                                              aoe_probe: Callable[[str], AoeProbe],
                                              inventory: Inventory, export_size: int) -> None:
    probe = aoe_probe(resource_name)
    _answers(probe, inventory)
    frame = _needs(probe.identify, "ATA IDENTIFY", probe, inventory)
    assert not frame.error_flag, f"from {resource_name}: ATA IDENTIFY: {frame.error_text}"
    identify = fr.parse_identify(frame.ata_data())
    assert identify.capacity == export_size, (
        f"from {resource_name}: {inventory.aoe.target} ({identify.model}) reports "
        f"{identify.lba48_sectors} sectors = {identify.capacity} bytes; "
        f"{inventory.storage.name} exports {export_size} bytes")


def test_sector_1_carries_the_pv_label(resource_name: str,
                                       aoe_probe: Callable[[str], AoeProbe],
                                       inventory: Inventory,
                                       lvm_views: list[LvmReports]) -> None:
    probe = aoe_probe(resource_name)
    _answers(probe, inventory)
    frame = _needs(probe.read_label, "the ATA READ of sector 1", probe, inventory)
    label = fr.parse_pv_label(frame.ata_data())
    assert label.label_type == "LVM2 001", f"sector 1 label type {label.label_type!r}"
    for view in lvm_views:
        uuids = {pv.uuid for pv in parse_pvs(view.pvs) if pv.vg == inventory.lvm.vg}
        assert label.uuid in uuids, (
            f"the PV label read over AoE from {resource_name} has UUID {label.uuid}; pvs on "
            f"{view.view} reports {sorted(uuids) or 'no PV'} in {inventory.lvm.vg}")
