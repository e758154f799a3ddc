"""Live migration, measured: for every step of the plan (scenarios x round trips x hops) the
guest moves while the meter probes it at 1 ms, a TCP connection stays open through it, and
the guest's continuity is checked; the hypervisor's own figures are kept beside the
network's. A baseline (--lab-baseline) turns the figures into a regression test."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from xenlab.inventory import Inventory
from xenlab.lab import Lab
from xenlab.measure.plan import Step
from xenlab.measure.results import MigrationRecord, Results, Tolerance, compare_results, load_results
from xenlab.measure.verdict import judge_record
from xenlab.plugin import LabOptions
from xenlab.report.extras import Attach


@pytest.mark.destructive
def test_live_migration(migration_step: Step, lab: Lab, inventory: Inventory,
                        observed_migration: Callable[[Step], MigrationRecord],
                        record_property: Callable[[str, object], None],
                        attach: Attach,
                        results: Results) -> None:
    step = migration_step
    where = lab.guest_location()
    if where != step.source:  # a consequence: said in one line, with its cause
        failed = [m.id for m in results.migrations if not m.passed]
        cause = (f"the migration {failed[-1]} failed" if failed
                 else "it was not where the plan left it")
        pytest.fail(f"not run: {inventory.domain.name} is on {where or 'no single host'}, "
                    f"not on {step.source}, before {step.id}: {cause}", pytrace=False)
    record = observed_migration(step)
    record.problems = judge_record(record, inventory, lab.guest_location())
    record.passed = not record.problems
    attach.migration(record)
    net, hv = record.network or {}, record.hypervisor
    for key in ("downtime_ms", "loss_pct", "lost", "rtt_median_ms", "rtt_p99_ms"):
        record_property(f"network_{key}", net.get(key))
    for key in ("total_time_ms", "downtime_ms", "setup_time_ms", "bytes_transferred"):
        record_property(f"hypervisor_{key}", hv.get(key))
    record_property("tcp_longest_stall_ms", (record.tcp or {}).get("longest_stall_ms"))
    assert not record.problems, f"{step.id}: " + "; ".join(record.problems)


@pytest.mark.destructive
def test_no_regression_against_the_baseline(results: Results, lab_options: LabOptions) -> None:
    if not lab_options.baseline:
        pytest.skip("no baseline given (--lab-baseline FILE)")
    if not results.migrations:
        pytest.skip("no migrations were measured in this run")
    rows = compare_results(load_results(lab_options.baseline), results, Tolerance())
    regressions = [r for r in rows if r.regressed]
    assert not regressions, "regressions against " + lab_options.baseline + ": " + "; ".join(
        f"{r.scenario} {r.direction}: {r.reason}" for r in regressions)
