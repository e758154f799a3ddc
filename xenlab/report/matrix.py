"""The check matrix (pure): one row per check, one column per host, a cell per outcome;
failing rows first with their messages; checks skipped everywhere folded into one list of
"not applicable here", grouped by reason. Outcomes come from results.json's `checks`, so an
archived run gives the same matrix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from xenlab.report.catalogue import describe

LAB = ""  # the column of checks that judge the lab as a whole (no host parameter)
FAILING = ("failed", "error")


@dataclass(frozen=True)
class CheckOutcome:
    check: str  # the test function, e.g. test_aoe_driver_loaded
    host: str  # the host it judged ("": the lab as a whole)
    variant: str  # its other parameters (a migration step, a fault), "" if none
    outcome: str  # passed, failed, skipped or error
    message: str = ""  # the failure's or the skip's one line

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckOutcome:
        return cls(str(d["check"]), str(d["host"]), str(d.get("variant", "")),
                   str(d["outcome"]), str(d.get("message", "")))


@dataclass
class Cell:
    counts: Counter[str] = field(default_factory=Counter)
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        total = sum(self.counts.values())
        bad = sum(self.counts[o] for o in FAILING)
        if bad:
            return "FAIL" if total == 1 else f"FAIL {bad}/{total}"
        if self.counts["passed"]:
            ran = total - self.counts["skipped"]
            return "pass" if total == 1 else f"pass {self.counts['passed']}/{ran}"
        return "n/a"

    @property
    def kind(self) -> str:
        return ("fail" if any(self.counts[o] for o in FAILING) else
                "pass" if self.counts["passed"] else "na")


@dataclass
class Row:
    check: str
    what: str
    step: str
    cells: dict[str, Cell]
    failures: list[str]

    @property
    def failing(self) -> bool:
        return bool(self.failures)

    @property
    def applicable(self) -> bool:
        return any(c.kind != "na" for c in self.cells.values())


@dataclass(frozen=True)
class Matrix:
    columns: tuple[str, ...]  # host names, then LAB where some check judges the lab
    rows: tuple[Row, ...]  # failing first, then in run order
    not_applicable: tuple[tuple[str, int, tuple[str, ...]], ...]  # (reason, count, checks)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.rows if r.failing)


def build_matrix(outcomes: Iterable[CheckOutcome], hosts: Sequence[str]) -> Matrix:
    rows: dict[str, Row] = {}
    for o in outcomes:
        row = rows.get(o.check)
        if row is None:
            what, step = describe(o.check)
            row = rows[o.check] = Row(o.check, what, step, {}, [])
        cell = row.cells.setdefault(o.host, Cell())
        cell.counts[o.outcome] += 1
        if o.outcome == "skipped" and o.message:
            cell.reasons.append(o.message)
        if o.outcome in FAILING:
            where = " ".join(x for x in (o.host, o.variant) if x)
            row.failures.append(f"{where}: {o.message}" if where else o.message)
    used = {h for r in rows.values() for h in r.cells}
    columns = tuple(h for h in hosts if h in used) + tuple(sorted(used - set(hosts) - {LAB}))
    columns += (LAB,) if LAB in used else ()
    applicable = [r for r in rows.values() if r.applicable]
    applicable.sort(key=lambda r: not r.failing)  # stable: run order within each part
    skipped: Counter[str] = Counter()
    checks: dict[str, list[str]] = {}
    for r in rows.values():
        if r.applicable:
            continue
        for cell in r.cells.values():
            for reason in cell.reasons or ["skipped"]:
                skipped[reason] += 1
                if r.check not in checks.setdefault(reason, []):
                    checks[reason].append(r.check)
    folded = tuple((reason, n, tuple(checks[reason])) for reason, n in skipped.most_common())
    return Matrix(columns, tuple(applicable), folded)


STYLE = """
#xenlab-matrix{border-collapse:collapse;font-size:13px;width:100%}
#xenlab-matrix th,#xenlab-matrix td{border:1px solid #bbb;padding:3px 5px;vertical-align:top}
#xenlab-matrix td.pass{background:#e8f5e9;color:#1b5e20;text-align:center}
#xenlab-matrix td.fail{background:#ffebee;color:#b71c1c;font-weight:bold;text-align:center}
#xenlab-matrix td.na{background:#f5f5f5;color:#777;text-align:center}
#xenlab-matrix .step{color:#555;font-size:11px}
#xenlab-matrix .why{color:#b71c1c;font-size:12px;max-width:40em;overflow-wrap:anywhere}
.xenlab-wide{overflow-x:auto;max-width:100%}
"""


def matrix_html(m: Matrix) -> str:
    head = "".join(f"<th>{escape(c or 'whole lab')}</th>" for c in m.columns)
    body = []
    for r in m.rows:
        cells = "".join(
            f'<td class="{c.kind}" title="{escape("; ".join(sorted(set(c.reasons)))[:300])}">'
            f"{escape(c.label)}</td>" if (c := r.cells.get(col)) else "<td>–</td>"
            for col in m.columns)
        why = "<br>".join(escape(f[:300]) for f in r.failures[:4])
        if len(r.failures) > 4:
            why += f"<br>… and {len(r.failures) - 4} more"
        body.append(f'<tr class="{"failing" if r.failing else "ok"}"><td>{escape(r.what)}'
                    f'<div class="step">{escape(r.step)} · <code>{escape(r.check)}</code>'
                    f'</div></td>{cells}<td class="why">{why}</td></tr>')
    parts = [f"<style>{STYLE}</style>",
             f'<h3>Checks: {len(m.rows)} applicable here, {m.failed} failing</h3>',
             '<div class="xenlab-wide"><table id="xenlab-matrix"><tr><th>check (article step)'
             f"</th>{head}<th>what failed</th></tr>" + "".join(body) + "</table></div>"]
    if m.not_applicable:
        items = "".join(f"<li>{n} × {escape(reason)} <span class='step'>("
                        f"{escape(', '.join(checks))})</span></li>"
                        for reason, n, checks in m.not_applicable)
        parts.append(f'<details id="xenlab-not-applicable" open><summary>Not applicable here '
                     f"({sum(n for _, n, _ in m.not_applicable)} skipped)</summary><ul>{items}"
                     "</ul></details>")
    return "\n".join(parts)
