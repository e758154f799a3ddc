"""results.json files a user names (`xenlab compare`, `xenlab report trend`, `--lab-baseline`):
whatever they hold, a UserInputError in one line naming the file, the key and what was
expected; and the saved real results still load."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from xenlab.errors import ParseError, UserInputError, XenlabError
from xenlab.measure import results as results_module
from xenlab.measure.results import (
    MAX_RESULTS_BYTES,
    Results,
    ResultsFileError,
    compare_results,
    decode_results,
    load_results,
    parse_results,
)
from xenlab.report.trend import run_label

DATA = Path(__file__).parents[1] / "data" / "results"
REAL = sorted(DATA.glob("*.json"))
VALID = json.loads((DATA / "embedded-run.json").read_text())


def refused(path: Path, *names: str) -> str:
    """load_results(path) refuses: a UserInputError (and a XenlabError), one line, starting
    with the file's name and naming every one of `names`. Returns the message."""
    __tracebackhide__ = True
    with pytest.raises(UserInputError) as info:
        load_results(path)
    assert isinstance(info.value, XenlabError) and isinstance(info.value, ResultsFileError)
    message = str(info.value)
    assert "\n" not in message, f"not one line: {message!r}"
    assert message.startswith(f"{path}: "), f"does not start with the file: {message!r}"
    assert "expected " in message and "found " in message, message
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"
    return message


def doctored(tmp_path: Path, change: Callable[[dict[str, Any]], object],
             name: str = "doctored.json") -> Path:
    doc = copy.deepcopy(VALID)
    change(doc)
    path = tmp_path / name
    path.write_text(json.dumps(doc))  # NaN and Infinity written as JSON's extensions
    return path


def written(tmp_path: Path, content: str | bytes, name: str = "results.json") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


# -- the real files still load ---------------------------------------------------------------

@pytest.mark.parametrize("path", REAL, ids=[p.name for p in REAL])
def test_saved_results_load(path: Path) -> None:
    results = load_results(path)
    assert isinstance(results, Results) and results.migrations
    assert parse_results(results.to_json(), str(path)) == results
    assert decode_results(path.read_bytes(), str(path)) == results
    assert all(not r.regressed for r in compare_results(results, results))
    assert "?" not in run_label(results, str(path))


def test_a_byte_order_mark_and_no_faults_key_are_fine(tmp_path: Path) -> None:
    assert "faults" not in VALID
    path = written(tmp_path, b"\xef\xbb\xbf" + (DATA / "embedded-run.json").read_bytes())
    assert load_results(path).migrations == load_results(DATA / "embedded-run.json").migrations


def test_still_a_parse_error_for_older_callers() -> None:
    with pytest.raises(ParseError, match="schema"):
        parse_results('{"schema": "other/9"}')


# -- the file itself -----------------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "nope.json", "no such file")
    refused(tmp_path / "nope" / "deeper.json", "no such file")


def test_a_directory(tmp_path: Path) -> None:
    refused(tmp_path, "a directory")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = written(tmp_path, json.dumps(VALID))
    if os.geteuid() != 0:  # root reads a mode 000 file all the same
        path.chmod(0)
        refused(path, "a readable file", "permission denied")
        path.chmod(0o644)

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(results_module, "open", denied, raising=False)
    refused(path, "a readable file", "permission denied")

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(results_module, "open", broken, raising=False)
    refused(path, "a readable file", "Input/output error")


def test_huge_file_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as f:
        f.truncate(64 * 2**20)  # sparse: 64 MiB that take no room
    reads: list[int] = []
    real_open = open

    class Counting:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.stream = real_open(*args, **kwargs)

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.stream.close()

        def fileno(self) -> int:
            return int(self.stream.fileno())

        def read(self, n: int = -1) -> bytes:
            reads.append(n)
            return bytes(self.stream.read(n))

    monkeypatch.setattr(results_module, "open", Counting, raising=False)
    message = refused(path, "at most 16 MiB", "64 MiB")
    assert not reads, "the file was read before its size was checked"
    assert load_results(DATA / "embedded-run.json").migrations and reads == [MAX_RESULTS_BYTES + 1]
    assert MAX_RESULTS_BYTES == 16 * 2**20 and "results.json" in message


def test_endless_stream_read_only_to_the_limit() -> None:
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    refused(Path("/dev/zero"), "more than 16 MiB")


def test_a_lower_limit(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="at most 1000 bytes"):
        load_results(DATA / "embedded-run.json", limit=1000)


def test_empty_and_blank_files(tmp_path: Path) -> None:
    refused(written(tmp_path, "", "empty.json"), "an empty file")
    refused(written(tmp_path, " \n\t\n", "blank.json"), "an empty file")


