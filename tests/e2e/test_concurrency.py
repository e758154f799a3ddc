"""Two embedded labs on one machine at once: different lab names do not interfere (each has
its own namespaces, addresses, ports, files and sockets), and a third run that reuses a
running lab's name, even under another lab root, refuses with one clear message."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from labrun import REPO, leftovers, suites, wait_for_line


def inventory_named(tmp: Path, name: str) -> Path:
    """The embedded lab under another name; limits loosened, since two emulated guests and
    their meters share two cores here: this test judges isolation, not figures."""
    path = tmp / f"{name}.yml"
    text = (REPO / "inventories/embedded.yml").read_text().replace("lab: embedded", f"lab: {name}")
    loose = text.replace("downtime_ms: 1000, loss_pct: 5", "downtime_ms: 20000, loss_pct: 80")
    assert loose != text, "the embedded inventory's limits changed: update this test"
    path.write_text(loose)
    return path


def test_two_labs_at_once_and_a_name_clash_refused(tmp_path: Path) -> None:
    names = [f"c{os.getpid() % 10000}a", f"c{os.getpid() % 10000}b"]
    root = tmp_path / "labs"
    runs = {}
    for name in names:
        argv = suites(inventory_named(tmp_path, name), root, "-k", "smoke or live_migration",
                      "--lab-scenarios", "idle", "--lab-roundtrips", "1",
                      "--lab-results", str(tmp_path / f"{name}.json"),
                      "--lab-report", str(tmp_path / f"{name}.html"),
                      "--junitxml", str(tmp_path / f"{name}.xml"))
        runs[name] = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
    try:
        seen = wait_for_line(runs[names[0]], "lab vm_running: done", timeout=300)
        clash = subprocess.run(suites(inventory_named(tmp_path, names[0]), tmp_path / "other",
                                      "-k", "smoke"), cwd=REPO, capture_output=True, text=True,
                               timeout=300)
        outputs = {name: proc.communicate(timeout=900)[0] for name, proc in runs.items()}
        outputs[names[0]] = "".join(seen) + outputs[names[0]]
    finally:
        for proc in runs.values():
            if proc.poll() is None:
                proc.kill()
    assert clash.returncode != 0
    assert (f"lab '{names[0]}' is in use on this machine by the run with PID "
            f"{runs[names[0]].pid} (lab root {root})") in clash.stdout, clash.stdout[-2000:]
    assert "lab network" not in clash.stdout  # refused before touching anything
    for name, proc in runs.items():
        assert proc.returncode == 0, outputs[name][-3000:]
        results = json.loads((tmp_path / f"{name}.json").read_text())
        assert results["lab"]["name"] == name
        assert [m["status"] for m in results["migrations"]] == ["completed", "completed"]
        assert all(m["network"]["received"] > 0 for m in results["migrations"])
        assert leftovers(name, root) == []
    assert not Path(f"/run/xenlab-locks/{names[0]}.lock").exists()
