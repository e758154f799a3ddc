"""The report's summary: the verdict, the lab, every migration's figures against its limits
and the baseline, the meter's calibration, the host facts. Pure: records in, HTML out."""

from __future__ import annotations

from html import escape
from pathlib import Path

from xenlab.measure.results import Comparison, Results
from xenlab.report.facts import changed_facts
from xenlab.report.html import fmt as _f
from xenlab.report.latency import (
    calibration_html,
    latency_html,
    maintenance_html,
    storm_html,
)
from xenlab.report.matrix import CheckOutcome, build_matrix, matrix_html

# over pytest-html's own sheet: readable at phone width (its body is at least 800 px wide),
# wide tables scroll inside themselves, never the page
PAGE_STYLE = """
body{min-width:0;max-width:100%;color:#222}
code{overflow-wrap:anywhere}
img{max-width:100%;height:auto}
#environment,#results-table{display:block;overflow-x:auto;max-width:100%}
.controls,.filters,.collapse,.summary{flex-wrap:wrap}
.summary__data,.summary__spacer{flex:1 1 auto;max-width:100%}
@media (max-width:700px){div.media{float:none;width:100%}h1{font-size:18px}}
"""


def verdict_html(results: Results, failed: list[str], inventory_path: str, ran: int) -> str:
    certified = not failed and ran > 0
    verdict = "CERTIFIED" if certified else "NOT CERTIFIED"
    colour = "#2e7d32" if certified else "#c62828"
    name = escape(str(results.lab.get("name", "")))
    parts = [f'<h2 id="xenlab-verdict" style="color:{colour}">Lab {name}: {verdict}</h2>',
             f"<p>Inventory <code>{escape(inventory_path)}</code>, toolstack "
             f"{escape(str(results.lab.get('toolstack', '')))}, {ran} checks run, "
             f"{len(failed)} failed.</p>"]
    if failed:
        parts.append("<p>Failing checks:</p><ul>" +
                     "".join(f"<li><code>{escape(n)}</code></li>" for n in failed) + "</ul>")
    return "\n".join(parts)


def changes_html(results: Results, baseline: Results) -> str:
    """The host facts that changed since the baseline: what a regression hunt reads first."""
    changes = changed_facts(baseline.hosts, results.hosts)
    if not changes:
        return "<p id='xenlab-changes'>No host fact changed since the baseline.</p>"
    return ("<h3>Changed since the baseline</h3><table id='xenlab-changes' border='1' "
            "cellpadding='3' style='border-collapse:collapse;font-size:12px'><tr><th>host</th>"
            "<th>fact</th><th>baseline</th><th>this run</th></tr>" + "".join(
                f"<tr><td>{escape(h)}</td><td>{escape(k)}</td><td>{escape(a)}</td>"
                f"<td><b>{escape(b)}</b></td></tr>" for h, k, a, b in changes) + "</table>")


def migrations_html(results: Results, baseline: list[Comparison] | None) -> str:
    limits = results.lab.get("limits", {})
    by_key = {(c.scenario, c.direction): c for c in baseline or []}
    rows = []
    for m in results.migrations:
        net, hv = m.network or {}, m.hypervisor
        cmp = by_key.get((m.scenario, m.direction))
        against = "–" if cmp is None else ("REGRESSION" if cmp.regressed else "ok")
        rows.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                escape(m.direction), escape(m.scenario), str(m.round_trip), escape(m.status),
                _f(hv.get("total_time_ms"), 0), _f(hv.get("downtime_ms"), 0),
                _f(net.get("downtime_ms")), _f(net.get("lost"), 0),
                _f(net.get("rtt_median_ms"), 3), _f(net.get("rtt_p99_ms"), 2),
                _f((m.tcp or {}).get("longest_stall_ms"), 0),
                "pass" if m.passed else "FAIL: " + escape("; ".join(m.problems)), against,
            )) + "</tr>")
    return (f"<h4>Every migration</h4><p>Limits: network downtime "
            f"{_f(limits.get('downtime_ms'), 0)} ms, loss {_f(limits.get('loss_pct'))} %.</p>"
            '<div class="xenlab-wide"><table id="xenlab-migrations" border="1" cellpadding="3" '
            'style="border-collapse:collapse;font-size:12px"><tr><th>direction</th><th>scenario'
            "</th><th>round trip</th><th>status</th><th>total time ms (hypervisor)</th><th>"
            "downtime ms (hypervisor)</th><th>downtime ms (network)</th><th>probes lost</th>"
            "<th>RTT median ms</th><th>RTT p99 ms</th><th>TCP stall ms</th><th>verdict</th>"
            "<th>against baseline</th></tr>" + "".join(rows) + "</table></div>")