def test_binary_file(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    refused(written(tmp_path, png, "plot.png"), "offset 8", "binary data")
    refused(written(tmp_path, b"\xff\xfe" + '{"schema": 1}'.encode("utf-16-le"), "ps.json"),
            "UTF-8 text", "UTF-16")


def test_not_utf8(tmp_path: Path) -> None:
    latin1 = json.dumps({**VALID, "lab": {"name": "Lab Çédille"}}, ensure_ascii=False)
    message = refused(written(tmp_path, latin1.encode("latin-1")), "UTF-8 text", "byte 0xc7")
    assert f"offset {latin1.index('Ç')}" in message


# -- the JSON ------------------------------------------------------------------------------------

def test_not_json(tmp_path: Path) -> None:
    refused(written(tmp_path, "<html><body>404</body></html>"), "line 1 column 1", "not JSON")
    refused(written(tmp_path, "name: yaml\n"), "not JSON")


def test_truncated_json(tmp_path: Path) -> None:
    text = json.dumps(VALID, indent=2)
    for cut in (1, len(text) // 3, len(text) // 2, len(text) - 1):
        refused(written(tmp_path, text[:cut]), "line ", "not JSON", "truncated?")


def test_deeply_nested_json(tmp_path: Path) -> None:
    refused(written(tmp_path, "[" * 100_000 + "]" * 100_000), "nested at most 32 levels")
    deep: Any = 1
    for _ in range(200):  # deep, though not deep enough for Python's recursion limit
        deep = {"x": deep}
    message = refused(doctored(tmp_path, lambda d: d["lab"].__setitem__("load", deep)),
                      "lab.load.x.x", "at most 32 levels of nesting")
    assert len(message) < 400


def test_huge_integer(tmp_path: Path) -> None:
    refused(written(tmp_path, '{"schema": ' + "9" * 5000 + "}"), "not JSON")
    refused(doctored(tmp_path, lambda d: d["migrations"][0]["hypervisor"].__setitem__(
        "bytes_transferred", 10**400)), "migrations[0].hypervisor.bytes_transferred", "10000")


def test_duplicate_keys(tmp_path: Path) -> None:
    refused(written(tmp_path, '{"schema": "xenlab-results/1", "schema": "other/2"}'),
            'key "schema"', "each key once")


def test_lone_surrogate(tmp_path: Path) -> None:
    text = json.dumps(VALID).replace('"scenario": "idle"', '"scenario": "idle\\ud800"', 1)
    refused(written(tmp_path, text), "migrations[0].scenario", "UTF-8 text", "\\ud800")


# -- the schema ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "names"), [
    ("[]", ("top level", "a JSON object", "a list of 0 items")),
    ('"results"', ("top level", "a JSON object", '"results"')),
    ("42", ("top level", "42")),
    ("null", ("top level", "null")),
    ("{}", ("schema", '"xenlab-results/1"', "no such key")),
    ('{"name": "some-package", "version": "1.0"}', ("schema", "no such key")),
    ('{"schema": "xenlab-results/3"}', ("schema", '"xenlab-results/1" or "xenlab-results/2"',
                                        '"xenlab-results/3"')),
    ('{"schema": 1}', ("schema", "found 1")),
])
def test_wrong_top_level_and_schema(tmp_path: Path, content: str, names: tuple[str, ...]) -> None:
    refused(written(tmp_path, content), *names)


@pytest.mark.parametrize("key", ["run", "lab", "hosts", "calibration", "migrations"])
def test_missing_top_level_key(tmp_path: Path, key: str) -> None:
    refused(doctored(tmp_path, lambda d: d.pop(key)), key, "no such key")


def test_unknown_top_level_key(tmp_path: Path) -> None:
    refused(doctored(tmp_path, lambda d: d.__setitem__("migration", [])),
            "top level", "only the keys", '"migration"')


@pytest.mark.parametrize("key", ["id", "scenario", "round_trip", "source", "destination",
                                 "status", "started_at", "ended_at", "hypervisor", "network",
                                 "tcp", "continuity", "passed"])
def test_missing_migration_key(tmp_path: Path, key: str) -> None:
    refused(doctored(tmp_path, lambda d: d["migrations"][2].pop(key)),
            f"migrations[2].{key}", "no such key")


def set_value(*path: str | int, value: object) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        node: Any = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return change


