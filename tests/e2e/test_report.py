"""The report a lab owner gets: made by a real certification, opened in headless Chromium with
no network; the summary table and the timeline images are there and decode."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

from labrun import REPO, leftovers, suites

REPORT_BUDGET = 2 * 1024 * 1024  # one certification of the QEMU lab, 12 migrations


def test_a_full_certification_writes_the_four_files_and_a_report_read_at_a_glance(
        lab_files: tuple[Path, Path, str], tmp_path: Path) -> None:
    """`make certify INVENTORY=inventories/embedded.yml` as it runs (every suite, 12
    migrations): report.html, certificate.pdf, results.json and junit.xml beside each other;
    the page within budget, read in Chromium at two widths; the certificate one page."""
    from tests.pagecheck import CHROMIUM, pdf_pages, pdf_text, view

    assert CHROMIUM is not None, "chromium is not installed: `make setup` installs it"
    inventory, root, name = lab_files
    out = tmp_path / "reports"
    report = out / "report.html"
    argv = suites(inventory, root, "--lab-report", str(report),
                  "--lab-results", str(out / "results.json"))
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:]
    assert leftovers(name, root) == []
    assert {p.name for p in out.iterdir()} >= {"report.html", "certificate.pdf",
                                               "results.json", "junit.xml"}
    results = json.loads((out / "results.json").read_text())
    planned = [m for m in results["migrations"] if m["scenario"] in ("idle", "memory-dirty")]
    assert len(planned) == 12 and results["run"]["verdict"]["certified"]
    # the maintenance window, power pull included (this lab kills its host's processes)
    window = results["maintenance"][0]
    assert window["failed"] == "" and len(window["done"]) == 4, window
    assert any("powered off: SIGKILL to" in e["what"] for e in window["events"]), window
    assert any("powered on: switch port" in e["what"] for e in window["events"]), window
    html = report.read_text()
    assert "src=\"http" not in html and "<script src=" not in html  # self-contained
    size = report.stat().st_size
    print(f"report.html: {size / 1024:.0f} KiB for {len(results['migrations'])} migrations")
    assert size < REPORT_BUDGET, f"report.html is {size} bytes, over {REPORT_BUDGET}"
    assert "CERTIFIED" in html and 'id="xenlab-calibration"' in html
    # QEMU reports what it sent paused and its rate: every migration has its bound
    assert all(m["hypervisor"]["transfer_bound_ms"] is not None for m in results["migrations"])
    for page in view(report, tmp_path):
        assert all(page.visible.values()), (page.width, page.visible)
        assert page.broken_images == [] and page.images >= 12 + 4 + 2
        assert page.overflow_px == 0, f"{page.width} px: the page scrolls sideways"
        assert not page.blank
    pdf = out / "certificate.pdf"
    assert pdf_pages(pdf) == 1
    text = pdf_text(pdf)
    assert "CERTIFIED" in text and name in text and "memory-dirty" in text
    assert hashlib.sha256((out / "results.json").read_bytes()).hexdigest() in text
    assert re.search(r"worst error \d+\.\d\d ms", text), text
