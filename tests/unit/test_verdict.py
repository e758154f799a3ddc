"""The certification verdict on one migration (judge_record), case by case: each reason a
migration fails is found alone, with its figures, and a clean record passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xenlab.inventory import load_inventory
from xenlab.measure.results import MigrationRecord
from xenlab.measure.verdict import WINDOW_MAX_AFTER_S, judge_record

INVENTORY = load_inventory(str(Path(__file__).parents[2] / "inventories" / "embedded.yml"))
LIMITS = INVENTORY.limits


def record(**changes: Any) -> MigrationRecord:
    fields: dict[str, Any] = dict(
        id="idle-rt1-a->b", scenario="idle", round_trip=1, source="a", destination="b",
        status="completed", started_at=100.0, ended_at=101.0,
        hypervisor={"error": "", "memory_audit": None},
        network={"downtime_ms": 40.0, "loss_pct": 1.0, "gap_open": False, "open_gap_ms": None},
        tcp={"sent": 30, "echoed": 30, "in_order": True, "error": ""}, continuity=[],
        passed=False)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(fields.get(key), dict):
            fields[key] = {**fields[key], **value}
        else:
            fields[key] = value
    return MigrationRecord(**fields)


def test_a_clean_migration_passes() -> None:
    assert judge_record(record(), INVENTORY, "b") == []


@pytest.mark.parametrize(("changes", "location", "expected"), [
    ({"status": "failed", "hypervisor": {"error": "Size mismatch: pc.ram"}}, "a",
     ["status failed: Size mismatch: pc.ram", "vm1 runs on a, not only on b"]),
    ({"status": "timeout", "hypervisor": {"error": ""}}, None,
     ["status timeout: no detail", "vm1 runs on no single host, not only on b"]),
    ({"continuity": ["the guest rebooted (uptime went back)"]}, "b",
     ["the guest rebooted (uptime went back)"]),
    ({"hypervisor": {"memory_audit": {"differing_count": 3, "pages": 65536,
                                      "differing_first": ["0x1000", "0x2000", "0x3000"]}}}, "b",
     ["the destination received 3 of 65536 guest pages different from the source's (first "
      "at 0x1000, 0x2000, 0x3000)"]),
    ({"tcp": {"error": "Connection reset by peer"}}, "b",
     ["the TCP connection broke: Connection reset by peer"]),
    ({"tcp": {"echoed": 28}}, "b",
     ["the TCP connection lost data: 28 of 30 lines echoed, in order: True"]),
    ({"tcp": {"in_order": False}}, "b",
     ["the TCP connection lost data: 30 of 30 lines echoed, in order: False"]),
    ({"network": None}, "b", ["the meter saw no replies at all"]),
    ({"network": {"downtime_ms": LIMITS.downtime_ms + 0.1}}, "b",
     [f"network downtime {LIMITS.downtime_ms + 0.1:.1f} ms > limit {LIMITS.downtime_ms:.0f} ms"]),
    ({"network": {"loss_pct": LIMITS.loss_pct + 0.5}}, "b",
     [f"probe loss {LIMITS.loss_pct + 0.5:.2f} % > limit {LIMITS.loss_pct} %"]),
])
def test_each_reason_is_found_alone(changes: dict[str, Any], location: str | None,
                                    expected: list[str]) -> None:
    assert judge_record(record(**changes), INVENTORY, location) == expected


def test_an_outage_still_open_fails_whatever_its_figure() -> None:
    """The meter's window closed on an outage: it fails even when its downtime figure, cut
    by the window, would be under the limit."""
    problems = judge_record(record(network={"gap_open": True, "open_gap_ms": 9500.0,
                                            "downtime_ms": 9500.0}), INVENTORY, "b")
    assert problems[0] == (f"the guest's network had not come back when the meter stopped, "
                           f"{WINDOW_MAX_AFTER_S:g} s after the migration: an outage of at least "
                           f"9500.0 ms, still open")
    small = judge_record(record(network={"gap_open": True, "open_gap_ms": 0.2,
                                         "downtime_ms": 0.2}), INVENTORY, "b")
    assert len(small) == 1 and "still open" in small[0]


def test_limits_are_the_inventorys() -> None:
    at_limit = record(network={"downtime_ms": LIMITS.downtime_ms, "loss_pct": LIMITS.loss_pct})
    assert judge_record(at_limit, INVENTORY, "b") == []  # the limit itself passes


def test_the_plan_is_scenarios_by_round_trips_by_hops() -> None:
    from xenlab.measure.plan import plan

    steps = plan(["r1", "r2"], ("idle", "memory-dirty"), 2)
    assert [s.id for s in steps[:3]] == ["idle-rt1-r1->r2", "idle-rt1-r2->r1", "idle-rt2-r1->r2"]
    assert len(steps) == 8 and steps[-1].scenario == "memory-dirty"
    three = plan(["a", "b", "c"], ("idle",), 1, pattern="matrix")
    assert len(three) == 6 and three[0].source == "a" and three[-1].destination == "a"
    assert len({(s.source, s.destination) for s in three}) == 6  # every ordered pair once
    assert len(plan(["a", "b", "c"], ("idle",), 1)) == 3  # the ring


@pytest.mark.parametrize(("guests", "levels"), [(1, [1]), (2, [1, 2]), (3, [1, 2, 3]),
                                                (8, [1, 2, 8])])
def test_storm_levels_are_1_2_and_n(guests: int, levels: list[int]) -> None:
    from xenlab.measure.plan import storm_levels

    assert storm_levels(guests) == levels


def test_a_step_names_its_guest_only_when_given() -> None:
    from xenlab.measure.plan import Step

    assert Step("idle", 1, "a", "b").id == "idle-rt1-a->b"  # one guest: ids as before
    assert Step("storm-2", 1, "a", "b", "vm2").id == "storm-2-vm2-rt1-a->b"


def test_a_storm_judges_all_but_the_limits() -> None:
    """Without limits a record over the downtime and loss limits passes; a broken TCP
    connection or a guest in the wrong place still fails."""
    import dataclasses as dc

    from xenlab.inventory import load_inventory
    from xenlab.measure.results import load_results
    from xenlab.measure.verdict import judge_record

    repo = Path(__file__).parents[2]
    inv = load_inventory(repo / "inventories/embedded-guests.yml")
    run = load_results(repo / "tests/data/results/embedded-guests-run.json")
    m = run.migrations[0]
    slow = dc.replace(m, network={**(m.network or {}), "downtime_ms": 5000.0,
                                  "loss_pct": 90.0})
    assert any("limit" in p for p in judge_record(slow, inv, m.destination))
    assert judge_record(slow, inv, m.destination, limits=False) == []
    broken = dc.replace(slow, tcp={**(m.tcp or {}), "error": "reset"})
    assert judge_record(broken, inv, "elsewhere", limits=False) == [
        f"{m.guest} runs on elsewhere, not only on {m.destination}",
        "the TCP connection broke: reset"]