WRONG = [
    # (path, value, what the message says was expected)
    (("migrations", 0, "network", "downtime_ms"), "65.5", "a number of ms >= 0"),
    (("migrations", 0, "network", "downtime_ms"), float("nan"), "a finite number"),
    (("migrations", 0, "network", "downtime_ms"), float("inf"), "a finite number"),
    (("migrations", 0, "network", "downtime_ms"), float("-inf"), "a finite number"),
    (("migrations", 0, "network", "downtime_ms"), -1.5, "a number of ms >= 0"),
    (("migrations", 0, "network", "downtime_ms"), True, "a number of ms >= 0"),
    (("migrations", 0, "network", "downtime_ms"), None, "a number of ms >= 0"),
    (("migrations", 0, "network", "downtime_ms"), [65.5], "a number of ms >= 0"),
    (("migrations", 0, "network", "loss_pct"), 101, "a percentage from 0 to 100"),
    (("migrations", 0, "network", "lost"), 1.5, "an integer >= 0"),
    (("migrations", 0, "network", "sent"), False, "an integer >= 0"),
    (("migrations", 0, "network", "gap_start"), "yesterday", "a Unix time"),
    (("migrations", 0, "network"), [], "an object or null"),
    (("migrations", 0, "hypervisor", "total_time_ms"), "813", "a number of ms >= 0 or null"),
    (("migrations", 0, "hypervisor", "downtime_ms"), -8.0, "a number of ms >= 0 or null"),
    (("migrations", 0, "hypervisor", "bytes_transferred"), 1.5, "an integer >= 0 or null"),
    (("migrations", 0, "hypervisor"), None, "an object"),
    (("migrations", 0, "tcp", "in_order"), 1, "true or false"),
    (("migrations", 0, "tcp", "longest_stall_ms"), "230", "a number of ms >= 0 or null"),
    (("migrations", 0, "round_trip"), 0, "an integer >= 1"),
    (("migrations", 0, "round_trip"), True, "an integer >= 1"),
    (("migrations", 0, "round_trip"), 1.0, "an integer >= 1"),
    (("migrations", 0, "round_trip"), "1", "an integer >= 1"),
    (("migrations", 0, "started_at"), -1, "a Unix time in seconds"),
    (("migrations", 0, "started_at"), 1e300, "a Unix time in seconds"),
    (("migrations", 0, "status"), "", "a non-empty string"),
    (("migrations", 0, "scenario"), 7, "a non-empty string"),
    (("migrations", 0, "passed"), "yes", "true or false"),
    (("migrations", 0, "passed"), 1, "true or false"),
    (("migrations", 0, "continuity"), "none", "a list"),
    (("migrations", 0, "continuity"), [1], "a string"),
    (("migrations", 0, "problems"), [None], "a string"),
    (("migrations", 0, "timeline"), 3, "a string or null"),
    (("migrations", 0), "idle", "an object"),
    (("migrations",), {}, "a list"),
    (("hosts",), [], "an object"),
    (("hosts", "xen_storage"), "Debian", "an object"),
    (("hosts", "xen_storage", "cpus"), 2, "a string"),
    (("run",), None, "an object"),
    (("run", "started"), "2026-11-26", "a Unix time in seconds"),
    (("run", "started"), 1e300, "a Unix time in seconds"),
    (("run", "interval_ms"), -1, "a number of ms >= 0"),
    (("lab",), "embedded", "an object"),
    (("lab", "name"), None, "a string"),
    (("lab", "limits", "downtime_ms"), "1s", "a number of ms >= 0"),
    (("calibration",), [{"injected_ms": 50}], "a number of ms >= 0 or null"),
    (("calibration",), [{"injected_ms": "50", "measured_ms": 50, "error_ms": 0}],
     "a number of ms >= 0"),
    (("calibration",), [7], "an object"),
    (("faults",), [7], "an object"),
    (("faults",), {}, "a list"),
]


