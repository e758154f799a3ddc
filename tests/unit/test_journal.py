"""The lab journal and the reaper, on real namespaces and real processes (root only)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xenlab.errors import LabBusyError
from xenlab.lab import journal as jr

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")


def test_journal_round_trip(tmp_path: Path) -> None:
    journal = jr.Journal.create("unit", tmp_path / "unit")
    journal.add_namespace("xenlab-unit--a")
    journal.add_process(os.getpid(), "controller", "me")
    again = jr.Journal.read(tmp_path / "unit")
    assert again is not None and again.namespaces == ["xenlab-unit--a"]
    assert again.processes[0].pid == os.getpid() and again.processes[0].alive()
    assert jr.Journal.read(tmp_path / "nothing") is None


def test_process_start_tells_a_recycled_pid() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    start = jr.process_start(proc.pid)
    assert start is not None and start > 0
    jr.stop_process(proc.pid, start + 1)  # a different start time: not ours, left alone
    assert proc.poll() is None
    jr.stop_process(proc.pid, start)
    assert proc.wait(timeout=5) is not None
    assert jr.process_start(proc.pid) is None


@needs_root
def test_reap_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    """A dead owner: its namespace, the process inside it and its directory all go."""
    ns = "xenlab-unitreap--h1"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        sleeper = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "60"],
                                   start_new_session=True)
        time.sleep(0.1)
        owner = subprocess.Popen(["true"])
        owner.wait()
        journal = jr.Journal.create("unitreap", tmp_path / "unitreap")
        journal.owner_pid, journal.owner_start = owner.pid, 1  # a run that is gone
        journal.add_namespace(ns)
        journal.save()
        removed = jr.reap("unitreap", tmp_path)
        assert f"namespace {ns}" in removed
        assert any(item.startswith(f"process {sleeper.pid}") for item in removed)
        assert sleeper.wait(timeout=5) is not None
        assert ns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                        text=True).stdout
        assert not (tmp_path / "unitreap").exists()
    finally:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


@needs_root
def test_reap_refuses_a_lab_whose_run_is_alive(tmp_path: Path) -> None:
    owner = subprocess.Popen(["sleep", "30"])
    try:
        journal = jr.Journal.create("unitbusy", tmp_path / "unitbusy")
        journal.owner_pid = owner.pid
        journal.owner_start = jr.process_start(owner.pid) or 0
        journal.save()
        with pytest.raises(LabBusyError, match=f"PID {owner.pid}"):
            jr.reap("unitbusy", tmp_path)
        assert (tmp_path / "unitbusy").exists()
        assert jr.reap("unitbusy", tmp_path, force=True)
    finally:
        owner.kill()
        owner.wait()


HOLD = """
import sys, time
from pathlib import Path
from xenlab.lab import journal as jr
jr.LOCK_ROOT = Path(sys.argv[1])
jr.NameLock("twin").acquire(Path("/elsewhere"))
print("held", flush=True)
time.sleep(60)
"""


def test_a_lab_name_is_held_machine_wide_until_its_run_ends(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jr, "LOCK_ROOT", tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lock = jr.NameLock("twin")
        with pytest.raises(LabBusyError, match=f"PID {holder.pid} \\(lab root /elsewhere\\)"):
            lock.acquire(tmp_path / "labs")  # another root: the name is what collides
        assert f"PID {holder.pid}" in (jr.NameLock("twin").held_elsewhere() or "")
        jr.NameLock("other").acquire(tmp_path)  # another name is free
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock, nothing to clean by hand
        holder.wait()
    assert jr.NameLock("twin").held_elsewhere() is None
    lock.acquire(tmp_path / "labs")
    lock.release()
    assert not (tmp_path / "twin.lock").exists()
    # a kept lab's run ended without releasing (the kernel dropped the lock, the file
    # stayed): `xenlab lab down` removes it with the lab
    (tmp_path / "kept.lock").write_text("the run with PID 1 (lab root /x)\n")
    jr.NameLock("kept").remove_if_free()
    assert not (tmp_path / "kept.lock").exists()
