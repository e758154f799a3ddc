"""A host emptied for maintenance (pure): where each guest goes, checked for room before
anything moves; in waves of N at a time (1: one after the other); and afterwards, whether
the host is empty and every guest runs exactly once, where there was room for it."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Guest:
    name: str
    memory_mib: int
    host: str  # where it runs now


@dataclass(frozen=True)
class Move:
    guest: str
    source: str
    destination: str


@dataclass(frozen=True)
class Evacuation:
    source: str
    waves: tuple[tuple[Move, ...], ...]  # each wave's moves run at once
    free_mib: dict[str, int | None]  # each destination's free memory before, as counted
    problems: tuple[str, ...]  # why it cannot be done (then no wave is planned)

    @property
    def moves(self) -> list[Move]:
        return [m for wave in self.waves for m in wave]


def plan_evacuation(source: str, guests: Sequence[Guest], free_mib: Mapping[str, int | None],
                    at_a_time: int = 1, counted_by: str = "the hypervisor") -> Evacuation:
    """Every guest on `source` to a destination with room, the largest first (first fit);
    a destination's free memory unknown (None) is not trusted with a guest."""
    if at_a_time < 1:
        raise ValueError(f"at_a_time {at_a_time}: expected 1 or more")
    leaving = sorted((g for g in guests if g.host == source), key=lambda g: -g.memory_mib)
    left = {h: f for h, f in free_mib.items() if h != source}
    problems = []
    if not left:
        problems.append(f"no host besides {source} to move its guests to")
    moves = []
    for g in leaving:
        room = [h for h, f in left.items() if f is not None and f >= g.memory_mib]
        if not room:
            seen = ", ".join(f"{h} {f if f is not None else 'unknown'} MiB" for h, f in
                             left.items()) or "none"
            problems.append(f"{g.name} needs {g.memory_mib} MiB and no other host has room "
                            f"for it (free, as {counted_by} counts it: {seen})")
            continue
        target = room[0]
        left[target] = (left[target] or 0) - g.memory_mib
        moves.append(Move(g.name, source, target))
    if problems:
        return Evacuation(source, (), dict(free_mib), tuple(problems))
    waves = tuple(tuple(moves[i:i + at_a_time]) for i in range(0, len(moves), at_a_time))
    return Evacuation(source, waves, dict(free_mib), ())


def returns(evacuation: Evacuation) -> tuple[tuple[Move, ...], ...]:
    """The way back: every guest from where it went to the host it left, in the same waves."""
    return tuple(tuple(Move(m.guest, m.destination, m.source) for m in wave)
                 for wave in evacuation.waves)


def judge_evacuation(evacuation: Evacuation, copies: Sequence[tuple[str, str, str]]
                     ) -> list[str]:
    """After the moves: `copies` are (host, domain, state) of every copy the hypervisor
    lists. The source runs no guest of the plan; each runs exactly once, where planned."""
    problems = []
    planned = {m.guest: m.destination for m in evacuation.moves}
    left_behind = sorted({d for h, d, s in copies if h == evacuation.source and s != "absent"
                          and (d in planned or d.split("--")[0] in planned)})
    if left_behind:
        problems.append(f"{evacuation.source} still holds {', '.join(left_behind)}: it is "
                        "not empty")
    for guest, destination in planned.items():
        running = sorted(h for h, d, s in copies if d == guest and s == "running")
        if running != [destination]:
            where = ", ".join(running) if running else "no host"
            problems.append(f"{guest} runs on {where}; it must run exactly once, on "
                            f"{destination}")
    return problems


@dataclass
class MaintenanceWindow:
    """What happened in the maintenance window, phase by phase."""

    source: str = ""
    evacuation: Evacuation | None = None
    migrations: list[str] = field(default_factory=list)  # ids of the records in results
    events: list[tuple[float, str]] = field(default_factory=list)
    done: list[str] = field(default_factory=list)  # phases that succeeded
    failed: str = ""  # the first phase that failed
    powered_off: str = ""  # the host now without power, if any
    opened: float = 0.0

    def say(self, what: str) -> None:
        if not self.opened:
            self.opened = time.time()
        self.events.append((time.time(), what))

    def blocked(self, phase: str) -> str | None:
        """Why a phase that builds on `phase` cannot run (None: it can), in one line."""
        if phase in self.done:
            return None
        cause = f"the phase '{self.failed}' failed" if self.failed else f"'{phase}' did not run"
        return f"not run: {cause}"

    def as_dict(self) -> dict[str, Any]:
        ev = self.evacuation
        return {"source": self.source, "opened": self.opened,
                "closed": self.events[-1][0] if self.events else None,
                "window_s": (self.events[-1][0] - self.opened) if self.events else None,
                "at_a_time": len(ev.waves[0]) if ev and ev.waves else None,
                "moves": [m.__dict__ for m in ev.moves] if ev else [],
                "free_mib": ev.free_mib if ev else {},
                "migrations": self.migrations, "done": self.done, "failed": self.failed,
                "events": [{"at": t, "what": w} for t, w in self.events]}
