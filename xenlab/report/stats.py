"""The report's figures over repeats (pure): per scenario and direction, n, median, p95 and
max of each downtime; each migration's downtime split into the hypervisor's pause and the
network's reconvergence after it; and the plausibility of each figure against the smallest
pause the transfer allows."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from xenlab.measure.results import MigrationRecord

# (name, record section, key): the figures summarised over repeats
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("network downtime", "network", "downtime_ms"),
    ("hypervisor downtime", "hypervisor", "downtime_ms"),
    ("total time", "hypervisor", "total_time_ms"),
    ("TCP stall", "tcp", "longest_stall_ms"),
)
BELOW_BOUND_FACTOR = 0.5  # the final round may run faster than the migration's mean rate
FAR_ABOVE_FACTOR = 10.0  # ... and a pause this many times the bound, plus
FAR_ABOVE_SLACK_MS = 100.0  # this much, is worth a look


@dataclass(frozen=True)
class Summary:
    n: int
    median: float | None
    p95: float | None
    max: float | None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least q % at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        return Summary(0, None, None, None)
    ordered = sorted(values)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return Summary(len(ordered), median, percentile(ordered, 95), ordered[-1])


def figure(record: MigrationRecord, section: str, key: str) -> float | None:
    value = (getattr(record, section) or {}).get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Group:
    """The completed migrations of one scenario in one direction."""

    scenario: str
    direction: str
    values: dict[str, list[float]]  # figure name -> every value, in run order

    def summary(self, name: str) -> Summary:
        return summarize(self.values.get(name, []))


def groups(migrations: Iterable[MigrationRecord]) -> list[Group]:
    """One group per (scenario, direction), in the order first seen; failed migrations are
    not in them (their figures time a failure, not a downtime)."""
    found: dict[tuple[str, str], dict[str, list[float]]] = {}
    for m in migrations:
        if m.status != "completed":
            continue
        values = found.setdefault((m.scenario, m.direction), {name: [] for name, _, _ in FIGURES})
        for name, section, key in FIGURES:
            v = figure(m, section, key)
            if v is not None:
                values[name].append(v)
    return [Group(s, d, v) for (s, d), v in found.items()]


@dataclass(frozen=True)
class Split:
    """A migration's downtime as two parts: the guest's pause as the hypervisor reports it,
    and the network's extra time to answer again after the guest resumed."""

    id: str
    network_ms: float
    pause_ms: float
    reconverge_ms: float  # the meter's gap minus the pause (0 where the gap was shorter)
    shorter_ms: float  # how much shorter than the pause the gap was (0: not shorter)


def split(record: MigrationRecord) -> Split | None:
    network = figure(record, "network", "downtime_ms")
    pause = figure(record, "hypervisor", "downtime_ms")
    if network is None or pause is None or record.status != "completed":
        return None
    return Split(record.id, network, pause, max(0.0, network - pause), max(0.0, pause - network))


@dataclass(frozen=True)
class Plausibility:
    id: str
    bound_ms: float | None  # the transfer's lower bound on the pause (None: not reported)
    flags: tuple[str, ...]  # what is implausible or worth a look (empty: nothing)


def plausibility(record: MigrationRecord, interval_ms: float = 1.0) -> Plausibility:
    """Each figure against what the transfer allows: a pause shorter than the remaining dirty
    bytes take at the measured rate (with BELOW_BOUND_FACTOR of slack) is a measurement
    error; a network gap shorter than the hypervisor's pause (by more than two probes) is one
    too, since the guest answers nothing while paused; far above the bound is worth a look."""
    hv = record.hypervisor
    bound = figure(record, "hypervisor", "transfer_bound_ms")
    if bound is None and hv.get("switchover_bytes") is not None and hv.get("bandwidth_mbps"):
        bound = float(hv["switchover_bytes"]) * 8 / (float(hv["bandwidth_mbps"]) * 1e6) * 1000.0
    flags = []
    network = figure(record, "network", "downtime_ms")
    pause = figure(record, "hypervisor", "downtime_ms")
    if record.status != "completed":
        return Plausibility(record.id, bound, ())
    if bound is not None:
        for name, value in (("hypervisor downtime", pause), ("network downtime", network)):
            if value is not None and value < bound * BELOW_BOUND_FACTOR - interval_ms:
                flags.append(f"{name} {value:.1f} ms is below the transfer's bound of "
                             f"{bound:.1f} ms: a measurement error")
        if network is not None and network > bound * FAR_ABOVE_FACTOR + FAR_ABOVE_SLACK_MS:
            flags.append(f"network downtime {network:.1f} ms is far above the transfer's bound "
                         f"of {bound:.1f} ms: worth a look")
    if network is not None and pause is not None and network < pause - 2 * interval_ms:
        flags.append(f"the meter's gap ({network:.1f} ms) is shorter than the hypervisor's "
                     f"pause ({pause:.1f} ms): one of the two is wrong")
    return Plausibility(record.id, bound, tuple(flags))
