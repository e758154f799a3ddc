"""Plots for the report (matplotlib, PNG bytes): a migration's timeline, and an overview."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def timeline_png(timeline: dict[str, Any], title: str, gap: tuple[float, float] | None = None,
                 hv_downtime_ms: float | None = None) -> bytes:
    """RTT of every probe over time, lost probes marked, the migration's span and the
    longest gap shaded. `timeline` is the JSON written per migration (times in ms from t0);
    `gap` is the longest reply gap in the same time base."""
    probes = timeline["probes"]
    ok = [(p[1] / 1000.0, p[2]) for p in probes if p[2] is not None]
    lost = [p[1] / 1000.0 for p in probes if p[2] is None]
    fig, ax = plt.subplots(figsize=(9, 3.2))
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
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
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
