"""The certificate to file: one page, printed to PDF by headless Chromium from an HTML
template. It says which lab (and the digest of its inventory), when, the verdict, the host
facts, the key figures against their limits, and the sha256 of the results.json it was made
from, so the paper and the archived run can be matched. `certificate_html` is pure;
`write_certificate` reads the results and runs Chromium."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from html import escape
from pathlib import Path

from xenlab.errors import ReportError
from xenlab.measure.results import Results, decode_results, read_results_file
from xenlab.report.html import fmt
from xenlab.report.matrix import FAILING, CheckOutcome
from xenlab.report.stats import groups

TITLE = "xenlab certificate"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-pdf-header-footer")

STYLE = """
@page { size: A4; margin: 14mm }
body { font-family: "DejaVu Sans", sans-serif; font-size: 10.5px; color: #222; margin: 0 }
h1 { font-size: 20px; margin: 0 0 4px } h2 { font-size: 13px; margin: 12px 0 4px }
.verdict { font-size: 26px; font-weight: bold; margin: 8px 0 }
.ok { color: #2e7d32 } .bad { color: #c62828 }
table { border-collapse: collapse; width: 100% } td, th { border: 1px solid #aaa;
  padding: 2px 4px; text-align: left; vertical-align: top }
th { background: #eee } .nw { white-space: nowrap }
.mono { font-family: "DejaVu Sans Mono", monospace; font-size: 9px; overflow-wrap: anywhere }
.small { font-size: 9px; color: #555 }
"""


def verdict(results: Results) -> tuple[str, str]:
    """(CERTIFIED / NOT CERTIFIED / NO VERDICT, why): the run's own verdict where it was
    recorded, else the check outcomes'."""
    told = results.run.get("verdict")
    if isinstance(told, dict) and "certified" in told:
        failed = told.get("failed") or []
        ran = told.get("ran", 0)
        if told["certified"]:
            return "CERTIFIED", f"{ran} checks run, none failed"
        return "NOT CERTIFIED", (f"{len(failed)} of {ran} checks failed" if failed
                                 else "no check ran")
    outcomes = [CheckOutcome.from_dict(c) for c in results.checks]
    if not outcomes:
        return "NO VERDICT", "this results.json holds no check outcomes (an older xenlab)"
    bad = [o for o in outcomes if o.outcome in FAILING]
    ran = sum(1 for o in outcomes if o.outcome != "skipped")
    if bad or not ran:
        return "NOT CERTIFIED", f"{len(bad)} of {ran} checks failed"
    return "CERTIFIED", f"{ran} checks run, none failed"


def _when(results: Results) -> str:
    started = results.run.get("started")
    if not isinstance(started, int | float):
        return "unknown"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))


def certificate_html(results: Results, results_sha256: str, results_name: str) -> str:
    lab = results.lab
    limits = lab.get("limits") or {}
    word, why = verdict(results)
    colour = "ok" if word == "CERTIFIED" else "bad"
    facts = ""
    if results.hosts:
        keys = sorted({k for f in results.hosts.values() for k in f})
        facts = ("<table><tr><th>host</th>" + "".join(f"<th>{escape(k)}</th>" for k in keys)
                 + "</tr>" + "".join(
                     f"<tr><td>{escape(h)}</td>" + "".join(
                         f"<td>{escape(f.get(k, '–'))}</td>" for k in keys) + "</tr>"
                     for h, f in sorted(results.hosts.items())) + "</table>")
    rows = []
    for g in groups(results.migrations):
        net, hv = g.summary("network downtime"), g.summary("hypervisor downtime")
        total, tcp = g.summary("total time"), g.summary("TCP stall")
        rows.append(f"<tr><td class='nw'>{escape(g.scenario)}</td><td>"
                    f"{escape(g.direction.replace('->', ' → '))}</td>"
                    f"<td>{net.n}</td><td>{fmt(net.median)} / {fmt(net.p95)} / "
                    f"{fmt(net.max)}</td><td>{fmt(hv.median)}</td><td>{fmt(total.median, 0)}"
                    f"</td><td>{fmt(tcp.max, 0)}</td></tr>")
    losses = [float((m.network or {}).get("loss_pct") or 0.0) for m in results.migrations
              if m.status == "completed"]
    failed_runs = sum(1 for m in results.migrations if m.status != "completed")
    figures = (
        "<table><tr><th>scenario</th><th>direction</th><th>n</th><th>network downtime ms "
        "median / p95 / max</th><th>hypervisor downtime ms (median)</th><th>total time ms "
        "(median)</th><th>TCP stall ms (max)</th></tr>" + "".join(rows) + "</table>"
        f"<p>Limits: network downtime {fmt(limits.get('downtime_ms'), 0)} ms per migration, "
        f"probe loss {fmt(limits.get('loss_pct'))} %. Worst loss "
        f"{fmt(max(losses) if losses else None, 2)} %; migrations that did not complete: "
        f"{failed_runs}.</p>") if rows else "<p>No migration completed in this run.</p>"
    worst = max((abs(p["error_ms"]) for p in results.calibration
                 if p.get("error_ms") is not None), default=None)
    calibration = (f"{len(results.calibration)} injected outages, worst error "
                   f"{fmt(worst, 2)} ms at {fmt(results.run.get('interval_ms'))} ms probes"
                   if results.calibration else "not run: the network figures carry no "
                   "stated error")
    outcomes = [CheckOutcome.from_dict(c) for c in results.checks]
    counts = {k: sum(1 for o in outcomes if o.outcome == k)
              for k in ("passed", "failed", "error", "skipped")}
    failing = sorted({o.check for o in outcomes if o.outcome in FAILING})
    failing_text = ("<p class='bad'>Failing: " + ", ".join(escape(f) for f in failing[:10])
                    + (" …" if len(failing) > 10 else "") + "</p>") if failing else ""
    name = escape(str(lab.get("name", "?")))
    mono = ' class="mono"'
    table = "".join(f"<tr><th>{k}</th><td{mono if k == 'inventory' else ''}>{v}</td></tr>"
                    for k, v in (
        ("kind, toolstack", f"{escape(str(lab.get('kind', '?')))}, "
                            f"{escape(str(lab.get('toolstack', '?')))}"),
        ("inventory", f"{escape(str(lab.get('inventory') or '?'))}<br>sha256 "
                      f"{escape(str(lab.get('inventory_sha256') or 'not recorded'))}"),
        ("run", f"{_when(results)}, xenlab {escape(str(results.run.get('xenlab') or '?'))}"),
        ("checks", f"{counts['passed']} passed, {counts['failed'] + counts['error']} failed, "
                   f"{counts['skipped']} not applicable"),
        ("meter", escape(calibration))))
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{TITLE}</title>
<style>{STYLE}</style></head><body>
<h1>{TITLE}: live-migration lab <span class="mono" style="font-size:18px">{name}</span></h1>
<div class="verdict {colour}" id="verdict">{word}</div><div>{escape(why)}</div>
<h2>Lab</h2><table>{table}</table>{failing_text}
<h2>Key figures</h2>{figures}
<h2>Hosts</h2>{facts or '<p>No host facts recorded.</p>'}
<h2>Results</h2><p class="mono">{escape(results_name)}<br>sha256 {results_sha256}</p>
<p class="small">Printed by xenlab from the results above; the sha256 identifies the exact
results.json this page was made from.</p>
</body></html>"""


def write_certificate(results_path: Path, output: Path, chromium: str = "chromium",
                      timeout: float = 120.0) -> Path:
    """certificate.pdf from a results.json (read and checked first); ReportError, in one
    line, where Chromium is missing or prints nothing."""
    data = read_results_file(results_path)
    results = decode_results(data, str(results_path))
    digest = hashlib.sha256(data).hexdigest()
    binary = shutil.which(chromium)
    if binary is None:
        raise ReportError(f"certificate not printed: {chromium} not found (package chromium; "
                          "`make setup` installs it)")
    if output.is_symlink() or (output.exists() and not output.is_file()):
        raise ReportError(f"certificate not printed: {output} is "
                          f"{'a symlink' if output.is_symlink() else 'not a file'}; it is "
                          "left as it is")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xenlab-certificate-") as tmp:
        page = Path(tmp) / "certificate.html"
        page.write_text(certificate_html(results, digest, str(results_path)))
        pdf = Path(tmp) / "certificate.pdf"
        try:
            done = subprocess.run(
                [binary, *CHROMIUM_FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}",
                 f"--print-to-pdf={pdf}", page.as_uri()],
                capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ReportError(f"certificate not printed: {chromium} did not finish within "
                              f"{timeout:g} s") from None
        if not pdf.is_file() or pdf.stat().st_size == 0:
            raise ReportError(f"certificate not printed: {chromium} exited {done.returncode}: "
                              f"{done.stderr.strip()[-300:]}")
        shutil.move(pdf, output)
    return output
