"""Pure parsers for LVM's JSON reports (`pvs/vgs/lvs --reportformat json --units b`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from xenlab.errors import ParseError


@dataclass(frozen=True)
class PhysicalVolume:
    name: str
    vg: str
    size: int
    free: int
    pe_start: int
    uuid: str


@dataclass(frozen=True)
class VolumeGroup:
    name: str
    size: int
    free: int
    extent_size: int
    pv_count: int
    lv_count: int


@dataclass(frozen=True)
class LogicalVolume:
    name: str
    vg: str
    size: int
    attr: str
    uuid: str
    devices: str  # e.g. "/dev/loop0(0)"
    first_extent: int | None  # first physical extent of the (single, linear) segment

    @property
    def active(self) -> bool:
        return len(self.attr) > 4 and self.attr[4] == "a"


def _report(text: str, kind: str) -> list[dict[str, str]]:
    try:
        data = json.loads(text)
        rows = [row for report in data["report"] for row in report.get(kind, [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ParseError(f"LVM {kind} report", str(exc), text) from None
    if not all(isinstance(r, dict) for r in rows):
        raise ParseError(f"LVM {kind} report", "rows are not objects", text)
    return rows


def _bytes(value: str, what: str) -> int:
    match = re.fullmatch(r"\s*(\d+)B?\s*", value or "")
    if not match:
        raise ParseError(what, f"expected a size in bytes (use --units b), found {value!r}")
    return int(match.group(1))


def _field(row: dict[str, str], key: str, kind: str) -> str:
    if key not in row:
        raise ParseError(f"LVM {kind} report", f"field {key!r} missing (add it with -o)")
    return row[key]


def parse_pvs(text: str) -> list[PhysicalVolume]:
    """`pvs --reportformat json --units b -o +pe_start,pv_uuid`"""
    return [
        PhysicalVolume(
            name=_field(r, "pv_name", "pv"), vg=r.get("vg_name", ""),
            size=_bytes(_field(r, "pv_size", "pv"), "pv_size"),
            free=_bytes(_field(r, "pv_free", "pv"), "pv_free"),
            pe_start=_bytes(_field(r, "pe_start", "pv"), "pe_start"),
            uuid=_field(r, "pv_uuid", "pv"),
        )
        for r in _report(text, "pv")
    ]


def parse_vgs(text: str) -> list[VolumeGroup]:
    """`vgs --reportformat json --units b -o +vg_extent_size`"""
    return [
        VolumeGroup(
            name=_field(r, "vg_name", "vg"),
            size=_bytes(_field(r, "vg_size", "vg"), "vg_size"),
            free=_bytes(_field(r, "vg_free", "vg"), "vg_free"),
            extent_size=_bytes(_field(r, "vg_extent_size", "vg"), "vg_extent_size"),
            pv_count=int(_field(r, "pv_count", "vg")),
            lv_count=int(_field(r, "lv_count", "vg")),
        )
        for r in _report(text, "vg")
    ]


def parse_lvs(text: str) -> list[LogicalVolume]:
    """`lvs --reportformat json --units b -o +lv_uuid,devices,seg_pe_ranges`"""
    volumes = []
    for r in _report(text, "lv"):
        devices = r.get("devices", "")
        match = re.search(r"\((\d+)\)", devices)
        volumes.append(LogicalVolume(
            name=_field(r, "lv_name", "lv"), vg=_field(r, "vg_name", "lv"),
            size=_bytes(_field(r, "lv_size", "lv"), "lv_size"),
            attr=_field(r, "lv_attr", "lv"), uuid=r.get("lv_uuid", ""), devices=devices,
            first_extent=int(match.group(1)) if match else None,
        ))
    return volumes


@dataclass(frozen=True)
class ByteRange:
    """Where an LV's bytes lie in its PV (and so in the exported image)."""

    offset: int
    size: int


def lv_byte_range(lv: LogicalVolume, pv: PhysicalVolume, vg: VolumeGroup) -> ByteRange:
    """offset = pe_start + first_extent * extent_size, for a single linear segment."""
    if lv.first_extent is None or "," in lv.devices:
        raise ParseError("LV layout", f"{lv.vg}/{lv.name} is not one linear segment: {lv.devices!r}")
    return ByteRange(pv.pe_start + lv.first_extent * vg.extent_size, lv.size)


@dataclass(frozen=True)
class LvmReports:
    """pvs, vgs and lvs as one host (or the export itself) reports them, as JSON text."""

    view: str  # the host that ran the commands, or "export"
    pvs: str
    vgs: str
    lvs: str


PVS_ARGS = ["pvs", "--reportformat", "json", "--units", "b", "-o", "+pe_start,pv_uuid"]
VGS_ARGS = ["vgs", "--reportformat", "json", "--units", "b", "-o", "+vg_extent_size"]
LVS_ARGS = ["lvs", "--reportformat", "json", "--units", "b", "-o", "+lv_uuid,devices,seg_pe_ranges"]
