"""The guest image's fix-ups, judged: fstab, inittab, passwd/shadow."""

from __future__ import annotations

from dataclasses import dataclass

from xenlab.errors import ParseError


@dataclass(frozen=True)
class FstabEntry:
    device: str
    mountpoint: str
    fstype: str
    options: str


def parse_fstab(text: str) -> list[FstabEntry]:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) < 3:
            raise ParseError("fstab", f"line {number} has {len(fields)} fields, expected 4 to 6")
        entries.append(FstabEntry(fields[0], fields[1], fields[2],
                                  fields[3] if len(fields) > 3 else "defaults"))
    return entries


def fstab_root(entries: list[FstabEntry]) -> FstabEntry | None:
    roots = [e for e in entries if e.mountpoint == "/"]
    return roots[-1] if roots else None


@dataclass(frozen=True)
class InittabEntry:
    id: str
    runlevels: str
    action: str
    process: str
    commented: bool
    line: int


def parse_inittab(text: str) -> list[InittabEntry]:
    """SysV inittab `id:runlevels:action:process`; commented entries are kept, marked."""
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        commented = line.startswith("#")
        body = line.lstrip("#").strip()
        parts = body.split(":", 3)
        if len(parts) != 4:
            if commented or not body:
                continue  # a plain comment
            raise ParseError("inittab", f"line {number} is not id:runlevels:action:process",
                             raw)
        entries.append(InittabEntry(parts[0], parts[1], parts[2], parts[3], commented, number))
    return entries


def active_gettys_2_to_6(entries: list[InittabEntry]) -> list[InittabEntry]:
    """Entries the article's `sed s/^[2-6]:/#\\0/` should have commented out."""
    return [e for e in entries if not e.commented and e.id in {"2", "3", "4", "5", "6"}]


def console_gettys(entries: list[InittabEntry]) -> list[InittabEntry]:
    """Active respawning logins left for the console."""
    return [e for e in entries if not e.commented and e.action == "respawn"
            and ("getty" in e.process or "sulogin" in e.process)]


def root_fstype(mounts_text: str) -> str | None:
    """The type of / in /proc/mounts (the last mount on / wins)."""
    found = None
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "/":
            found = fields[2]
    return found
