"""results.json: a versioned record of a run (lab, host facts, calibration, migrations), and
the comparison of two runs (baselines, `xenlab compare`)."""

from __future__ import annotations

import json
import math
import os
import stat
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xenlab.errors import ParseError, UserInputError, XenlabError

SCHEMA = "xenlab-results/2"  # written; /2 adds each migration's guest (several per lab)
SCHEMAS_READ = ("xenlab-results/1", SCHEMA)  # compare, trend and the report read both


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
    guest: str = ""  # the guest's domain name (schema 1: its lab's one guest)
    concurrency: int = 1  # migrations running at once, this one among them

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
    checks: list[dict[str, str]] = field(default_factory=list)  # every check's outcome
    maintenance: list[dict[str, Any]] = field(default_factory=list)  # the maintenance windows

    def to_json(self) -> str:
        return json.dumps({
            "schema": SCHEMA, "run": self.run, "lab": self.lab, "hosts": self.hosts,
            "calibration": self.calibration,
            "migrations": [m.__dict__ for m in self.migrations],
            **({"faults": self.faults} if self.faults else {}),
            **({"checks": self.checks} if self.checks else {}),
            **({"maintenance": self.maintenance} if self.maintenance else {}),
        }, indent=2, default=str)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path


# -- reading a results.json a user names (`xenlab compare`, `xenlab report trend`,
# `--lab-baseline`): load_results reads the file (the only I/O, bounded), decode_results
# turns its bytes into text, parse_results its text into a Results. Each step refuses in
# one line naming the file, the key and what was expected (ResultsFileError).

MAX_RESULTS_BYTES = 16 * 1024 * 1024  # the saved 4-migration run is 6 kB: 1.5 kB a migration
MAX_DEPTH = 32  # xenlab nests a handful of levels; far deeper is not a results.json
LATEST_TIME = 253402300799.0  # 9999-12-31 23:59:59 UTC, the last second time.gmtime() shows

_MISSING = object()
_KeyPath = tuple[str | int, ...]


class ResultsFileError(UserInputError, ParseError):
    """A results.json a user named is not one: the file, the key path, what was expected and
    what was found, on one line. A UserInputError; also a ParseError, which is what reading
    results raised before."""

    def __init__(self, source: str, key: str, expected: str, found: str) -> None:
        self.source, self.key, self.expected, self.found = source, key, expected, found
        self.what, self.detail, self.text = source, f"{key}: expected {expected}", ""  # ParseError's
        name = source if source.isprintable() else json.dumps(source)
        XenlabError.__init__(self, f"{name}: {key}: expected {expected}, found {found}" if key
                             else f"{name}: expected {expected}, found {found}")


def load_results(path: str | Path, limit: int = MAX_RESULTS_BYTES) -> Results:
    """The results.json at `path`, read and checked; ResultsFileError if it is not one."""
    return decode_results(read_results_file(path, limit), str(path))


