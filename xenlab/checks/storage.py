"""Storage judgements: mounts of the guest's LV, the LV's place in the export."""

from __future__ import annotations

from dataclasses import dataclass

from xenlab.errors import ParseError
from xenlab.storage.lvm import ByteRange, LvmReports, lv_byte_range, parse_lvs, parse_pvs, parse_vgs


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    fstype: str
    options: str


def _unescape(field: str) -> str:
    """/proc/mounts escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mounts(text: str) -> list[Mount]:
    """/proc/mounts (or /proc/self/mounts)."""
    mounts = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 4:
            raise ParseError("/proc/mounts", f"line {number} has {len(fields)} fields", line)
        mounts.append(Mount(_unescape(fields[0]), _unescape(fields[1]), fields[2], fields[3]))
    return mounts


def lv_range(reports: LvmReports, vg: str, lv: str) -> ByteRange:
    """Where the LV lies in its PV, from one view's reports."""
    lvs = [v for v in parse_lvs(reports.lvs) if (v.vg, v.name) == (vg, lv)]
    vgs = [v for v in parse_vgs(reports.vgs) if v.name == vg]
    if not lvs or not vgs:
        raise ParseError("LVM reports", f"{vg}/{lv} not found in the view of {reports.view}")
    device = lvs[0].devices.split("(")[0]
    pvs = [p for p in parse_pvs(reports.pvs) if p.name == device]
    if not pvs:
        raise ParseError("LVM reports", f"PV {device} of {vg}/{lv} not in pvs of {reports.view}")
    return lv_byte_range(lvs[0], pvs[0], vgs[0])


def overlaps(a_offset: int, a_size: int, b: ByteRange) -> bool:
    """Whether [a_offset, a_offset + a_size) meets the range b (size 0 means 'to the end')."""
    a_end = a_offset + a_size if a_size else float("inf")
    return a_offset < b.offset + b.size and b.offset < a_end