def _key(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


@pytest.mark.parametrize(("path", "value", "expected"), WRONG,
                         ids=[f"{_key(p)}={v!r}" for p, v, _ in WRONG])
def test_wrong_values(tmp_path: Path, path: tuple[str | int, ...], value: object,
                      expected: str) -> None:
    message = refused(doctored(tmp_path, set_value(*path, value=value)), f"expected {expected}")
    key = _key(path)
    if path[0] == "calibration":
        key = "calibration[0]"
    assert f": {key}" in message, f"{key} not in {message!r}"


def test_unknown_migration_key(tmp_path: Path) -> None:
    refused(doctored(tmp_path, set_value("migrations", 3, "downtime_ms", value=5)),
            "migrations[3]", "only the keys id, scenario", '"downtime_ms"')


def test_negative_duration(tmp_path: Path) -> None:
    m = VALID["migrations"][1]
    refused(doctored(tmp_path, set_value("migrations", 1, "ended_at",
                                         value=m["started_at"] - 10)),
            "migrations[1].ended_at", "at or after started_at")


def test_free_form_sections_keep_other_keys(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["lab"]["colour"] = "blue"
        doc["run"]["note"] = {"any": [1, "thing"]}
        doc["migrations"][0]["hypervisor"]["extra"] = [1, 2]
        doc["migrations"][0]["network"] = None
        doc["faults"] = [{"fault": "link-cut", "problems": []}]

    results = load_results(doctored(tmp_path, change))
    assert results.lab["colour"] == "blue" and results.migrations[0].network is None
    assert results.faults == [{"fault": "link-cut", "problems": []}]


def test_odd_file_and_key_names_stay_on_one_line(tmp_path: Path) -> None:
    path = doctored(tmp_path, set_value("hosts", "host\nname", value={"cpu": 1}),
                    name="odd\nname.json")
    with pytest.raises(UserInputError) as info:
        load_results(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith('"') and "odd\\nname.json" in message
    assert 'hosts["host\\nname"].cpu: expected a string, found 1' in message


# -- the commands that read them -----------------------------------------------------------------

def test_compare_and_trend_commands_refuse_in_one_line(tmp_path: Path) -> None:
    bad = doctored(tmp_path, set_value("migrations", 0, "network", "loss_pct", value="0.4"))
    good = str(DATA / "embedded-run.json")
    for args in (["compare", good, str(bad)],
                 ["report", "trend", good, str(bad), "-o", str(tmp_path / "trend.html")]):
        out = subprocess.run([sys.executable, "-m", "xenlab.cli", *args],
                             capture_output=True, text=True)
        assert out.returncode == 2, out
        assert out.stderr.strip().splitlines() == [
            f"xenlab: {bad}: migrations[0].network.loss_pct: expected a percentage from 0 "
            'to 100, found "0.4"'], out.stderr
    assert not (tmp_path / "trend.html").exists()


# -- schema 2 (several guests) and schema 1 read alike ------------------------------------------

def test_schema_1_is_read_with_its_one_guest_named() -> None:
    old = load_results(DATA / "embedded-run.json")
    assert VALID["schema"] == "xenlab-results/1"
    assert {m.guest for m in old.migrations} == {"vm1"}  # the lab's one guest, from lab.hosts


def test_schema_2_holds_each_guests_migrations() -> None:
    new = load_results(DATA / "embedded-guests-run.json")
    assert new.lab["guests"] == ["vm1", "vm2", "vm3"]
    moved = sorted((m.scenario, m.guest) for m in new.migrations
                   if m.scenario in ("evacuation", "return"))
    assert moved == sorted((s, g) for s in ("evacuation", "return")
                           for g in ("vm1", "vm2", "vm3"))
    several = [m for m in new.migrations if m.guest != "vm1" or m.scenario != "idle"]
    assert all(m.id.startswith(f"{m.scenario}-{m.guest}-rt1-") for m in several)
    storm = [m for m in new.migrations if m.scenario.startswith("storm-")]
    assert {m.concurrency for m in storm} == {1, 2, 3}
    assert all(m.concurrency == 2 for m in new.migrations if m.scenario == "evacuation"
               and m.guest in ("vm1", "vm2"))  # the inventory's two at a time


def test_compare_reads_one_schema_against_the_other() -> None:
    from xenlab.measure.results import compare_results

    old = load_results(DATA / "embedded-maintenance-run.json")  # schema 1
    new = load_results(DATA / "embedded-guests-run.json")  # schema 2
    rows = compare_results(old, new)
    assert {(r.scenario, r.guest, r.direction) for r in rows} >= {
        ("evacuation", "vm1", "xen_resource_1->xen_resource_2")}, rows
    # the guests schema 1 did not have: reported, not judged
    vm3 = [r for r in rows if r.guest == "vm3"]
    assert vm3 and all(not r.regressed and r.reason == "only in the new run" for r in vm3)


def test_compare_judges_each_guest_on_its_own() -> None:
    """One guest's downtime tripled while two others kept theirs: the median over all
    three would hide it; the guest's own row says so."""
    import dataclasses

    from xenlab.measure.results import compare_results

    old = load_results(DATA / "embedded-guests-run.json")
    slower = [dataclasses.replace(m, network={**m.network, "downtime_ms": 3 * m.network[
        "downtime_ms"]}) if m.guest == "vm2" and m.network else m for m in old.migrations]
    rows = compare_results(old, dataclasses.replace(old, migrations=slower))
    regressed = {(r.scenario, r.guest) for r in rows if r.regressed}
    assert regressed and {g for _, g in regressed} == {"vm2"}, rows
    assert ("evacuation", "vm2") in regressed
    assert all(not r.regressed for r in rows if r.guest in ("vm1", "vm3"))


def test_each_schema_has_its_own_keys(tmp_path: Path) -> None:
    text = (DATA / "embedded-guests-run.json").read_text()
    doc = json.loads(text)
    del doc["migrations"][2]["guest"]
    refused(written(tmp_path, json.dumps(doc)), "migrations[2].guest", "xenlab-results/2")
    refused(doctored(tmp_path, lambda d: d["migrations"][0].__setitem__("guest", "vm1")),
            "migrations[0].guest", "no such key in schema xenlab-results/1")
