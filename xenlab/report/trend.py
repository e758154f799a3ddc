"""`xenlab report trend RESULTS...`: downtime and total time per scenario and direction
across runs (plots and a table), and the host facts that changed between runs."""

from __future__ import annotations

import itertools
import statistics
import time
from html import escape
from pathlib import Path

from xenlab.measure.results import Results, load_results
from xenlab.report.facts import changed_facts
from xenlab.report.html import png_tag
from xenlab.report.plots import distribution_png
from xenlab.report.stats import FIGURES
from xenlab.report.stats import figure as figure_of


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def run_label(results: Results, path: str) -> str:
    started = results.run.get("started")
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(started)) if started else "?"
    return f"{Path(path).stem} ({when})"


def trend_html(runs: list[tuple[str, Results]]) -> str:
    labels = [run_label(r, p) for p, r in runs]
    keys = sorted({(m.scenario, m.direction) for _, r in runs for m in r.migrations})
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>xenlab trend</title>"
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
             "font-size:12px}td,th{border:1px solid #999;padding:3px}.changed{background:"
             "#ffe0b2}.xenlab-grid{display:grid;grid-template-columns:repeat(auto-fill,"
             "minmax(320px,1fr));gap:8px}img{max-width:100%}</style></head><body>"
             "<h1>xenlab: migration figures across runs</h1>",
             "<p>Runs: " + ", ".join(escape(x) for x in labels) + "</p>"]
    table = ["<table id='trend'><tr><th>scenario</th><th>direction</th><th>figure</th>" +
             "".join(f"<th>{escape(x)}</th>" for x in labels) + "</tr>"]
    for scenario, direction in keys:
        series: dict[str, list[float | None]] = {}
        for figure, source, key in (("network downtime ms", "network", "downtime_ms"),
                                    ("hypervisor downtime ms", "hypervisor", "downtime_ms"),
                                    ("total time ms", "hypervisor", "total_time_ms")):
            values = []
            for _, r in runs:
                found = [float(v) for m in r.migrations
                         if (m.scenario, m.direction) == (scenario, direction)
                         and m.status == "completed"
                         and (v := (getattr(m, source) or {}).get(key)) is not None]
                values.append(_median(found))
            series[figure] = values
            table.append(f"<tr><td>{escape(scenario)}</td><td>{escape(direction)}</td>"
                         f"<td>{figure} (median)</td>" +
                         "".join(f"<td>{'–' if v is None else f'{v:.1f}'}</td>" for v in values)
                         + "</tr>")
        parts.append(f"<h2>{escape(scenario)}: {escape(direction)}</h2>")
        # the report's own strip plots, one row per run: every repeat shown, not a median
        parts.append("<div class='xenlab-grid'>" + "".join(png_tag(distribution_png(
            labels, name, [[v for m in r.migrations
                            if (m.scenario, m.direction) == (scenario, direction)
                            and m.status == "completed"
                            and (v := figure_of(m, section, key)) is not None]
                           for _, r in runs]),
            f"{name} per run {scenario} {direction}") for name, section, key in FIGURES)
            + "</div>")
    table.append("</table>")
    parts.append("<h2>All figures</h2>" + "".join(table))
    parts.append("<h2>Host facts that changed</h2>")
    changes = []
    for (pa, a), (pb, b) in itertools.pairwise(runs):
        for host, key, old, new in changed_facts(a.hosts, b.hosts):
            changes.append(f"<tr class='changed'><td>{escape(run_label(a, pa))} → "
                           f"{escape(run_label(b, pb))}</td><td>{escape(host)}</td>"
                           f"<td>{escape(key)}</td><td>{escape(old)}</td><td>{escape(new)}</td></tr>")
    parts.append("<table id='changes'><tr><th>between</th><th>host</th><th>fact</th><th>before"
                 "</th><th>after</th></tr>" + "".join(changes) + "</table>" if changes
                 else "<p id='changes'>No host fact changed between these runs.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_trend(paths: list[str], output: str) -> Path:
    runs = [(p, load_results(p)) for p in paths]
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(trend_html(runs))
    return out
