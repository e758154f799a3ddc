"""The report's latency section: every migration's timeline in a grid, the distributions over
repeats (with the baseline's beside), each downtime split into pause and reconvergence, the
plausibility of each figure, and the meter's calibration. Records in, HTML out; the only
input read is the timelines results.json names."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from xenlab.measure.results import MigrationRecord, Results
from xenlab.report.html import png_tag
from xenlab.report.plots import (
    calibration_png,
    distribution_png,
    maintenance_png,
    split_png,
    storm_png,
    timeline_png,
)
from xenlab.report.stats import FIGURES, Group, groups, plausibility, split

STYLE = """
#xenlab-timelines,.xenlab-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));
  gap:8px;align-items:start}
#xenlab-timelines figure{margin:0}#xenlab-timelines figcaption{font-size:11px;color:#555}
#xenlab-distributions{border-collapse:collapse;font-size:12px}
#xenlab-distributions td,#xenlab-distributions th{border:1px solid #bbb;padding:2px 5px}
.xenlab-flag{color:#b71c1c}
"""


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _row_label(g: Group) -> str:
    return f"{g.scenario}: {g.direction.replace('->', ' → ')}"


def distributions_html(results: Results, baseline: Results | None = None) -> str:
    mine = groups(results.migrations)
    if not mine:
        return "<p>No completed migration: no distribution to show.</p>"
    theirs = {(g.scenario, g.direction): g for g in groups(baseline.migrations)} if baseline \
        else {}
    names = [name for name, _, _ in FIGURES]
    head = "".join(f"<th>{escape(n)} ms<br>n · median · p95 · max</th>" for n in names)
    rows = []
    for g in mine:
        cells = []
        for name in names:
            s = g.summary(name)
            text = f"{s.n} · {_ms(s.median)} · {_ms(s.p95)} · {_ms(s.max)}"
            old = theirs.get((g.scenario, g.direction))
            if old is not None:
                b = old.summary(name)
                text += (f"<br><span style='color:#757575'>baseline {b.n} · {_ms(b.median)} · "
                         f"{_ms(b.p95)} · {_ms(b.max)}</span>")
            cells.append(f"<td>{text}</td>")
        rows.append(f"<tr><td>{escape(_row_label(g))}</td>{''.join(cells)}</tr>")
    limit = (results.lab.get("limits") or {}).get("downtime_ms")
    labels = [_row_label(g) for g in mine]
    plots = "".join(png_tag(distribution_png(
        labels, n, [g.values[n] for g in mine],
        [theirs[(g.scenario, g.direction)].values[n] if (g.scenario, g.direction) in theirs
         else [] for g in mine] if baseline else None,
        float(limit) if limit is not None and n == "network downtime" else None),
        f"{n} over repeats") for n in names)
    return ("<h4>Distributions over repeats</h4><div class='xenlab-wide'>"
            "<table id='xenlab-distributions'><tr><th>"
            f"scenario: direction</th>{head}</tr>{''.join(rows)}</table></div>"
            f"<div id='xenlab-distribution' class='xenlab-grid'>{plots}</div>")


def split_html(results: Results) -> str:
    parts = [split(m) for m in results.migrations]
    shown = [p for p in parts if p is not None]
    interval = float(results.run.get("interval_ms") or 1.0)
    checks = [plausibility(m, interval) for m in results.migrations]
    bounds = {c.id: c.bound_ms for c in checks}
    flags = [(c.id, f) for c in checks for f in c.flags]
    out = ["<h4>Downtime: the hypervisor's pause and the network's reconvergence</h4>"]
    if shown:
        limit = (results.lab.get("limits") or {}).get("downtime_ms")
        out.append(png_tag(split_png([p.id for p in shown], [p.pause_ms for p in shown],
                                     [p.reconverge_ms for p in shown],
                                     [bounds.get(p.id) for p in shown], limit),
                           "downtime split per migration", "xenlab-split"))
        out.append("<p>Reconvergence is the meter's gap minus the hypervisor's pause: the "
                   "time the network took to reach the guest again after it resumed.</p>")
    else:
        out.append("<p>The hypervisor reported no pause for these migrations (libvirt's "
                   "libxl keeps no job figures): no split to show.</p>")
    if any(b is not None for b in bounds.values()):
        out.append("<p>Transfer bound: the bytes left to send at the switch over the measured "
                   "rate; a figure below half of it is a measurement error, one above "
                   "ten times it plus 100 ms is worth a look.</p>")
    else:
        out.append("<p>Transfer bound: not reported by this toolstack (QEMU reports the "
                   "bytes sent while paused and the rate; xl and libvirt do not).</p>")
    if flags:
        out.append("<ul id='xenlab-plausibility'>" + "".join(
            f"<li class='xenlab-flag'>{escape(i)}: {escape(f)}</li>" for i, f in flags) + "</ul>")
    else:
        out.append("<p id='xenlab-plausibility'>Every figure is plausible: no pause shorter "
                   "than the transfer allows, no meter gap shorter than the pause.</p>")
    return "\n".join(out)


def _timeline(m: MigrationRecord, results_dir: Path) -> str | None:
    """The record's timeline, read only from under the results' own directory."""
    if not m.timeline:
        return None
    path = (results_dir / m.timeline).resolve()
    if results_dir.resolve() not in path.parents or not path.is_file():
        return None
    try:
        timeline = json.loads(path.read_text())
        timeline["t0"], timeline["probes"], timeline["migration_ms"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    net = m.network or {}
    gap = None
    if net.get("gap_start") and net.get("gap_end"):
        gap = ((net["gap_start"] - timeline["t0"]) * 1000.0,
               (net["gap_end"] - timeline["t0"]) * 1000.0)
    png = timeline_png(timeline, m.id, gap, m.hypervisor.get("downtime_ms"), size=(4.8, 2.3),
                       dpi=72)
    verdict = "pass" if m.passed else "FAIL: " + "; ".join(m.problems)
    return (f"<figure>{png_tag(png, f'timeline {m.id}')}<figcaption>{escape(m.id)}: network "
            f"{_ms(net.get('downtime_ms'))} ms, hypervisor "
            f"{_ms(m.hypervisor.get('downtime_ms'))} ms · {escape(verdict[:200])}</figcaption>"
            "</figure>")


def timelines_html(results: Results, results_dir: Path) -> str:
    figures = [f for m in results.migrations if (f := _timeline(m, results_dir))]
    if not figures:
        return ""
    return ("<h4>Every migration's timeline</h4><div id='xenlab-timelines'>" + "".join(figures)
            + "</div>")


def calibration_html(results: Results) -> str:
    points = results.calibration
    if not points:
        return ""
    return png_tag(calibration_png([p["injected_ms"] for p in points],
                                   [p["measured_ms"] for p in points],
                                   [p.get("uncertainty_ms") for p in points]),
                   "meter calibration: measured against injected", "xenlab-calibration-plot")


def latency_html(results: Results, results_dir: Path, baseline: Results | None = None) -> str:
    if not results.migrations:
        return ""
    return "\n".join([f"<style>{STYLE}</style>", '<h3 id="xenlab-latency">Latency</h3>',
                      distributions_html(results, baseline), split_html(results),
                      timelines_html(results, results_dir)])


def _against_limit(m: MigrationRecord, limit: object) -> str:
    downtime = (m.network or {}).get("downtime_ms")
    if not isinstance(limit, int | float) or downtime is None:
        return "–"
    return "within" if downtime <= limit else f"over ({limit:.0f} ms)"


def storm_html(results: Results) -> str:
    """The migration storm: downtime against the number of migrations at once (a plot),
    and each leg's migrations with their figures (a table)."""
    storm = [m for m in results.migrations if m.scenario.startswith("storm-")]
    if not storm:
        return ""
    limit = (results.lab.get("limits") or {}).get("downtime_ms")
    points = [(m.scenario, m.concurrency, (m.network or {}).get("downtime_ms"),
               m.hypervisor.get("downtime_ms")) for m in storm]
    plot = png_tag(storm_png(points), "migration storm: downtime against concurrency",
                   "xenlab-storm-plot")
    rows = "".join(
        f"<tr><td>{escape(m.scenario.removeprefix('storm-'))}</td><td>{m.concurrency}</td>"
        f"<td>{escape(m.guest)}</td><td>{escape(m.direction)}</td>"
        f"<td>{_ms((m.network or {}).get('downtime_ms'))}</td>"
        f"<td>{_ms(m.hypervisor.get('downtime_ms'))}</td>"
        f"<td>{_ms(m.hypervisor.get('total_time_ms'))}</td>"
        f"<td>{_against_limit(m, limit)}</td>"
        f"<td>{'passed' if m.passed else 'FAILED'}</td></tr>" for m in storm)
    return ('<h3 id="xenlab-storm">Migration storm</h3>' + plot +
            "<div class='xenlab-wide'><table id='xenlab-storm-table'><tr><th>leg</th>"
            "<th>at once</th><th>guest</th><th>direction</th><th>network downtime ms</th>"
            "<th>hypervisor downtime ms</th><th>total ms</th><th>one migration's limit</th>"
            "<th>verdict</th></tr>"
            f"{rows}</table></div>")


def maintenance_html(results: Results) -> str:
    """Each maintenance window: its length, a lane per guest with its outages, the events."""
    parts = []
    by_id = {m.id: m for m in results.migrations}
    for window in results.maintenance:
        opened = window.get("opened")
        length = window.get("window_s")
        if not isinstance(opened, int | float) or not isinstance(length, int | float):
            continue
        lanes: dict[str, list[tuple[float, float]]] = {}
        for mid in window.get("migrations") or []:
            m = by_id.get(str(mid))
            if m is None:
                continue
            net = m.network or {}
            guest = m.guest or "guest"  # schema 1: its one guest, named when read
            spans = lanes.setdefault(guest, [])
            if net.get("gap_start") and net.get("gap_end"):
                spans.append((float(net["gap_start"]) - opened, float(net["gap_end"]) - opened))
        marks = [(float(e["at"]) - opened, str(e["what"]).split(":")[0][:40])
                 for e in window.get("events") or []
                 if isinstance(e, dict) and isinstance(e.get("at"), int | float)
                 and ("powered off" in str(e.get("what")) or "powered on" in str(e.get("what")))]
        plot = png_tag(maintenance_png(list(lanes) or ["guest"], list(lanes.values()) or [[]],
                                       marks, float(length)),
                       "maintenance window: a lane per guest", "xenlab-maintenance-plot")
        events = "".join(
            f"<tr><td>{float(e['at']) - opened:.1f}</td><td>{escape(str(e['what']))}</td></tr>"
            for e in window.get("events") or []
            if isinstance(e, dict) and isinstance(e.get("at"), int | float))
        verdict = ("every phase done" if not window.get("failed")
                   else f"FAILED at {escape(str(window['failed']))}")
        parts.append(f"<h4>Maintenance of {escape(str(window.get('source')))}: {length:.1f} s, "
                     f"{verdict}</h4>{plot}<div class='xenlab-wide'><table "
                     f"id='xenlab-maintenance'><tr><th>s</th><th>what</th></tr>{events}"
                     "</table></div>")
    if not parts:
        return ""
    return '<h3 id="xenlab-maintenance-window">Maintenance window</h3>' + "\n".join(parts)
