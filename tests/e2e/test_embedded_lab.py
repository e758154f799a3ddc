"""End to end: the embedded lab built for real, migrated, and gone afterwards — also after
Ctrl-C during the build and after a `kill -9` of pytest (the next run reaps it)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labrun import REPO, leftovers, suites, wait_for_line


def test_build_migrate_twice_and_leave_nothing(lab_files: tuple[Path, Path, str]) -> None:
    inventory, root, name = lab_files
    result = subprocess.run(suites(inventory, root, "-v", "--lab-scenarios", "idle",
                                   "--lab-roundtrips", "1"), cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-2000:]
    assert "test_live_migration[idle-rt1-xen_resource_1->xen_resource_2] PASSED" in out
    assert "test_live_migration[idle-rt1-xen_resource_2->xen_resource_1] PASSED" in out
    for step in ("lab network: done", "lab storage: done", "lab guest_ready: done",
                 "lab vm_running: done", "lab teardown: done"):
        assert step in out, f"no progress line {step!r}"
    assert leftovers(name, root) == []


@pytest.mark.parametrize("moment", ["lab storage ...", "lab vm_running ..."])
def test_ctrl_c_during_the_build_leaves_nothing(lab_files: tuple[Path, Path, str],
                                                moment: str) -> None:
    inventory, root, name = lab_files
    proc = subprocess.Popen(suites(inventory, root), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_line(proc, moment)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "lab teardown: done" in out, out[-2000:]
    assert leftovers(name, root) == []


def test_kill_9_is_reaped_by_the_next_run(lab_files: tuple[Path, Path, str]) -> None:
    inventory, root, name = lab_files
    proc = subprocess.Popen(suites(inventory, root), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_line(proc, "lab vm_running: done")
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = leftovers(name, root)
    assert any(item.startswith("namespace") for item in left), left
    assert any("qemu" in item for item in left), left  # the killed run really left a lab
    result = subprocess.run(suites(inventory, root, "-k", "every_host"), cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"reaped a stale lab '{name}'" in result.stdout
    assert leftovers(name, root) == []


def test_kept_lab_is_torn_down_by_the_command(lab_files: tuple[Path, Path, str]) -> None:
    inventory, root, name = lab_files
    result = subprocess.run(suites(inventory, root, "-k", "every_host", "--lab-keep"), cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"xenlab lab down --lab {name}" in result.stdout
    assert any(item.startswith("namespace") for item in leftovers(name, root))
    listing = subprocess.run([sys.executable, "-m", "xenlab.cli", "lab", "list", "--root",
                              str(root)], capture_output=True, text=True, check=True).stdout
    assert f"{name}: kept" in listing
    # a kept lab is not rebuilt by the next run of its name: that run refuses and says how
    again = subprocess.run(suites(inventory, root, "-k", "every_host"), cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "was kept up by an earlier run" in again.stdout, \
        again.stdout[-3000:]
    assert f"xenlab lab down --lab {name}" in again.stdout
    # --dry-run lists the lab's own things and removes none of them
    dry = subprocess.run([sys.executable, "-m", "xenlab.cli", "lab", "down", "--lab", name,
                          "--root", str(root), "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 0 and f"would remove namespace xenlab-{name}--switch" in dry.stdout
    assert f"would remove directory {root.resolve() / name}" in dry.stdout, dry.stdout
    assert any(item.startswith("namespace") for item in leftovers(name, root))
    down = subprocess.run([sys.executable, "-m", "xenlab.cli", "lab", "down", "--lab", name,
                           "--root", str(root)], capture_output=True, text=True)
    assert down.returncode == 0 and f"removed namespace xenlab-{name}--switch" in down.stdout
    assert leftovers(name, root) == []


def test_failed_check_keeps_the_logs_and_still_cleans_up(
        lab_files: tuple[Path, Path, str]) -> None:
    inventory, root, name = lab_files
    argv = suites(inventory, root)
    argv[argv.index("suites")] = "tests/data/suites/failing_check.py"
    logs = REPO / "reports" / "lab-logs" / name
    try:
        result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert result.returncode == 1, result.stdout[-3000:]
        assert "deliberate failure" in result.stdout
        assert f"lab logs saved in {logs}" in result.stdout
        console = (logs / "xen_resource_1-vm1.console").read_text()
        assert "EXT4-fs (vda): mounted filesystem" in console  # the guest's root, the LV
        assert (logs / "lab.json").exists() and (logs / "xen_storage-vblade.log").exists()
        assert leftovers(name, root) == []
    finally:
        import shutil

        shutil.rmtree(logs, ignore_errors=True)
