"""The embedded QEMU lab with three guests (inventories/embedded-guests.yml) certified end to
end: every per-guest check once per guest, xen_resource_1 emptied two guests at a time, its
power pulled while all three answer and write to their disks, the host back and checked, the
guests returned, then the migration storm; results.json holds every guest's figures."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from labrun import REPO, down_if_left, leftovers, results_are_read_back, suites


@pytest.fixture
def guests_lab(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    if os.geteuid() != 0:
        pytest.skip("the embedded lab needs root")
    name = f"g{os.getpid() % 10000}"
    text = (REPO / "inventories/embedded-guests.yml").read_text()
    assert "lab: embedded-guests " in text
    inventory = tmp_path / "lab.yml"
    inventory.write_text(text.replace("lab: embedded-guests ", f"lab: {name} "))
    yield inventory, tmp_path / "labs", name
    down_if_left(name, tmp_path / "labs")


def test_three_guests_emptied_powered_off_returned_and_stormed(
        guests_lab: tuple[Path, Path, str], tmp_path: Path) -> None:
    inventory, root, name = guests_lab
    results = tmp_path / "out" / "results.json"
    run = subprocess.run(suites(inventory, root, "--lab-results", str(results),
                                "--lab-report", str(tmp_path / "out" / "report.html"), "-v"),
                         cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-5000:]
    for guest in ("vm1", "vm2", "vm3"):  # per-guest checks, once per guest
        assert f"test_passwd_and_shadow[{guest}] PASSED" in run.stdout
        assert f"test_config_parses[xen_resource_1-{guest}] PASSED" in run.stdout
    doc = json.loads(results.read_text())
    assert doc["schema"] == "xenlab-results/2" and doc["lab"]["guests"] == ["vm1", "vm2", "vm3"]
    window = doc["maintenance"][0]
    assert len(window["done"]) == 4 and window["failed"] == "" and window["at_a_time"] == 2
    assert sorted(m["guest"] for m in window["moves"]) == ["vm1", "vm2", "vm3"]
    said = [e["what"] for e in window["events"]]
    assert any("powered off: SIGKILL" in w for w in said)
    for guest in ("vm1", "vm2", "vm3"):
        assert any(w.startswith(f"{guest} answered ") for w in said), said
        assert f"{guest} back on xen_resource_1" in said
    moved = [m for m in doc["migrations"] if m["id"] in window["migrations"]]
    assert sorted((m["scenario"], m["guest"]) for m in moved) == sorted(
        (s, g) for s in ("evacuation", "return") for g in ("vm1", "vm2", "vm3"))
    assert {m["concurrency"] for m in moved} == {1, 2}  # two at a time, then the third
    for m in moved:  # each guest measured on its own, the hypervisor's figure beside it
        assert m["passed"] and m["network"]["received"] > 0 and m["hypervisor"]["downtime_ms"]
    storm = [m for m in doc["migrations"] if m["scenario"].startswith("storm-")]
    assert {m["concurrency"] for m in storm} == {1, 2, 3}
    assert all(m["status"] == "completed" and m["passed"] for m in storm)
    report = (tmp_path / "out" / "report.html").read_text()
    assert 'id="xenlab-storm-plot"' in report and 'id="xenlab-maintenance-plot"' in report
    results_are_read_back(results)
    assert leftovers(name, root) == []
