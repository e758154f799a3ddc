"""The report's summary: the verdict, the lab, every migration's figures against its limits
and the baseline, the meter's calibration, the host facts. Pure: records in, HTML out."""

from __future__ import annotations

import base64
from html import escape

from xenlab.measure.results import Comparison, Results
from xenlab.report.plots import downtime_overview_png


def _f(value: object, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def png_tag(data: bytes, alt: str, element_id: str = "") -> str:
    ident = f' id="{element_id}"' if element_id else ""
    return (f'<img{ident} alt="{escape(alt)}" style="max-width:100%" '
            f'src="data:image/png;base64,{base64.b64encode(data).decode()}"/>')


def summary_html(results: Results, failed: list[str], inventory_path: str,
                 baseline: list[Comparison] | None = None, ran: int = 0) -> str:
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
    limits = results.lab.get("limits", {})
    by_key = {(c.scenario, c.direction): c for c in baseline or []}
    if results.migrations:
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
        parts.append(
            f"<h3>Migrations</h3><p>Limits: network downtime {_f(limits.get('downtime_ms'), 0)} "
            f"ms, loss {_f(limits.get('loss_pct'))} %.</p>"
            '<table id="xenlab-migrations" border="1" cellpadding="3" style="border-collapse:'
            'collapse;font-size:12px"><tr><th>direction</th><th>scenario</th><th>round trip'
            "</th><th>status</th><th>total time ms (hypervisor)</th><th>downtime ms "
            "(hypervisor)</th><th>downtime ms (network)</th><th>probes lost</th><th>RTT "
            "median ms</th><th>RTT p99 ms</th><th>TCP stall ms</th><th>verdict</th>"
            "<th>against baseline</th></tr>" + "".join(rows) + "</table>")
        parts.append(png_tag(downtime_overview_png(
            [m.id for m in results.migrations],
            [(m.network or {}).get("downtime_ms") for m in results.migrations],
            [m.hypervisor.get("downtime_ms") for m in results.migrations],
            limits.get("downtime_ms")), "downtime of every migration", "xenlab-overview"))
    if results.calibration:
        cal = ", ".join(f"{p['injected_ms']:.0f} ms injected, {_f(p['measured_ms'])} ms measured "
                        f"(error {_f(p['error_ms'], 2)} ms, injection ±{_f(p.get('uncertainty_ms'), 2)} ms)"
                        for p in results.calibration)
        attempts = results.run.get("calibration_attempts") or []
        retaken = (f"; taken {len(attempts)} times (the earlier attempts were disturbed by the "
                   "lab, see results.json)" if len(attempts) > 1 else "")
        worst = max((abs(p["error_ms"]) for p in results.calibration
                     if p["error_ms"] is not None), default=None)
        parts.append(f'<p id="xenlab-calibration"><b>Meter calibration</b> '
                     f"({_f(results.run.get('interval_ms'), 1)} ms probes, "
                     f"{escape(str(results.run.get('prober', '')))} prober): worst error "
                     f"{_f(worst, 2)} ms; {cal}{retaken}.</p>")
    else:
        parts.append('<p id="xenlab-calibration"><b>Meter calibration</b>: not run in this '
                     "session: the network figures carry no stated error.</p>")
    if results.hosts:
        keys = sorted({k for facts in results.hosts.values() for k in facts})
        parts.append("<h3>Hosts</h3><table border='1' cellpadding='3' style='border-collapse:"
                     "collapse;font-size:12px'><tr><th>host</th>" +
                     "".join(f"<th>{escape(k)}</th>" for k in keys) + "</tr>" +
                     "".join("<tr><td>" + escape(h) + "</td>" +
                             "".join(f"<td>{escape(f.get(k, '–'))}</td>" for k in keys) + "</tr>"
                             for h, f in sorted(results.hosts.items())) + "</table>")
    return "\n".join(parts)
