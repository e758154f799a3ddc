"""Benchmark: time from nothing to the first completed migration of the embedded lab, per phase.

Prints figures; asserts nothing. Run with caches warm (`make setup` first):
    .venv/bin/python benchmarks/bench_lab.py [--runs N] [--inventory FILE]
Target (issue 2): under 20 s from nothing to the first completed migration on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from xenlab.inventory import load_inventory
from xenlab.lab.embedded import EmbeddedLab
from xenlab.lab.guestkit import ensure_guest_kit
from xenlab.lab.state import LabState
from xenlab.progress import Progress

PHASES = ["network", "storage", "guest_ready", "vm_running", "first_migration", "teardown"]


def one_run(inventory_path: str, root: Path) -> dict[str, float]:
    inventory = load_inventory(inventory_path)
    lab = EmbeddedLab(inventory, progress=Progress(lambda line: None), root=root)
    times: dict[str, float] = {}
    try:
        for state in (LabState.NETWORK, LabState.STORAGE, LabState.GUEST_READY,
                      LabState.VM_RUNNING):
            start = time.monotonic()
            lab.transition(state)
            times[state.label] = time.monotonic() - start
        start = time.monotonic()
        result = lab.migrate(inventory.resources[1].name)
        times["first_migration"] = time.monotonic() - start
        if not result.completed:
            raise SystemExit(f"migration {result.status}: {result.error}")
        times["qemu_total_ms"] = result.total_time_ms or 0.0
        times["qemu_downtime_ms"] = result.downtime_ms or 0.0
    finally:
        start = time.monotonic()
        lab.down()
        times["teardown"] = time.monotonic() - start
    times["nothing_to_first_migration"] = sum(times[p] for p in PHASES[:5])
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--inventory", default="inventories/embedded.yml")
    args = parser.parse_args()
    ensure_guest_kit(Path("/var/cache/xenlab/guest"))  # warm cache: not part of the figure
    runs = []
    with tempfile.TemporaryDirectory(prefix="xenlab-bench-") as tmp:
        for i in range(args.runs):
            runs.append(one_run(args.inventory, Path(tmp)))
            print(f"run {i + 1}: nothing -> first migration "
                  f"{runs[-1]['nothing_to_first_migration']:.2f} s", flush=True)
    print(f"\n{'phase':<28}{'median':>10}{'min':>10}{'max':>10}")
    for key in [*PHASES, "nothing_to_first_migration", "qemu_total_ms", "qemu_downtime_ms"]:
        values = [r[key] for r in runs]
        unit = "" if key.endswith("_ms") else " s"
        print(f"{key:<28}{statistics.median(values):>10.2f}{min(values):>10.2f}"
              f"{max(values):>10.2f}{unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
