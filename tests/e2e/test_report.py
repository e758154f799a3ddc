"""The report a lab owner gets: made by a real certification, opened in headless Chromium with
no network; the summary table and the timeline images are there and decode."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from labrun import REPO, leftovers, suites

CHROMIUM = shutil.which("chromium")


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup)")
def test_report_renders_with_summary_and_timelines(lab_files: tuple[Path, Path, str],
                                                   tmp_path: Path) -> None:
    inventory, root, name = lab_files
    report = tmp_path / "report.html"
    argv = suites(inventory, root, "--lab-scenarios", "idle", "--lab-roundtrips", "1",
                  "--lab-report", str(report), "--lab-results", str(tmp_path / "results.json"))
    argv[argv.index("suites"):argv.index("suites") + 1] = ["suites/test_smoke.py",
                                                          "suites/test_meter.py",
                                                          "suites/test_migration.py"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    assert leftovers(name, root) == []
    html = report.read_text()
    assert "src=\"http" not in html and "<script src=" not in html  # self-contained
    dom = chromium("--dump-dom", f"file://{report}", profile=tmp_path / "profile").stdout
    assert 'id="xenlab-migrations"' in dom and "CERTIFIED" in dom
    assert "idle-rt1-xen_resource_1-&gt;xen_resource_2" in dom or "xen_resource_1-&gt;" in dom
    assert 'id="xenlab-calibration"' in dom and "worst error" in dom
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(images) >= 3  # the overview and one timeline per migration
    from matplotlib.image import imread

    for data in images:
        pixels = imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 200
        assert pixels.std() > 0.01  # not a blank image
    shot = tmp_path / "report.png"
    chromium("--window-size=1400,2000", f"--screenshot={shot}", f"file://{report}",
             profile=tmp_path / "profile")
    assert shot.stat().st_size > 10_000
    screenshot = imread(str(shot))
    assert screenshot.shape[:2] == (2000, 1400) and screenshot.std() > 0.01
