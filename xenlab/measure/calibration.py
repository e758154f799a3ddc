"""Calibration of the meter: outages of known length injected with nftables on the
observer-to-guest path, measured back by the prober, and the error of each."""

from __future__ import annotations

import itertools
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from xenlab.errors import CommandError, ParseError
from xenlab.hosts.runner import Runner
from xenlab.measure.ping import PingRun, Probe, longest_gap, timeline
from xenlab.measure.prober import Prober

SCRIPT = (Path(__file__).parent / "outage_script.py").read_text()
DEFAULT_OUTAGES_MS = (50.0, 200.0, 1000.0)


@dataclass(frozen=True)
class Injected:
    requested_ms: float
    start: float
    end: float
    uncertainty_ms: float

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000.0


@dataclass(frozen=True)
class CalibrationPoint:
    injected_ms: float
    measured_ms: float | None  # network downtime the meter saw: longest gap minus an interval
    uncertainty_ms: float  # of the injection's edges
    tolerance_ms: float
    disturbances: tuple[str, ...] = ()  # what the target or the prober did near the edges

    @property
    def error_ms(self) -> float | None:
        return None if self.measured_ms is None else self.measured_ms - self.injected_ms

    @property
    def within(self) -> bool:
        """The error within the tolerance, widened by the injection's own uncertainty (the
        reference is known no better than that)."""
        return (self.error_ms is not None
                and abs(self.error_ms) <= self.tolerance_ms + self.uncertainty_ms)

    def as_dict(self) -> dict[str, object]:
        return {"injected_ms": self.injected_ms, "measured_ms": self.measured_ms,
                "error_ms": self.error_ms, "uncertainty_ms": self.uncertainty_ms,
                "tolerance_ms": self.tolerance_ms, "within": self.within,
                "disturbances": list(self.disturbances)}


def tolerance_ms(interval_s: float) -> float:
    """The issue's bound: max(2 ms, 2 intervals)."""
    return max(2.0, 2 * interval_s * 1000.0)


def parse_injections(text: str) -> list[Injected]:
    try:
        data = json.loads(text)
        return [Injected(float(o["requested_s"]) * 1000.0, float(o["start"]), float(o["end"]),
                         float(o["uncertainty_s"]) * 1000.0) for o in data["outages"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ParseError("outage injector output", str(exc), text) from None


EDGE_S = 0.006  # how far from an outage's edges a disturbance still moves the edge seen
DELAYED_MS = 1.0  # a reply this much slower than the run's median was held up on the way


def edge_disturbances(probes: list[Probe], outage: Injected, interval_s: float,
                      median_rtt_ms: float) -> list[str]:
    """What, next to the outage's edges, moved the gap the meter saw, other than the
    outage (pure): a reply held up (the target or the path stalled), a probe lost although
    its reply was due outside the outage, or the prober sending nothing for more than two
    intervals. An edge seen that far off is the lab's doing, not the meter's."""
    found: list[str] = []
    slack = outage.uncertainty_ms / 1000.0 + interval_s / 2
    for name, edge in (("start", outage.start), ("end", outage.end)):
        near = [p for p in probes if abs(p.sent - edge) <= EDGE_S]
        for before, after in itertools.pairwise(near):
            if after.sent - before.sent > 2 * interval_s:
                found.append(f"the prober sent nothing for {(after.sent - before.sent) * 1000:.1f}"
                             f" ms at the {name}")
        for p in near:
            due = p.sent + median_rtt_ms / 1000.0
            at = f"{(p.sent - edge) * 1000:+.1f} ms from the {name}"
            if p.rtt_ms is not None and p.rtt_ms > median_rtt_ms + DELAYED_MS:
                found.append(f"reply {p.seq} held up {p.rtt_ms:.1f} ms (median "
                             f"{median_rtt_ms:.1f} ms), sent {at}")
            elif p.rtt_ms is None and (due < outage.start - slack or due > outage.end + slack):
                found.append(f"probe {p.seq} lost outside the outage, sent {at}")
    return found


def compare(run: PingRun, injected: list[Injected]) -> list[CalibrationPoint]:
    """Each injected outage against the longest reply gap around it (pure), with what
    disturbed its edges."""
    points = []
    probes = timeline(run)
    median = statistics.median(r.rtt_ms for r in run.replies) if run.replies else 0.0
    for outage in injected:
        margin = 0.1 + run.interval_s * 5
        gap = longest_gap(run, outage.start - margin, outage.end + margin)
        measured = max(0.0, gap.ms - run.interval_s * 1000.0) if gap else None
        points.append(CalibrationPoint(
            outage.ms, measured, outage.uncertainty_ms, tolerance_ms(run.interval_s),
            tuple(edge_disturbances(probes, outage, run.interval_s, median))))
    return points


def background_loss(run: PingRun, injected: list[Injected]) -> float:
    """Share of probes lost away from the injected outages (pure): a target that drops them
    on its own (an emulated guest starved of CPU) blurs the outages' edges, since a probe
    lost next to an edge lengthens the gap the meter sees."""
    margin = 0.1 + run.interval_s * 5
    away = [p for p in timeline(run)
            if not any(o.start - margin <= p.sent <= o.end + margin for o in injected)]
    return sum(p.rtt_ms is None for p in away) / len(away) if away else 0.0


def calibrate(observer: Runner, target: str, interval_s: float = 0.001,
              outages_ms: tuple[float, ...] = DEFAULT_OUTAGES_MS, gap_s: float = 0.4,
              python: str = "python3", tool: str = "xenlab", native: str | None = None
              ) -> tuple[list[CalibrationPoint], PingRun, float]:
    """Run the prober while the observer injects the outages; compare. Also returns the
    background loss (probes lost away from the outages)."""
    prober = Prober(observer, target, interval_s, python, tool, native)
    prober.start()
    try:
        result = observer.run([python, "-c", SCRIPT, target, str(gap_s),
                               *[str(ms / 1000.0) for ms in outages_ms]],
                              timeout=60 + sum(outages_ms) / 1000.0, check=False)
    finally:
        run = prober.stop()
    if result.rc != 0:
        raise CommandError(observer.host, "outage injector (nftables)", result.rc,
                           result.stdout, result.stderr)
    injected = parse_injections(result.stdout)
    return compare(run, injected), run, background_loss(run, injected)