def read_results_file(path: str | Path, limit: int = MAX_RESULTS_BYTES) -> bytes:
    """The file's bytes, refusing a directory, an unreadable file and one of more than `limit`
    bytes before reading it (a pipe, `<(ssh host cat results.json)`, is read to limit + 1)."""
    source = str(path)
    try:
        with open(path, "rb") as stream:
            info = os.fstat(stream.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > limit:
                raise _too_big(source, limit, _size(info.st_size))
            data = stream.read(limit + 1)
    except IsADirectoryError:
        raise ResultsFileError(source, "", "a results.json file", "a directory") from None
    except (FileNotFoundError, NotADirectoryError):
        raise ResultsFileError(source, "", "a results.json file", "no such file") from None
    except PermissionError:
        raise ResultsFileError(source, "", "a readable file", "permission denied") from None
    except OSError as exc:
        raise ResultsFileError(source, "", "a readable file",
                               exc.strerror or type(exc).__name__) from None
    if len(data) > limit:
        raise _too_big(source, limit, f"more than {_size(limit)}")
    return data


def _size(n: int) -> str:
    return f"{n // 2**20} MiB" if n % 2**20 == 0 else f"{n / 2**20:.1f} MiB" if n >= 2**20 \
        else f"{n} bytes"


def _too_big(source: str, limit: int, found: str) -> ResultsFileError:
    return ResultsFileError(source, "", f"a results.json of at most {_size(limit)}", found)


def decode_results(data: bytes, source: str = "results.json") -> Results:
    """A results.json's bytes -> Results (pure): UTF-8 text (a BOM is allowed), not binary."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise ResultsFileError(source, "", "UTF-8 text", "UTF-16 (a byte-order mark)")
    nul = data.find(b"\0")
    if nul >= 0:
        raise ResultsFileError(source, f"offset {nul}", "JSON text", "binary data (a NUL byte)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ResultsFileError(source, f"offset {exc.start}", "UTF-8 text",
                               f"byte 0x{data[exc.start]:02x}") from None
    return parse_results(text, source)


def parse_results(text: str, source: str = "results.json") -> Results:
    """A results.json's text -> Results (pure). Refuses, naming `source` and the key path,
    anything xenlab does not write: not JSON, another schema, missing or unknown keys, values
    of the wrong type (a string or a bool for a number), NaN or Infinity, negative durations."""
    doc = _json_document(text, source)
    if not isinstance(doc, dict):
        raise ResultsFileError(source, "top level", "a JSON object", _show(doc))
    schema = doc.get("schema", _MISSING)
    if schema not in SCHEMAS_READ:
        raise ResultsFileError(source, "schema", " or ".join(json.dumps(s) for s in SCHEMAS_READ)
                               + " (a results.json of xenlab)", _show(schema))
    _check(_RESULTS, doc, (), source)
    # schema 1 knew one guest per lab: its migrations are that guest's
    first_guest = next((name for name, host in doc["lab"].get("hosts", {}).items()
                        if isinstance(host, dict) and host.get("role") == "guests"), "")
    migrations = []
    for i, m in enumerate(doc["migrations"]):
        if schema == SCHEMA and "guest" not in m:
            raise ResultsFileError(source, f"migrations[{i}].guest",
                                   f"the guest's name (schema {SCHEMA})", "nothing")
        if schema != SCHEMA:
            for key in ("guest", "concurrency"):
                if key in m:
                    raise ResultsFileError(source, f"migrations[{i}].{key}",
                                           f"no such key in schema {schema}", _show(m[key]))
            m = {**m, "guest": first_guest}
        if m["ended_at"] < m["started_at"]:
            raise ResultsFileError(source, f"migrations[{i}].ended_at",
                                   f"a time at or after started_at ({_show(m['started_at'])})",
                                   _show(m["ended_at"]))
        migrations.append(MigrationRecord(**m))
    return Results(lab=doc["lab"], hosts=doc["hosts"], calibration=doc["calibration"],
                   migrations=migrations, run=doc["run"], faults=doc.get("faults", []),
                   checks=doc.get("checks", []), maintenance=doc.get("maintenance", []))


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def _json_document(text: str, source: str) -> Any:
    if not text.strip():
        raise ResultsFileError(source, "", "a results.json document", "an empty file")
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise ResultsFileError(source, f"key {_show(exc.args[0])}", "each key once in its object",
                               "it twice") from None
    except RecursionError:
        raise ResultsFileError(source, "", f"JSON nested at most {MAX_DEPTH} levels deep",
                               "nesting too deep to read") from None
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        raise ResultsFileError(source, f"line {exc.lineno} column {exc.colno}", "a JSON document",
                               f"not JSON ({exc.msg}{': the text ends, truncated?' if cut else ''})"
                               ) from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise ResultsFileError(source, "", "a JSON document",
                               f"not JSON ({str(exc).split(':')[0]})") from None
    try:
        _check_values(doc, 0)
    except _Refused as exc:
        raise ResultsFileError(source, _key_path(tuple(reversed(exc.path))), exc.expected,
                               exc.found) from None
    return doc


class _Refused(Exception):
    """Raised deep in a document; the key path is gathered on the way back up."""

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(expected)
        self.expected, self.found = expected, found
        self.path: list[str | int] = []


def _check_values(value: Any, depth: int) -> None:
    """Anywhere in the document: strings without lone surrogates (a \\ud800 escape: the text
    cannot be written out again), finite numbers, at most MAX_DEPTH levels of nesting."""
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise _Refused("a finite number", _show(value))
    elif isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            raise _Refused(f"at most {MAX_DEPTH} levels of nesting", "deeper nesting")
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            try:
                if isinstance(key, str):
                    _check_text(key)
                _check_values(item, depth + 1)
            except _Refused as exc:
                exc.path.append(key)
                raise


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _Refused("UTF-8 text", f"a lone surrogate {_show(text[exc.start])}") from None


def _key_path(path: _KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("-", "_").isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{_show(part)}]"
    return out or "top level"


def _show(value: object) -> str:
    """A JSON value as the user wrote it, on one short line."""
    if value is _MISSING:
        return "no such key"
    if isinstance(value, dict):
        return f"an object of {len(value)} keys"
    if isinstance(value, list):
        return f"a list of {len(value)} items"
    shown = json.dumps(value)
    return shown if len(shown) <= 60 else shown[:56] + "...\"" if shown[0] == '"' \
        else shown[:57] + "..."


@dataclass(frozen=True)
class _Kind:
    """What one value in a results.json must be; `expected` says it when it is not."""

    expected: str
    accepts: Callable[[Any], bool] = lambda value: True
    null: bool = False
    fields: Mapping[str, _Kind] = field(default_factory=dict)  # an object's known keys ...
    required: frozenset[str] = frozenset()  # ... the ones it must have ...
    closed: bool = False  # ... and whether it may have others
    values: _Kind | None = None  # an object's values under other keys, a list's items


def _check(kind: _Kind, value: Any, path: _KeyPath, source: str) -> None:
    if value is None and kind.null:
        return
    if not kind.accepts(value):
        raise ResultsFileError(source, _key_path(path), kind.expected, _show(value))
    if isinstance(value, dict):
        for key, sub in kind.fields.items():
            if key in value:
                _check(sub, value[key], (*path, key), source)
            elif key in kind.required:
                raise ResultsFileError(source, _key_path((*path, key)), sub.expected,
                                       _show(_MISSING))
        for key, item in value.items():
            if key in kind.fields:
                continue
            if kind.closed:
                raise ResultsFileError(source, _key_path(path),
                                       "only the keys " + ", ".join(kind.fields), _show(key))
            if kind.values is not None:
                _check(kind.values, item, (*path, key), source)
    elif isinstance(value, list) and kind.values is not None:
        for i, item in enumerate(value):
            _check(kind.values, item, (*path, i), source)


def _is_number(value: Any, integer: bool, low: float | None, high: float | None) -> bool:
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        return False  # true and false are no numbers here, though Python counts them as ints
    try:
        number = float(value)
    except OverflowError:  # an integer of 400 digits
        return False
    return math.isfinite(number) and (low is None or number >= low) and \
        (high is None or number <= high)


def _number(expected: str, low: float | None = None, high: float | None = None, *,
            integer: bool = False, null: bool = False) -> _Kind:
    return _Kind(expected + (" or null" if null else ""),
                 lambda value: _is_number(value, integer, low, high), null)


def _object(fields: Mapping[str, _Kind] | None = None, *, required: tuple[str, ...] = (),
            closed: bool = False, null: bool = False, values: _Kind | None = None) -> _Kind:
    return _Kind("an object" + (" or null" if null else ""), lambda v: isinstance(v, dict), null,
                 dict(fields or {}), frozenset(required), closed, values)


def _list(items: _Kind | None = None, null: bool = False) -> _Kind:
    return _Kind("a list" + (" or null" if null else ""), lambda v: isinstance(v, list), null,
                 values=items)


_ANY = _Kind("any JSON value")
_TEXT = _Kind("a string", lambda v: isinstance(v, str))
_TEXT_OR_NULL = _Kind("a string or null", lambda v: isinstance(v, str), null=True)
_NAME = _Kind("a non-empty string", lambda v: isinstance(v, str) and bool(v.strip()))
_FLAG = _Kind("true or false", lambda v: isinstance(v, bool))
_TIME = _number("a Unix time in seconds (0 to the year 9999)", 0, LATEST_TIME)
_MS = _number("a number of ms >= 0", 0)
_MS_OR_NULL = _number("a number of ms >= 0", 0, null=True)
_COUNT = _number("an integer >= 0", 0, integer=True)
_PCT = _number("a percentage from 0 to 100", 0, 100)

_MIGRATION = _object({
    "id": _NAME, "scenario": _NAME, "round_trip": _number("an integer >= 1", 1, integer=True),
    "source": _NAME, "destination": _NAME, "status": _NAME,
    "started_at": _TIME, "ended_at": _TIME,
    "hypervisor": _object({
        "toolstack": _TEXT_OR_NULL, "total_time_ms": _MS_OR_NULL, "downtime_ms": _MS_OR_NULL,
        "setup_time_ms": _MS_OR_NULL, "wall_time_ms": _MS_OR_NULL,
        "bytes_transferred": _number("an integer >= 0", 0, integer=True, null=True),
        "switchover_bytes": _number("an integer >= 0", 0, integer=True, null=True),
        "bandwidth_mbps": _number("a rate in Mbit/s >= 0", 0, null=True),
        "transfer_bound_ms": _MS_OR_NULL,
        "error": _TEXT_OR_NULL, "note": _TEXT_OR_NULL, "memory_audit": _object(null=True),
        # xl: each progress event, in s after the command started
        "events_s": _object(null=True, values=_number("a number of s >= 0", 0))}),
    "network": _object({
        "interval_ms": _MS, "sent": _COUNT, "received": _COUNT, "lost": _COUNT, "loss_pct": _PCT,
        "longest_gap_ms": _MS, "downtime_ms": _MS,
        "gap_start": _number("a Unix time in seconds", 0, LATEST_TIME, null=True),
        "gap_end": _number("a Unix time in seconds", 0, LATEST_TIME, null=True),
        "rtt_min_ms": _MS_OR_NULL, "rtt_median_ms": _MS_OR_NULL, "rtt_p99_ms": _MS_OR_NULL,
        "rtt_max_ms": _MS_OR_NULL, "gap_open": _FLAG, "open_gap_ms": _MS_OR_NULL},
        null=True),
    "tcp": _object({"sent": _COUNT, "echoed": _COUNT, "in_order": _FLAG, "error": _TEXT,
                    "longest_stall_ms": _MS_OR_NULL, "stall_open": _FLAG}, null=True),
    "continuity": _list(_TEXT), "passed": _FLAG, "problems": _list(_TEXT),
    "timeline": _TEXT_OR_NULL, "guest": _TEXT,
    "concurrency": _number("an integer >= 1", 1, integer=True),
}, required=("id", "scenario", "round_trip", "source", "destination", "status", "started_at",
             "ended_at", "hypervisor", "network", "tcp", "continuity", "passed"), closed=True)

_RESULTS = _object({
    "schema": _TEXT,  # its value is checked first
    "run": _object({"started": _TIME, "finished": _TIME, "interval_ms": _MS,
                    "xenlab": _TEXT_OR_NULL, "prober": _TEXT_OR_NULL, "qemu": _TEXT_OR_NULL,
                    "faults": _list(), "calibration_attempts": _list(),
                    "verdict": _object({"certified": _FLAG, "ran": _COUNT,
                                        "failed": _list(_TEXT)},
                                       required=("certified", "ran", "failed"))}),
    "lab": _object({"name": _TEXT, "kind": _TEXT, "toolstack": _TEXT, "inventory": _TEXT_OR_NULL,
                    "inventory_sha256": _TEXT_OR_NULL,
                    "distribution": _TEXT_OR_NULL,
                    "limits": _object({"downtime_ms": _MS, "loss_pct": _PCT,
                                       "migration_timeout_s": _number("a number of s >= 0", 0)}),
                    "load": _object(), "hosts": _object()}),
    "hosts": _object(values=_object(values=_TEXT)),  # host -> fact -> value
    "calibration": _list(_object({
        "injected_ms": _MS, "measured_ms": _MS_OR_NULL,
        "error_ms": _number("a number of ms", null=True), "uncertainty_ms": _MS_OR_NULL,
        "tolerance_ms": _MS_OR_NULL, "within": _FLAG, "disturbances": _list()},
        required=("injected_ms", "measured_ms", "error_ms"))),
    "migrations": _list(_MIGRATION),
    "faults": _list(_object()),
    "maintenance": _list(_object()),  # the maintenance suite's windows (fixtures/maintenance.py)
    # every check: the report's matrix and the certificate's verdict (xenlab.report.matrix)
    "checks": _list(_object({"check": _NAME, "host": _TEXT, "variant": _TEXT,
                             "outcome": _Kind("passed, failed, skipped or error",
                                              lambda v: v in ("passed", "failed", "skipped",
                                                              "error")),
                             "message": _TEXT}, required=("check", "host", "outcome"),
                            closed=True)),
}, required=("schema", "run", "lab", "hosts", "calibration", "migrations"), closed=True)


@dataclass(frozen=True)
class Tolerance:
    downtime_factor: float = 0.5  # new median may exceed old by 50 % ...
    downtime_slack_ms: float = 20.0  # ... plus 20 ms (1 ms figures are noisy near zero)
    loss_slack_pct: float = 1.0


@dataclass(frozen=True)
class Comparison:
    scenario: str
    guest: str
    direction: str
    old_downtime_ms: float | None
    new_downtime_ms: float | None
    old_loss_pct: float | None
    new_loss_pct: float | None
    limit_ms: float | None
    regressed: bool
    reason: str


def _group(results: Results) -> dict[tuple[str, str, str], list[MigrationRecord]]:
    groups: dict[tuple[str, str, str], list[MigrationRecord]] = defaultdict(list)
    for m in results.migrations:
        if m.status == "completed" and m.network:
            groups[(m.scenario, m.guest, m.direction)].append(m)
    return groups


def _median(records: list[MigrationRecord], key: str) -> float | None:
    values = [float(r.network[key]) for r in records if r.network and r.network.get(key) is not None]
    return statistics.median(values) if values else None


def compare_results(old: Results, new: Results, tol: Tolerance = Tolerance()) -> list[Comparison]:
    """Per scenario, guest and direction: median network downtime against old x (1 + f) +
    slack, and median loss against old + slack. A group only one side has is reported, not
    judged (a guest one run did not have, a scenario it did not run)."""
    out = []
    old_groups, new_groups = _group(old), _group(new)
    for key in sorted(set(old_groups) | set(new_groups)):
        o, n = old_groups.get(key, []), new_groups.get(key, [])
        od, nd = _median(o, "downtime_ms"), _median(n, "downtime_ms")
        ol, nl = _median(o, "loss_pct"), _median(n, "loss_pct")
        if od is None or nd is None or ol is None or nl is None:
            out.append(Comparison(*key, od, nd, ol, nl, None, False,
                                  "only in the " + ("new" if od is None else "old") + " run"))
            continue
        limit = od * (1 + tol.downtime_factor) + tol.downtime_slack_ms
        reasons = []
        if nd > limit:
            reasons.append(f"downtime {nd:.1f} ms > {limit:.1f} ms allowed")
        if nl > ol + tol.loss_slack_pct:
            reasons.append(f"loss {nl:.2f} % > {ol:.2f} % + {tol.loss_slack_pct} %")
        out.append(Comparison(*key, od, nd, ol, nl, limit, bool(reasons),
                              "; ".join(reasons) or "within tolerance"))
    return out


def comparison_table(rows: list[Comparison]) -> str:
    def f(v: float | None, digits: int = 1) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    width = max([6, *(len(r.guest) + 2 for r in rows)])
    lines = [f"{'scenario':<14}{'guest':<{width}}{'direction':<34}{'downtime ms old':>16}"
             f"{'new':>9}{'limit':>9}{'loss % old':>12}{'new':>7}  verdict"]
    for r in rows:
        verdict = "REGRESSION: " + r.reason if r.regressed else r.reason
        lines.append(f"{r.scenario:<14}{r.guest:<{width}}{r.direction:<34}"
                     f"{f(r.old_downtime_ms):>16}"
                     f"{f(r.new_downtime_ms):>9}{f(r.limit_ms):>9}{f(r.old_loss_pct, 2):>12}"
                     f"{f(r.new_loss_pct, 2):>7}  {verdict}")
    return "\n".join(lines)
