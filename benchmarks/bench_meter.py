"""Benchmark the meter on the embedded lab (prints figures; asserts nothing):

- calibration error at 1 ms and 10 ms probe intervals (outages of 50, 200, 1000 ms);
- the prober's CPU use at 1 kHz, C and Python builds (target: under 5 % of a core);
- the whole certification (`pytest suites`, 3 round trips, both scenarios), wall time
  (target: under 45 s on this 2-core machine, caches warm).

    .venv/bin/python benchmarks/bench_meter.py [--skip-certification]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xenlab.inventory import load_inventory
from xenlab.lab.embedded import EmbeddedLab
from xenlab.measure.calibration import calibrate
from xenlab.measure.prober import Prober
from xenlab.progress import Progress

REPO = Path(__file__).parents[1]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def prober_cpu(lab: EmbeddedLab, native: str | None, seconds: float = 10.0) -> None:
    """CPU share of one core used by the prober process on the observer at 1 kHz. System
    time includes the lab network's own path for each packet, run in the sender's context."""
    inv = lab.inventory
    prober = Prober(lab.runner(inv.observer), str(inv.guest.address), 0.001, sys.executable,
                    native=native)
    prober.start()
    time.sleep(0.5)
    assert prober.remote_pid is not None
    (u0, s0), t0 = cpu_seconds(prober.remote_pid), time.monotonic()
    time.sleep(seconds)
    (u1, s1), t1 = cpu_seconds(prober.remote_pid), time.monotonic()
    run = prober.stop()
    span = t1 - t0
    print(f"prober ({'C' if native else 'Python'}) at 1 kHz: user {100 * (u1 - u0) / span:.1f} %"
          f" + system {100 * (s1 - s0) / span:.1f} % of a core over {span:.1f} s "
          f"({len(run.replies)} replies)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="calibration runs per interval")
    parser.add_argument("--skip-certification", action="store_true")
    args = parser.parse_args()
    inventory = load_inventory(REPO / "inventories/embedded.yml")
    with tempfile.TemporaryDirectory(prefix="xenlab-bench-") as tmp:
        lab = EmbeddedLab(inventory, progress=Progress(lambda line: None), root=Path(tmp))
        lab.up()
        try:
            for interval in (0.001, 0.010):
                errors: dict[int, list[float]] = {}
                for _ in range(args.runs):
                    points, _run, _loss = calibrate(lab.runner(inventory.observer),
                                             str(inventory.guest.address), interval,
                                             python=sys.executable, native=lab.probe_binary)
                    for p in points:
                        errors.setdefault(round(p.injected_ms / 50) * 50, []).append(
                            p.error_ms if p.error_ms is not None else float("nan"))
                for injected, values in sorted(errors.items()):
                    print(f"calibration at {interval * 1000:g} ms, outage {injected} ms: error "
                          f"median {statistics.median(values):+.2f} ms, worst "
                          f"{max(values, key=abs):+.2f} ms over {len(values)} runs "
                          f"(tolerance ±{max(2.0, 2 * interval * 1000):g} ms)")
            prober_cpu(lab, lab.probe_binary)
            prober_cpu(lab, None)
        finally:
            lab.down()
    if not args.skip_certification:
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", "suites", "-q", "-p",
                               "no:cacheprovider", "--lab-inventory", "inventories/embedded.yml",
                               "--lab-results", "/tmp/bench-results.json"],
                              cwd=REPO, capture_output=True, text=True)
        last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        print(f"whole certification (3 round trips x idle, memory-dirty): "
              f"{time.monotonic() - start:.1f} s wall, {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
