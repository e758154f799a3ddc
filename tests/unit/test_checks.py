"""Pure judgements of the certification suites, against outputs saved from the lab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xenlab.checks.image import (
    active_gettys_2_to_6,
    console_gettys,
    fstab_root,
    parse_fstab,
    parse_inittab,
    root_fstype,
)
from xenlab.checks.names import resolved_address
from xenlab.checks.storage import lv_range, overlaps, parse_mounts
from xenlab.checks.tools import required_tools
from xenlab.checks.xen import (
    classify_connect,
    free_memory_mib,
    meminfo_available_mib,
    parse_xend_config,
    relocation_findings,
    relocation_open_to_all,
)
from xenlab.errors import ParseError
from xenlab.hypervisor.qmp import block_backings
from xenlab.hypervisor.xen import parse_xl_info
from xenlab.inventory import Role, Toolstack
from xenlab.lab.image import DIRINSTALL_INITTAB
from xenlab.storage.lvm import ByteRange, LvmReports


def test_fstab_of_the_guest(data: Path) -> None:
    root = fstab_root(parse_fstab((data / "guest/fstab.txt").read_text()))
    assert root is not None and (root.device, root.fstype) == ("/dev/vda", "ext4")
    assert fstab_root(parse_fstab("# nothing\n\n")) is None
    with pytest.raises(ParseError, match="line 1"):
        parse_fstab("/dev/hda1\n")


def test_inittab_edited_and_not(data: Path) -> None:
    edited = parse_inittab((data / "guest/inittab-edited.txt").read_text())
    assert active_gettys_2_to_6(edited) == []
    assert [e.process for e in console_gettys(edited)] == [
        "/sbin/sulogin", "/sbin/mingetty --noclear tty1"]
    raw = parse_inittab(DIRINSTALL_INITTAB)
    assert [e.line for e in active_gettys_2_to_6(raw)] == [14, 15, 16, 17, 18]
    assert not [e for e in raw if e.id == "l2" and e.commented]  # 'l2:' is not a getty line
    with pytest.raises(ParseError):
        parse_inittab("1:2345:respawn\n")


def test_root_fstype_in_the_guest(data: Path) -> None:
    assert root_fstype((data / "guest/proc-mounts.txt").read_text()) == "ext4"


def test_mounts_and_ranges(data: Path) -> None:
    mounts = parse_mounts((data / "guest/proc-mounts.txt").read_text())
    assert [m.target for m in mounts][:2] == ["/dev", "/"]
    assert parse_mounts("/dev/loop0 /mnt/with\\040space ext4 ro 0 0")[0].target == "/mnt/with space"
    lv = ByteRange(1 << 20, 5 << 30)
    assert overlaps(1 << 20, 0, lv) and overlaps(0, 2 << 20, lv)
    assert not overlaps(0, 1 << 20, lv) and not overlaps((1 << 20) + (5 << 30), 4096, lv)


def test_lv_range_from_a_view(data: Path) -> None:
    view = LvmReports("export", *((data / f"lvm/{k}.json").read_text() for k in ("pvs", "vgs", "lvs")))
    assert lv_range(view, "vg_xen", "lv_vm1") == ByteRange(1 << 20, 5 << 30)
    with pytest.raises(ParseError, match="vg_xen/nope"):
        lv_range(view, "vg_xen", "nope")


def test_name_resolution_outputs(data: Path) -> None:
    assert resolved_address((data / "guest/busybox-ping-name.txt").read_text()) == "198.18.0.10"
    assert resolved_address((data / "guest/getent-hosts.txt").read_text()) in ("127.0.0.1", "::1", None)
    assert resolved_address("198.18.0.12     xen_resource_2\n") == "198.18.0.12"
    assert resolved_address("ping: bad address 'nohost'") is None


def test_xend_config(data: Path) -> None:
    config = parse_xend_config((data / "xen/xend-config-suse101.sxp").read_text())
    assert config["xend-relocation-server"] == "yes"
    assert relocation_findings(config, 8002) == [
        "(xend-relocation-port 8002) is not set (found none)"]
    assert not relocation_open_to_all(config)
    article = (data / "xen/xend-config-suse101.sxp").read_text().replace(
        "#(xend-relocation-port 8002)", "(xend-relocation-port 8002)").replace(
        "#(xend-relocation-address '')", "(xend-relocation-address '')").replace(
        "(xend-relocation-hosts-allow '^localhost", "#(xend-relocation-hosts-allow '^localhost")
    opened = parse_xend_config(article)
    assert relocation_findings(opened, 8002) == [] and relocation_open_to_all(opened)
    with pytest.raises(ParseError, match="line 1"):
        parse_xend_config("xend-relocation-port 8002\n")


def test_memory_figures(data: Path) -> None:
    assert free_memory_mib(parse_xl_info((data / "xen/xl-info.txt").read_text())) == 203
    assert meminfo_available_mib((data / "ip/meminfo.txt").read_text()) > 256
    with pytest.raises(ParseError):
        free_memory_mib(parse_xl_info("host : x\n"))


def test_connect_classes() -> None:
    assert classify_connect(0, "") == "open"
    assert classify_connect(124, "") == "filtered"
    assert classify_connect(1, "bash: connect: Connection refused") == "refused"
    assert classify_connect(1, "No route to host") == "unreachable"


def test_query_block_backing(data: Path) -> None:
    backing = block_backings(json.loads((data / "qmp/query-block.json").read_text()))[0]
    assert backing.path.endswith("/storage/export.img")
    assert (backing.offset, backing.size) == (1 << 20, 5 << 30)
    with pytest.raises(ParseError):
        block_backings({"return": []})


REAL = frozenset({"aoe-initiator", "device-mapper"})  # a real lab's features


def test_tools_by_role() -> None:
    storage = required_tools(Role.STORAGE, Toolstack.XM, REAL)
    assert [t.command for t in storage] == ["vblade"]
    real = [t.command for t in required_tools(Role.RESOURCE, Toolstack.XM, REAL)]
    assert {"aoe-discover", "pvs", "xm"} <= set(real)
    embedded = [t.command for t in required_tools(Role.RESOURCE, Toolstack.QEMU, frozenset())]
    assert "qemu-system-x86_64" in embedded and "aoe-stat" not in embedded
    assert required_tools(Role.GUEST, Toolstack.XL, REAL) == []
