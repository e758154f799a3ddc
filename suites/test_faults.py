"""Faults, survived and told truthfully (embedded labs, on request: --lab-fault-suite).

Each migration fault is set off mid-transfer: the migration link cut (nftables drops the
transport port on the destination), the destination's receiving process killed, the
migration cancelled. On the Xen profile, where the guest's disk really goes through AoE, the
storage target is also stopped while the guest writes, and started again. In every case the
run must say what happened, the guest must run on exactly one host with its data intact,
and the next migration must succeed (judged by xenlab.checks.faults)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from xenlab.checks.faults import FaultOutcome, judge_fault
from xenlab.hypervisor.base import MigrationFault
from xenlab.measure.results import Results
from xenlab.report.extras import Attach


@pytest.mark.destructive
@pytest.mark.needs("fault-injection")
@pytest.mark.parametrize("fault", list(MigrationFault), ids=[f.value for f in MigrationFault])
def test_migration_fault_survived(fault: MigrationFault,
                                  faulted_migration: Callable[[MigrationFault], FaultOutcome],
                                  results: Results, attach: Attach,
                                  record_property: Callable[[str, object], None]) -> None:
    outcome = faulted_migration(fault)
    problems = judge_fault(outcome)
    results.faults.append({**outcome.as_dict(), "problems": problems})
    attach.fault(outcome, problems)
    record_property("fault_status", outcome.status)
    record_property("fault_message", outcome.message)
    assert not problems, "; ".join(problems)


@pytest.mark.destructive
@pytest.mark.needs("fault-injection", "storage-outage")
def test_storage_outage_survived(storage_outage: Callable[[], FaultOutcome], results: Results,
                                 attach: Attach) -> None:
    outcome = storage_outage()
    problems = judge_fault(outcome)
    results.faults.append({**outcome.as_dict(), "problems": problems})
    attach.fault(outcome, problems)
    assert not problems, "; ".join(problems)
