"""Benchmark: the whole certification of the embedded Xen lab, one round trip, per phase.

Runs the suites as `make certify` does (kit cached first: `make setup`), reads the lab's
progress lines and results.json, and prints where the time goes. Asserts nothing.
    .venv/bin/python benchmarks/bench_xen.py [--inventory inventories/embedded-xen.yml]
Target (issue 6): whole certification with one round trip under 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).parents[1]
DONE = re.compile(r"^\[xenlab +[\d.]+s\] (?P<step>.+): done in (?P<secs>[\d.]+) s$")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default="inventories/embedded-xen.yml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xenlab-bench-") as tmp:
        results = Path(tmp) / "results.json"
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider", "-q",
             "--lab-inventory", args.inventory, "--lab-roundtrips", "1",
             "--lab-results", str(results), "--lab-report", "none"],
            cwd=REPO, capture_output=True, text=True)
        wall = time.monotonic() - start
        steps = [(m["step"], float(m["secs"])) for line in (proc.stdout + proc.stderr).splitlines()
                 if (m := DONE.match(line.strip()))]
        migrations = json.loads(results.read_text())["migrations"] if results.exists() else []
    print(f"embedded Xen lab certification ({args.inventory}), one round trip")
    print(f"{'phase':<62} {'seconds':>8}")
    for step, secs in steps:
        print(f"{step[:62]:<62} {secs:8.1f}")
    for m in migrations:
        hyp, net = m["hypervisor"], m.get("network") or {}
        print(f"{'migration ' + m['source'] + ' -> ' + m['destination']:<62} "
              f"{(hyp.get('total_time_ms') or 0) / 1000:8.1f}   {m['status']}, xl downtime "
              f"{(hyp.get('downtime_ms') or 0) / 1000:.1f} s, network downtime "
              f"{(net.get('downtime_ms') or 0) / 1000:.1f} s")
    print(f"{'whole certification (pytest wall time)':<62} {wall:8.1f}   target < 180 s, "
          f"exit {proc.returncode}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
