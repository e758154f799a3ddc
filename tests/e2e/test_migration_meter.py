"""The meter and the migration checks against the real embedded lab: calibration within
tolerance, a migration cut off mid-way reported as failed with the guest on one host, and
QEMU 7.2's TCG memory corruption caught where QEMU 10 passes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from labrun import REPO, leftovers, suites


def run(inventory: Path, root: Path, tmp: Path, suite: str, *args: str
        ) -> tuple[subprocess.CompletedProcess[str], dict]:  # type: ignore[type-arg]
    results = tmp / "results.json"
    argv = suites(inventory, root, "-rf", "--tb=line", "--lab-results", str(results), *args)
    argv[argv.index("suites")] = f"suites/{suite}"
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
    return done, json.loads(results.read_text()) if results.exists() else {}


def test_calibration_within_tolerance(lab_files: tuple[Path, Path, str], tmp_path: Path) -> None:
    inventory, root, name = lab_files
    done, results = run(inventory, root, tmp_path, "test_meter.py")
    assert done.returncode == 0, done.stdout[-3000:]
    points = results["calibration"]
    assert [round(p["injected_ms"] / 50) * 50 for p in points] == [50, 200, 1000]
    assert all(p["within"] and abs(p["error_ms"]) <= p["tolerance_ms"] + p["uncertainty_ms"]
               for p in points), points
    assert leftovers(name, root) == []


def test_migration_cut_is_a_failure_with_the_guest_on_one_host(
        lab_files: tuple[Path, Path, str], tmp_path: Path) -> None:
    inventory, root, name = lab_files
    short = tmp_path / "short.yml"
    short.write_text(inventory.read_text().replace("migration_timeout_s: 120",
                                                   "migration_timeout_s: 6"))
    done, results = run(short, root, tmp_path, "test_migration.py", "--lab-fault",
                        "migration-cut", "--lab-scenarios", "idle", "--lab-roundtrips", "1")
    assert done.returncode == 1, done.stdout[-3000:]
    first = results["migrations"][0]
    assert first["status"] == "timeout" and not first["passed"]
    assert "cancelled, vm1 stays on xen_resource_1" in first["hypervisor"]["error"]
    assert "vm1 runs on xen_resource_1, not only on xen_resource_2" in done.stdout
    assert first["continuity"] == []  # the guest carried on, untouched, where it was
    assert leftovers(name, root) == []


def test_a_failed_migration_says_why_and_what_follows_says_so(
        lab_files: tuple[Path, Path, str], tmp_path: Path) -> None:
    """Every config says twice the guest's memory: the destination's QEMU refuses the
    incoming state, its own reason is in the failure, and the step after it says in one line
    that it was not run because of it."""
    inventory, root, name = lab_files
    done, results = run(inventory, root, tmp_path, "test_migration.py", "--lab-fault",
                        "config-memory", "--lab-scenarios", "idle", "--lab-roundtrips", "1")
    assert done.returncode == 1, done.stdout[-3000:]
    first = results["migrations"][0]
    assert first["status"] == "failed" and not first["passed"]
    assert ("the destination's QEMU said: qemu-system-x86_64: Size mismatch: pc.ram: "
            "0x10000000 != 0x20000000") in first["hypervisor"]["error"], first
    assert (f"not run: vm1 is on xen_resource_1, not on xen_resource_2, before "
            f"idle-rt1-xen_resource_2->xen_resource_1: the migration {first['id']} failed"
            ) in done.stdout, done.stdout[-3000:]
    assert "assert 'xen_resource_1'" not in done.stdout  # no diff noise for a consequence
    assert leftovers(name, root) == []


def memory_run(lab_files: tuple[Path, Path, str], tmp: Path, qemu: str, roundtrips: int = 1
               ) -> tuple[subprocess.CompletedProcess[str], dict]:  # type: ignore[type-arg]
    inventory, root, _ = lab_files
    # a quiet TCP stream (1 line/s): each line's context switch flushes TCG's TLB, which
    # would hide the bug
    return run(inventory, root, tmp, "test_migration.py", "--lab-qemu", qemu,
               "--lab-memory-audit", "--lab-scenarios", "memory-dirty", "--lab-roundtrips",
               str(roundtrips),
               "--lab-tcp-interval", "1000")


def test_qemu_7_2_memory_corruption_is_caught(lab_files: tuple[Path, Path, str],
                                              tmp_path: Path) -> None:
    # the lost writes are a race: two round trips (four migrations) so one of them meets it
    done, results = memory_run(lab_files, tmp_path, "7.2", roundtrips=2)
    assert done.returncode == 1, done.stdout[-3000:]
    caught = [m for m in results["migrations"]
              if (m["hypervisor"].get("memory_audit") or {}).get("differing_count")]
    assert caught, results["migrations"]
    first = caught[0]
    assert first["status"] == "completed"  # QEMU itself says all is well ...
    assert first["hypervisor"]["memory_audit"]["differing_count"] > 0  # ... but memory differs
    assert any("guest pages different from the source's" in p for p in first["problems"])
    assert leftovers(lab_files[2], lab_files[1]) == []


def test_qemu_10_keeps_guest_memory(lab_files: tuple[Path, Path, str], tmp_path: Path) -> None:
    _done, results = memory_run(lab_files, tmp_path, "qemu-system-x86_64")
    migrations = results["migrations"]
    assert [m["status"] for m in migrations] == ["completed", "completed"], migrations
    assert all(m["hypervisor"]["memory_audit"]["differing_count"] == 0 for m in migrations)
    assert all(not any("memory" in p for p in m["problems"]) for m in migrations), migrations
    assert leftovers(lab_files[2], lab_files[1]) == []


def test_three_resource_hosts_matrix(lab_files: tuple[Path, Path, str], tmp_path: Path) -> None:
    """The embedded lab builds N resource hosts from its inventory; the matrix plan migrates
    over every ordered pair, each migration starting where the last one ended."""
    inventory, root, name = lab_files
    three = tmp_path / "three.yml"
    three.write_text(inventory.read_text().replace(
        "        xen_resource_2: {ansible_host: 198.18.0.12}\n",
        "        xen_resource_2: {ansible_host: 198.18.0.12}\n"
        "        xen_resource_3: {ansible_host: 198.18.0.13}\n"))
    done, results = run(three, root, tmp_path, "test_migration.py", "--lab-scenarios", "idle",
                        "--lab-roundtrips", "1", "--lab-pattern", "matrix")
    assert done.returncode == 0, done.stdout[-3000:]
    pairs = [(m["source"], m["destination"]) for m in results["migrations"]]
    hosts = ["xen_resource_1", "xen_resource_2", "xen_resource_3"]
    assert sorted(pairs) == sorted((a, b) for a in hosts for b in hosts if a != b)
    assert all(m["passed"] for m in results["migrations"])
    assert leftovers(name, root) == []
