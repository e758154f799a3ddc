"""The fault suite end to end on the embedded (QEMU) lab: each fault is survived and reported,
and the suite fails when the harness lies (--lab-fault-selftest), so a pass means something.
The Xen profile's run (with the storage outage) is in test_embedded_xen.py."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from labrun import REPO, leftovers, suites

SCENARIOS = ["link-cut", "destination-killed", "cancel"]


def run_faults(inventory: Path, root: Path, tmp: Path, *args: str) -> tuple[
        subprocess.CompletedProcess[str], dict[str, object]]:
    results = tmp / "results.json"
    done = subprocess.run(suites(inventory, root, "-k", "test_faults", "--lab-results",
                                 str(results), "--lab-report", str(tmp / "r.html"), "-rfs",
                                 *args), cwd=REPO, capture_output=True, text=True, timeout=900)
    return done, (json.loads(results.read_text()) if results.exists() else {})


def test_faults_survived_and_reported(lab_files: tuple[Path, Path, str], tmp_path: Path) -> None:
    inventory, root, name = lab_files
    done, results = run_faults(inventory, root, tmp_path, "--lab-fault-suite")
    assert done.returncode == 0, done.stdout[-4000:]
    assert "3 passed, 1 skipped" in done.stdout, done.stdout[-2000:]
    assert "needs a guest disk that goes through AoE" in done.stdout  # storage outage
    faults = {f["fault"]: f for f in results["faults"]}  # type: ignore[union-attr]
    assert sorted(faults) == sorted(SCENARIOS)
    assert faults["link-cut"]["status"] == "timeout"
    assert "drops tcp port 8002" in faults["link-cut"]["injected"]
    assert faults["destination-killed"]["status"] == "failed"
    assert faults["destination-killed"]["injected"].startswith("SIGKILL to QEMU (pid ")
    assert faults["cancel"]["status"] == "cancelled"
    for fault in faults.values():
        assert fault["problems"] == [] and fault["message"], fault
        assert fault["written"] == fault["read_back"] and len(fault["written"]) == 64
        assert fault["next_status"] == "completed"
    assert leftovers(name, root) == []


LIES = [
    ("no-injection", "reports 'completed' although the fault was set off"),
    ("duplicate-guest", "it must run on exactly one host"),
    ("corrupt-data", "the data written before the fault reads back different"),
]


@pytest.mark.parametrize(("lie", "words"), LIES, ids=[lie for lie, _ in LIES])
def test_the_suite_fails_when_the_harness_lies(lab_files: tuple[Path, Path, str], tmp_path: Path,
                                               lie: str, words: str) -> None:
    inventory, root, name = lab_files
    done, results = run_faults(inventory, root, tmp_path, "--lab-fault-selftest", lie)
    assert done.returncode == 1, done.stdout[-4000:]
    failed = sorted(re.findall(r"^FAILED suites/test_faults.py::\S+\[(\S+)\]", done.stdout,
                               re.MULTILINE))
    assert failed == sorted(SCENARIOS), done.stdout[-3000:]
    for fault in results["faults"]:  # type: ignore[union-attr]
        assert any(words in p for p in fault["problems"]), fault["problems"]
    assert leftovers(name, root) == []
