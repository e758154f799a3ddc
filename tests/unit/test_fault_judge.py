"""The fault suite's judge: a truthful outcome passes; each lie a harness could tell (a fault
never set off, a guest on two hosts, data changed, a silent failure, a broken next migration,
a half-received copy left behind) fails with a message that names it."""

from __future__ import annotations

import dataclasses

import pytest

from xenlab.checks.faults import FaultOutcome, describe, judge_fault
from xenlab.hypervisor.base import Injection

A, B = "xen_resource_1", "xen_resource_2"
GOOD = FaultOutcome(
    fault="link-cut", domain="vm1", home=A, destination=B,
    injected="nftables on xen_resource_2 drops tcp port 8002", status="timeout",
    message="not completed within 15 s: cancelled, vm1 stays on xen_resource_1",
    copies=((A, "vm1", "running"),), written="ab" * 32, read_back="ab" * 32,
    next_status="completed", next_copies=((B, "vm1", "running"),))


def test_a_truthful_outcome_passes() -> None:
    assert judge_fault(GOOD) == []
    storage = dataclasses.replace(GOOD, fault="storage-outage", status="", message="")
    assert judge_fault(storage) == []  # no migration is judged for a storage outage


LIES = [
    ({"injected": ""}, "never set off"),
    ({"injected": "", "missed": "xl migrate ended 7.9 s after it was started"},
     "never set off (xl migrate ended 7.9 s after it was started), so"),
    ({"injected": "injection failed: LabError: x", "injection_failed": True},
     "setting the fault off failed"),
    ({"status": "completed"}, "reports 'completed' although the fault"),
    ({"message": "  "}, "with no message saying why"),
    ({"copies": ((A, "vm1", "running"), (B, "vm1", "running"))},
     "runs on xen_resource_1, xen_resource_2; it must run on exactly one host"),
    ({"copies": ()}, "runs on no host"),
    ({"copies": ((B, "vm1", "running"),)}, "runs on xen_resource_2; it must run"),
    ({"copies": ((A, "vm1", "running"), (B, "vm1--incoming", "paused"))},
     "copies left besides the guest: vm1--incoming (paused) on xen_resource_2"),
    ({"read_back": "cd" * 32}, "reads back different (sha256 abababababab written, cdcdcdcdcdcd"),
    ({"read_back": None}, "could not be read back"),
    ({"io_errors": ("blk_update_request: I/O error, dev xvda",)}, "logged I/O errors"),
    ({"next_status": "failed", "next_message": "boom"}, "next migration did not complete (failed: boom)"),
    ({"next_copies": ((A, "vm1", "running"),)}, "does not run on xen_resource_2 alone"),
]


@pytest.mark.parametrize(("change", "words"), LIES, ids=[w[:30] for _, w in LIES])
def test_each_lie_is_caught(change: dict[str, object], words: str) -> None:
    problems = judge_fault(dataclasses.replace(GOOD, **change))  # type: ignore[arg-type]
    assert any(words in p for p in problems), problems


def test_description_names_what_was_done_and_found() -> None:
    text = describe(dataclasses.replace(GOOD, cleanup=("destroyed vm1--incoming left on B",)))
    assert "done: nftables on xen_resource_2" in text
    assert "vm1 running on xen_resource_1" in text
    assert "clean-up: destroyed vm1--incoming" in text


def test_injection_fires_once_and_records_failures() -> None:
    calls = []
    ok = Injection(0.5, action=lambda: calls.append(1) or "cut")
    assert not ok.due(0.4) and ok.due(0.5)
    ok.fire(0.6)
    assert ok.done.startswith("cut (") and not ok.failed and ok.at_s == 0.6
    assert not ok.due(9.0) and calls == [1]

    def broken() -> str:
        raise OSError("nft: not found")

    bad = Injection(0.0, action=broken)
    bad.fire(0.1)
    assert bad.failed and "OSError: nft: not found" in bad.done
    cancel = Injection(0.0, cancel=True)
    cancel.fire(0.1)  # a driver that cannot cancel says so instead of pretending
    assert cancel.failed and "cannot cancel" in cancel.done
