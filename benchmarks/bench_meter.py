"""Benchmark the meter on the embedded lab (prints figures; asserts nothing):

- calibration error at 1 ms and 10 ms probe intervals (outages of 50, 200, 1000 ms);
- the prober's CPU use at 1 kHz (target: under 5 % of a core);
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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prober_cpu(lab: EmbeddedLab, seconds: float = 10.0) -> float:
    """CPU share of one core used by the prober process on the observer at 1 kHz."""
    inv = lab.inventory
    prober = Prober(lab.runner(inv.observer), str(inv.guest.address), 0.001, sys.executable)
    prober.start()
    time.sleep(0.5)
    assert prober.remote_pid is not None
    c0, t0 = cpu_seconds(prober.remote_pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(prober.remote_pid), time.monotonic()
    run = prober.stop()
    print(f"prober at 1 kHz: {100 * (c1 - c0) / (t1 - t0):.1f} % of a core over {t1 - t0:.1f} s "
          f"({len(run.replies)} replies)")
    return 100 * (c1 - c0) / (t1 - t0)


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
                    points, _run = calibrate(lab.runner(inventory.observer),
                                             str(inventory.guest.address), interval,
                                             python=sys.executable)
                    for p in points:
                        errors.setdefault(round(p.injected_ms / 50) * 50, []).append(
                            p.error_ms if p.error_ms is not None else float("nan"))
                for injected, values in sorted(errors.items()):
                    print(f"calibration at {interval * 1000:g} ms, outage {injected} ms: error "
                          f"median {statistics.median(values):+.2f} ms, worst "
                          f"{max(values, key=abs):+.2f} ms over {len(values)} runs "
                          f"(tolerance ±{max(2.0, 2 * interval * 1000):g} ms)")
            prober_cpu(lab)
        finally:
            lab.down()
    if not args.skip_certification:
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", "suites", "-q", "-p",
                               "no:cacheprovider", "--lab-results", "/tmp/bench-results.json"],
                              cwd=REPO, capture_output=True, text=True)
        last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        print(f"whole certification (3 round trips x idle, memory-dirty): "
              f"{time.monotonic() - start:.1f} s wall, {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
