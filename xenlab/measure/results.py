"""results.json: a versioned record of a run (lab, host facts, calibration, migrations), and
the comparison of two runs (baselines, `xenlab compare`)."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xenlab.errors import ParseError

SCHEMA = "xenlab-results/1"


@dataclass
class MigrationRecord:
    id: str
    scenario: str
    round_trip: int
    source: str
    destination: str
    status: str
    started_at: float
    ended_at: float
    hypervisor: dict[str, Any]
    network: dict[str, Any] | None
    tcp: dict[str, Any] | None
    continuity: list[str]  # problems found (empty: none)
    passed: bool
    problems: list[str] = field(default_factory=list)
    timeline: str | None = None  # path of the timeline JSON, relative to results.json

    @property
    def direction(self) -> str:
        return f"{self.source}->{self.destination}"


@dataclass
class Results:
    lab: dict[str, Any]
    hosts: dict[str, dict[str, str]] = field(default_factory=dict)
    calibration: list[dict[str, Any]] = field(default_factory=list)
    migrations: list[MigrationRecord] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)  # the fault suite's outcomes

    def to_json(self) -> str:
        return json.dumps({
            "schema": SCHEMA, "run": self.run, "lab": self.lab, "hosts": self.hosts,
            "calibration": self.calibration,
            "migrations": [m.__dict__ for m in self.migrations],
            **({"faults": self.faults} if self.faults else {}),
        }, indent=2, default=str)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path


def parse_results(text: str, source: str = "results.json") -> Results:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParseError(source, f"not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ParseError(source, f"schema {found!r}, expected {SCHEMA!r}")
    try:
        migrations = [MigrationRecord(**m) for m in data.get("migrations", [])]
    except TypeError as exc:
        raise ParseError(source, f"a migration record is malformed: {exc}") from None
    return Results(lab=data.get("lab", {}), hosts=data.get("hosts", {}),
                   calibration=data.get("calibration", []), migrations=migrations,
                   run=data.get("run", {}), faults=list(data.get("faults", [])))


def load_results(path: str | Path) -> Results:
    try:
        return parse_results(Path(path).read_text(), str(path))
    except OSError as exc:
        raise ParseError(str(path), exc.strerror or str(exc)) from None


@dataclass(frozen=True)
class Tolerance:
    downtime_factor: float = 0.5  # new median may exceed old by 50 % ...
    downtime_slack_ms: float = 20.0  # ... plus 20 ms (1 ms figures are noisy near zero)
    loss_slack_pct: float = 1.0


@dataclass(frozen=True)
class Comparison:
    scenario: str
    direction: str
    old_downtime_ms: float | None
    new_downtime_ms: float | None
    old_loss_pct: float | None
    new_loss_pct: float | None
    limit_ms: float | None
    regressed: bool
    reason: str


def _group(results: Results) -> dict[tuple[str, str], list[MigrationRecord]]:
    groups: dict[tuple[str, str], list[MigrationRecord]] = defaultdict(list)
    for m in results.migrations:
        if m.status == "completed" and m.network:
            groups[(m.scenario, m.direction)].append(m)
    return groups


def _median(records: list[MigrationRecord], key: str) -> float | None:
    values = [float(r.network[key]) for r in records if r.network and r.network.get(key) is not None]
    return statistics.median(values) if values else None


def compare_results(old: Results, new: Results, tol: Tolerance = Tolerance()) -> list[Comparison]:
    """Per scenario and direction: median network downtime against old x (1 + f) + slack,
    and median loss against old + slack. A pair only one side has is reported, not judged."""
    out = []
    old_groups, new_groups = _group(old), _group(new)
    for key in sorted(set(old_groups) | set(new_groups)):
        o, n = old_groups.get(key, []), new_groups.get(key, [])
        od, nd = _median(o, "downtime_ms"), _median(n, "downtime_ms")
        ol, nl = _median(o, "loss_pct"), _median(n, "loss_pct")
        if od is None or nd is None or ol is None or nl is None:
            out.append(Comparison(key[0], key[1], od, nd, ol, nl, None, False,
                                  "only in the " + ("new" if od is None else "old") + " run"))
            continue
        limit = od * (1 + tol.downtime_factor) + tol.downtime_slack_ms
        reasons = []
        if nd > limit:
            reasons.append(f"downtime {nd:.1f} ms > {limit:.1f} ms allowed")
        if nl > ol + tol.loss_slack_pct:
            reasons.append(f"loss {nl:.2f} % > {ol:.2f} % + {tol.loss_slack_pct} %")
        out.append(Comparison(key[0], key[1], od, nd, ol, nl, limit, bool(reasons),
                              "; ".join(reasons) or "within tolerance"))
    return out


def comparison_table(rows: list[Comparison]) -> str:
    def f(v: float | None, digits: int = 1) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    lines = [f"{'scenario':<14}{'direction':<34}{'downtime ms old':>16}{'new':>9}{'limit':>9}"
             f"{'loss % old':>12}{'new':>7}  verdict"]
    for r in rows:
        verdict = "REGRESSION: " + r.reason if r.regressed else r.reason
        lines.append(f"{r.scenario:<14}{r.direction:<34}{f(r.old_downtime_ms):>16}"
                     f"{f(r.new_downtime_ms):>9}{f(r.limit_ms):>9}{f(r.old_loss_pct, 2):>12}"
                     f"{f(r.new_loss_pct, 2):>7}  {verdict}")
    return "\n".join(lines)