def calibration_text(results: Results) -> str:
    if not results.calibration:
        return ('<p id="xenlab-calibration"><b>Meter calibration</b>: not run in this '
                "session: the network figures carry no stated error.</p>")
    cal = ", ".join(f"{p['injected_ms']:.0f} ms injected, {_f(p['measured_ms'])} ms measured "
                    f"(error {_f(p['error_ms'], 2)} ms, injection ±{_f(p.get('uncertainty_ms'), 2)} ms)"
                    for p in results.calibration)
    attempts = results.run.get("calibration_attempts") or []
    retaken = (f"; taken {len(attempts)} times (the earlier attempts were disturbed by the "
               "lab, see results.json)" if len(attempts) > 1 else "")
    worst = max((abs(p["error_ms"]) for p in results.calibration
                 if p["error_ms"] is not None), default=None)
    return (f'<p id="xenlab-calibration"><b>Meter calibration</b> '
            f"({_f(results.run.get('interval_ms'), 1)} ms probes, "
            f"{escape(str(results.run.get('prober', '')))} prober): worst error "
            f"{_f(worst, 2)} ms; {cal}{retaken}.</p>")


def hosts_html(results: Results) -> str:
    if not results.hosts:
        return ""
    keys = sorted({k for facts in results.hosts.values() for k in facts})
    return ("<h3>Hosts</h3><div class='xenlab-wide'><table border='1' cellpadding='3' "
            "style='border-collapse:collapse;font-size:12px'><tr><th>host</th>" +
            "".join(f"<th>{escape(k)}</th>" for k in keys) + "</tr>" +
            "".join("<tr><td>" + escape(h) + "</td>" +
                    "".join(f"<td>{escape(f.get(k, '–'))}</td>" for k in keys) + "</tr>"
                    for h, f in sorted(results.hosts.items())) + "</table></div>")


def summary_html(results: Results, failed: list[str], inventory_path: str,
                 baseline: list[Comparison] | None = None, ran: int = 0, *,
                 results_dir: Path | None = None, baseline_results: Results | None = None,
                 hosts: tuple[str, ...] = ()) -> str:
    """The top of the report, in the order a lab owner reads it: the verdict, what changed
    since the baseline, the check matrix, the latency figures, the calibration, the hosts."""
    parts = [f"<style>{PAGE_STYLE}</style>", verdict_html(results, failed, inventory_path, ran)]
    if baseline_results is not None:
        parts.append(changes_html(results, baseline_results))
    if results.checks:
        parts.append(matrix_html(build_matrix(
            (CheckOutcome.from_dict(c) for c in results.checks),
            hosts or tuple(results.lab.get("hosts", {})))))
    if results.migrations:
        parts.append(latency_html(results, results_dir or Path("."), baseline_results))
        parts.append(maintenance_html(results))
        parts.append(storm_html(results))
        parts.append(migrations_html(results, baseline))
    parts.append(calibration_text(results))
    parts.append(calibration_html(results))
    parts.append(hosts_html(results))
    return "\n".join(p for p in parts if p)
