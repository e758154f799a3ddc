"""Plots for the report (matplotlib, PNG bytes), in one style: a migration's timeline, the
distributions over repeats, the downtime split, the meter's calibration, trends."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

NETWORK, HYPERVISOR, RECONVERGE, BASELINE, LIMIT = "#1f77b4", "#ff7f0e", "#9ecae1", "#9e9e9e", "#d62728"
STYLE: dict[str, Any] = {"font.size": 8, "axes.titlesize": 9, "axes.grid": True, "grid.alpha": 0.3,
         "axes.spines.top": False, "axes.spines.right": False, "legend.fontsize": 7}
plt.rcParams.update(STYLE)  # type: ignore[arg-type]


def _png(fig: Any, dpi: int = 90) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def timeline_png(timeline: dict[str, Any], title: str, gap: tuple[float, float] | None = None,
                 hv_downtime_ms: float | None = None, size: tuple[float, float] = (9, 3.2),
                 dpi: int = 90) -> bytes:
    """RTT of every probe over time, lost probes marked, the migration's span and the
    longest gap shaded. `timeline` is the JSON written per migration (times in ms from t0);
    `gap` is the longest reply gap in the same time base."""
    probes = timeline["probes"]
    ok = [(p[1] / 1000.0, p[2]) for p in probes if p[2] is not None]
    lost = [p[1] / 1000.0 for p in probes if p[2] is None]
    fig, ax = plt.subplots(figsize=size)
    if ok:
        ax.plot([t for t, _ in ok], [r for _, r in ok], ".", markersize=2, color="#1f77b4",
                label="RTT of a probe")
    top = max([r for _, r in ok] + [1.0])
    if lost:
        ax.plot(lost, [top * 1.05] * len(lost), "|", color="#d62728", markersize=8,
                label=f"lost ({len(lost)})")
    start, end = (t / 1000.0 for t in timeline["migration_ms"])
    ax.axvline(start, color="#2ca02c", linestyle="--", label="migration start")
    ax.axvline(end, color="#9467bd", linestyle="--", label="migration end")
    if gap:
        ax.axvspan(gap[0] / 1000.0, gap[1] / 1000.0, color="#ff7f0e", alpha=0.3,
                   label=f"longest gap {gap[1] - gap[0]:.0f} ms")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RTT (ms)")
    title += f" (hypervisor downtime {hv_downtime_ms:.0f} ms)" if hv_downtime_ms is not None else ""
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6 if size[0] < 6 else 7, loc="upper left")
    return _png(fig, dpi)


def distribution_png(rows: Sequence[str], name: str, values: Sequence[Sequence[float]],
                     baseline: Sequence[Sequence[float]] | None = None,
                     limit: float | None = None) -> bytes:
    """A strip plot of one figure: every value of every (scenario, direction) row shown, its
    median as a bar; the baseline's values beside in grey. values[r] are row r's values."""
    height = 0.42 * len(rows) * (2 if baseline else 1) + 1.0
    fig, ax = plt.subplots(figsize=(4.6, height))
    series = [(values, 0.0, NETWORK if name.startswith("network") else HYPERVISOR, "this run")]
    if baseline:
        series.append((baseline, 0.35, BASELINE, "baseline"))
    for data, offset, colour, label in series:
        for r, points in enumerate(data):
            if not points:
                continue
            ys = [r + offset + 0.12 * ((i % 5) - 2) / 2 for i in range(len(points))]
            ax.plot(points, ys, "o", markersize=3.5, alpha=0.75, color=colour,
                    label=label if r == 0 else None)
            mid = sorted(points)[len(points) // 2]
            ax.plot([mid, mid], [r + offset - 0.18, r + offset + 0.18], "-", color="black",
                    linewidth=1.5)
    if limit is not None and any(p > limit * 0.5 for d in values for p in d):
        ax.axvline(limit, color=LIMIT, linestyle="--", linewidth=1, label=f"limit {limit:g}")
    ax.set_title(f"{name} (ms): every run, median |")
    ax.set_xlim(left=0)
    ax.set_yticks(list(range(len(rows))))
    ax.set_yticklabels(rows)
    ax.invert_yaxis()
    if baseline or limit is not None:
        ax.legend(loc="lower right")
    return _png(fig)


def split_png(labels: Sequence[str], pause: Sequence[float], reconverge: Sequence[float],
              bounds: Sequence[float | None], limit_ms: float | None = None) -> bytes:
    """Each migration's downtime as the hypervisor's pause plus the network's time to answer
    again after it; the transfer's lower bound marked where the hypervisor reports it."""
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(labels) + 1.2))
    ys = list(range(len(labels)))
    ax.barh(ys, pause, color=HYPERVISOR, label="pause (hypervisor)")
    ax.barh(ys, reconverge, left=pause, color=RECONVERGE,
            label="network reconvergence (meter gap − pause)")
    marked = [(y, b) for y, b in zip(ys, bounds, strict=True) if b is not None]
    if marked:
        ax.plot([b for _, b in marked], [y for y, _ in marked], "|", color="black",
                markersize=12, label="transfer bound")
    total = [p + r for p, r in zip(pause, reconverge, strict=True)]
    if limit_ms is not None and max([*total, 0]) > limit_ms * 0.5:
        ax.axvline(limit_ms, color=LIMIT, linestyle="--", label=f"limit {limit_ms:.0f} ms")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("downtime (ms)")
    ax.legend(loc="lower right")
    return _png(fig)


