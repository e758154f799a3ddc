"""results.json files a user names, fuzzed: raw bytes, and the saved real run with keys
dropped, values swapped for others of another type, and its text cut short. load_results
returns a Results the comparison can use, or raises ResultsFileError (a UserInputError) in
one line naming the file; never anything else."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from fuzzcount import CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xenlab.errors import UserInputError, XenlabError
from xenlab.measure.results import Results, ResultsFileError, compare_results, load_results
from xenlab.report.certificate import certificate_html
from xenlab.report.matrix import CheckOutcome, build_matrix
from xenlab.report.trend import run_label, trend_html

REAL = Path(__file__).parents[1] / "data" / "results" / "embedded-run.json"
CHECKS = [{"check": "test_aoe_driver_loaded", "host": "xen_resource_1", "variant": "",
           "outcome": "passed", "message": ""},
          {"check": "test_live_migration", "host": "", "variant": "idle-rt1-a",
           "outcome": "failed", "message": "downtime 1500 ms > limit 1000 ms"},
          {"check": "test_xl_ssh_transport", "host": "xen_resource_2", "variant": "",
           "outcome": "skipped", "message": "needs xl"}]
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one file every case is written to (module-scoped: hypothesis reuses it)."""
    return tmp_path_factory.mktemp("fuzz") / "results.json"


def loads_or_refuses(name: str, path: Path, content: bytes) -> None:
    """load_results gives a Results that compare_results and run_label take, or a
    ResultsFileError of one line that starts with the file's name."""
    CASES[name] += 1
    path.write_bytes(content)
    try:
        results = load_results(path)
    except XenlabError as exc:
        assert isinstance(exc, UserInputError) and isinstance(exc, ResultsFileError), repr(exc)
        message = str(exc)
        assert message.startswith(f"{path}: ") and "expected " in message, message
        assert "\n" not in message, f"not one line: {message!r}"
        return
    assert isinstance(results, Results)
    compare_results(results, results)
    run_label(results, str(path))
    # what reads an archived run: the certificate, the trend report, the check matrix
    assert "xenlab certificate" in certificate_html(results, "0" * 64, str(path))
    trend_html([(str(path), results)])
    build_matrix((CheckOutcome.from_dict(c) for c in results.checks), ())
    for m in results.migrations:
        assert m.ended_at >= m.started_at
        for key in ("downtime_ms", "loss_pct"):
            value = (m.network or {}).get(key)
            assert value is None or math.isfinite(float(value))


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300),
    st.floats(), st.text(max_size=12), st.sampled_from(["12.5", "NaN", "", "\ud800"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def _places(node: Any) -> list[tuple[Any, str | int]]:
    """Every (container, key) in a document, so that a change lands anywhere alike."""
    keys = list(node) if isinstance(node, dict) else range(len(node))
    out = []
    for key in keys:
        out.append((node, key))
        if isinstance(node[key], dict | list):
            out.extend(_places(node[key]))
    return out


@st.composite
def mutated_document(draw: st.DrawFn) -> bytes:
    """The real run with 1 to 4 changes anywhere: a key dropped, a value of another type
    (NaN, a string for a number, a bool, a list...), a value nested very deep; then its text
    perhaps cut short (or, unescaped, not UTF-8)."""
    doc = json.loads(REAL.read_text())
    doc["checks"] = copy.deepcopy(CHECKS)  # what a run of this xenlab adds: every check, the verdict
    doc["run"]["verdict"] = {"certified": False, "ran": 2, "failed": ["suites/x.py::test_y"]}
    doc["lab"]["inventory_sha256"] = "0" * 64
    for _ in range(draw(st.integers(1, 4))):
        places = _places(doc)
        if not places:
            break
        node, key = draw(st.sampled_from(places))
        action = draw(st.sampled_from(["drop", "swap", "swap", "nest"]))
        if action == "drop":
            del node[key]
        elif action == "swap":
            node[key] = draw(VALUES)
        else:
            for _ in range(draw(st.integers(20, 40))):
                node[key] = [node[key]]
    text = json.dumps(doc, indent=draw(st.sampled_from([None, 2])),
                      ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 4)) == 0:
        text = text[: draw(st.integers(1, len(text) - 1))]
    return text.encode("utf-8", "surrogatepass")  # a raw lone surrogate: not UTF-8


@FUZZ
@given(st.one_of(st.binary(max_size=300),
                 st.binary(max_size=60).map(lambda junk: REAL.read_bytes()[:200] + junk)))
def test_results_file_bytes(target: Path, content: bytes) -> None:
    loads_or_refuses("results file (bytes)", target, content)


@FUZZ
@given(mutated_document())
def test_results_file_mutated(target: Path, content: bytes) -> None:
    loads_or_refuses("results file (mutated JSON)", target, content)
