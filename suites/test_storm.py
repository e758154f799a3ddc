"""A migration storm: the lab's guests moved at once, one, two, then all of them, there and
back, then all at once in both directions (half of them each way). Every guest's outage is
measured on its own; the report plots downtime against the number of migrations that ran
at once. Each migration must complete, run its guest once where it went and keep its TCP
connection and memory intact; its downtime and loss are what the storm measures, so they are
not judged against the lab's limits for one migration (the plan and the maintenance window
judge those). Destructive; it needs two guests or more."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from xenlab.inventory import Inventory
from xenlab.lab import Lab
from xenlab.measure.evacuation import Move
from xenlab.measure.plan import storm_levels
from xenlab.measure.results import MigrationRecord
from xenlab.plugin import LabOptions

pytestmark = pytest.mark.destructive


def _other(inventory: Inventory, host: str) -> str:
    return next(h.name for h in inventory.resources if h.name != host)


def _moves(lab: Lab, inventory: Inventory, guests: Sequence[str],
           to: Callable[[str], str]) -> list[Move]:
    moves = []
    for guest in guests:
        where = lab.guest_location(guest)
        assert where is not None, f"{guest} runs on no single host before the storm"
        moves.append(Move(guest, where, to(where)))
    return moves


def test_downtime_against_concurrency(
        lab: Lab, inventory: Inventory, lab_options: LabOptions,
        migrate_wave: Callable[..., list[MigrationRecord]]) -> None:
    names = [g.name for g in inventory.guests]
    if not lab_options.storm:
        pytest.skip(f"{inventory.path} says run.storm: false (about a dozen migrations; "
                    "--lab-storm or XENLAB_STORM=1 runs it)")
    if len(names) < 2:
        pytest.skip(f"a migration storm needs two guests or more; lab {inventory.lab} has "
                    f"{len(names)}")
    problems: list[str] = []
    swap = lambda where: _other(inventory, where)  # noqa: E731 - each to the other host
    for level in storm_levels(len(names)):
        for _leg in ("there", "back"):
            moves = _moves(lab, inventory, names[:level], swap)
            for record in migrate_wave(f"storm-{level}", moves, limits=False):
                problems += [f"{record.id}: {p}" for p in record.problems]
    # both directions at once: every other guest moved over first (not a storm figure,
    # but measured and judged all the same), then everyone crosses, then back
    half = names[1::2]
    for record in migrate_wave("storm-split", _moves(lab, inventory, half, swap),
                               limits=False):
        problems += [f"{record.id}: {p}" for p in record.problems]
    for leg in ("crossing", "crossing-back"):
        for record in migrate_wave(f"storm-{leg}", _moves(lab, inventory, names, swap),
                                   limits=False):
            problems += [f"{record.id}: {p}" for p in record.problems]
    for record in migrate_wave("storm-rejoin", _moves(lab, inventory, half, swap),
                               limits=False):
        problems += [f"{record.id}: {p}" for p in record.problems]
    homes = {lab.guest_location(name) for name in names}
    assert len(homes) == 1, f"after the storm the guests run on {sorted(map(str, homes))}"
    assert not problems, "; ".join(problems)