def calibration_png(injected: Sequence[float], measured: Sequence[float | None],
                    uncertainty: Sequence[float | None]) -> bytes:
    """The meter against outages of known length: measured over injected, y = x drawn."""
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    top = max(list(injected) + [m or 0 for m in measured] + [1.0]) * 1.1
    ax.plot([0, top], [0, top], "-", color=BASELINE, linewidth=1, label="measured = injected")
    points = [(i, m, u or 0.0) for i, m, u in zip(injected, measured, uncertainty, strict=True)
              if m is not None]
    ax.errorbar([p[0] for p in points], [p[1] for p in points], xerr=[p[2] for p in points],
                fmt="o", color=NETWORK, markersize=4, label="meter")
    ax.set_xlabel("injected outage (ms)")
    ax.set_ylabel("measured downtime (ms)")
    ax.set_title("meter calibration")
    ax.legend(loc="upper left")
    return _png(fig)


def downtime_overview_png(labels: Sequence[str], network: Sequence[float | None],
                          hypervisor: Sequence[float | None], limit_ms: float | None = None
                          ) -> bytes:
    """Network and hypervisor downtime of every migration, side by side."""
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(labels) + 1.2))
    ys = range(len(labels))
    ax.barh([y + 0.2 for y in ys], [v or 0 for v in network], height=0.4,
            label="network (1 ms meter)", color="#1f77b4")
    ax.barh([y - 0.2 for y in ys], [v or 0 for v in hypervisor], height=0.4,
            label="hypervisor's own figure", color="#ff7f0e")
    if limit_ms is not None and max([v or 0 for v in network] + [0]) > limit_ms * 0.5:
        ax.axvline(limit_ms, color="#d62728", linestyle="--", label=f"limit {limit_ms:.0f} ms")
    ax.set_yticks(list(ys))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("downtime (ms)")
    ax.legend(fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def trend_png(runs: Sequence[str], series: dict[str, Sequence[float | None]], ylabel: str,
              title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(8, 3))
    for name, values in series.items():
        points = [(i, v) for i, v in enumerate(values) if v is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=name)
    ax.set_xticks(list(range(len(runs))))
    ax.set_xticklabels(runs, fontsize=7, rotation=20)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def maintenance_png(lanes: Sequence[str], outages: Sequence[Sequence[tuple[float, float]]],
                    marks: Sequence[tuple[float, str]], length_s: float) -> bytes:
    """The maintenance window: one lane per guest, each outage the meter saw shaded (s from
    the window's start), the window's events (power off, power on) as lines."""
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(lanes) + 1.3))
    for y, spans in enumerate(outages):
        ax.broken_barh([(a, max(b - a, length_s / 400)) for a, b in spans], (y - 0.3, 0.6),
                       color=LIMIT, alpha=0.8, label="outage (meter)" if y == 0 else None)
        ax.plot([0, length_s], [y, y], "-", color=NETWORK, linewidth=0.8, alpha=0.5)
    for at, what in marks:
        ax.axvline(at, color=BASELINE, linestyle="--", linewidth=1)
        ax.text(at, len(lanes) - 0.45, what, rotation=90, fontsize=7, va="top", ha="right")
    ax.set_yticks(list(range(len(lanes))))
    ax.set_yticklabels(lanes)
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    ax.set_xlim(0, max(length_s, 1.0))
    ax.set_xlabel("seconds into the maintenance window")
    ax.set_title(f"maintenance window: {length_s:.1f} s")
    if any(outages):
        ax.legend(loc="lower right")
    return _png(fig)


def storm_png(points: Sequence[tuple[str, int, float | None, float | None]]) -> bytes:
    """Downtime against the number of migrations at once: (leg, concurrency, network ms,
    hypervisor ms) per migration of the storm; each concurrency a column of points, the
    network's and the hypervisor's side by side, the median of each marked."""
    levels = sorted({c for _, c, _, _ in points})
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for offset, index, color, label in ((-0.08, 2, NETWORK, "network downtime (meter)"),
                                        (0.08, 3, HYPERVISOR, "hypervisor downtime")):
        xs, ys = [], []
        for p in points:
            value = p[index]
            if value is not None:
                xs.append(levels.index(p[1]) + offset)
                ys.append(float(value))
        if ys:
            ax.plot(xs, ys, "o", color=color, markersize=4, alpha=0.7, label=label)
        for i, level in enumerate(levels):
            column = sorted(float(p[index]) for p in points  # type: ignore[arg-type]
                            if p[1] == level and p[index] is not None)
            if column:
                median = column[len(column) // 2]
                ax.plot([i + offset - 0.06, i + offset + 0.06], [median, median], "-",
                        color=color, linewidth=2)
    ax.set_xticks(list(range(len(levels))))
    ax.set_xticklabels([str(level) for level in levels])
    ax.set_xlim(-0.5, len(levels) - 0.5)
    ax.set_xlabel("migrations at once")
    ax.set_ylabel("downtime (ms)")
    ax.set_title("migration storm: downtime against concurrency")
    ax.legend(loc="upper left")
    return _png(fig)
