"""Hostile values for every --lab-* option and its XENLAB_* variable, through pytester: each
is a single usage error naming the option (or variable) and what was expected, or is
accepted; never a traceback, an INTERNALERROR, or a file written outside the test's
directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzzcount import CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).parents[2]
GOOD = (REPO / "inventories/embedded.yml").read_text()
OPTION_FUZZ = settings(max_examples=60, deadline=None,
                       suppress_health_check=[HealthCheck.function_scoped_fixture,
                                              HealthCheck.too_slow])

# (option, environment variable or None, a hostile value, what the error must name)
HOSTILE = [
    ("--lab-interval", "XENLAB_INTERVAL_MS", "0", "expected 0.1 to 1000 ms"),
    ("--lab-interval", "XENLAB_INTERVAL_MS", "nan", "expected"),
    ("--lab-interval", "XENLAB_INTERVAL_MS", "1e999", "expected"),
    ("--lab-roundtrips", "XENLAB_ROUNDTRIPS", "0", "expected 1 to 1000"),
    ("--lab-roundtrips", "XENLAB_ROUNDTRIPS", "99999999999", "expected 1 to 1000"),
    ("--lab-roundtrips", "XENLAB_ROUNDTRIPS", "three", "XENLAB_ROUNDTRIPS"),
    ("--lab-tcp-interval", "XENLAB_TCP_INTERVAL_MS", "-5", "expected 1 to 10000 ms"),
    ("--lab-tcp-interval", "XENLAB_TCP_INTERVAL_MS", "0", "expected 1 to 10000 ms"),
    ("--lab-scenarios", "XENLAB_SCENARIOS", "idle,../../etc", "unknown scenario"),
    ("--lab-scenarios", "XENLAB_SCENARIOS", ",", "unknown scenario"),
    ("--lab-security", "XENLAB_SECURITY", "maybe", "expected one of warn, fail"),
    ("--lab-pattern", "XENLAB_PATTERN", "star", "expected one of ring, matrix"),
    ("--lab-prober", "XENLAB_PROBER", "fping", "expected one of xenlab, ping"),
    ("--lab-evacuation", "XENLAB_EVACUATION", "0", "expected sequential or a number"),
    ("--lab-evacuation", "XENLAB_EVACUATION", "all", "expected sequential or a number"),
    ("--lab-root", "XENLAB_LAB_ROOT", "lab.yml", "expected a directory, found a file"),
    ("--lab-root", "XENLAB_LAB_ROOT", "", "expected a path"),
    ("--lab-cache", "XENLAB_CACHE", "lab.yml", "expected a directory, found a file"),
    ("--lab-results", "XENLAB_RESULTS", ".", "found a directory"),
    ("--lab-results", "XENLAB_RESULTS", "lab.yml/results.json", "is a file, not a directory"),
    ("--lab-report", "XENLAB_REPORT", ".", "found a directory"),
    ("--lab-baseline", "XENLAB_BASELINE", "nowhere.json", "--lab-baseline"),
    ("--lab-baseline", "XENLAB_BASELINE", "lab.yml", "--lab-baseline"),
    ("--lab-baseline", "XENLAB_BASELINE", "binary.json", "--lab-baseline"),
    ("--lab-inventory", "XENLAB_INVENTORY", "binary.json", "bad lab inventory"),
    ("--lab-inventory", "XENLAB_INVENTORY", ".", "bad lab inventory"),
    ("--lab-fault", "XENLAB_FAULTS", "../../etc", "unknown fault"),
    ("--lab-allow-wipe", None, "/etc/passwd", "expected a device path under /dev/"),
    ("--lab-allow-wipe", None, "/dev/../etc/passwd", "expected a device path under /dev/"),
    ("--lab-security-finding", None, "relocation-open=loud", "expected NAME=warn|fail"),
    ("--lab-qemu", "XENLAB_QEMU", "\x07", "expected a path or name"),
    (None, "XENLAB_KEEP", "perhaps", "XENLAB_KEEP"),
    (None, "XENLAB_MEMORY_AUDIT", "2", "XENLAB_MEMORY_AUDIT"),
    (None, "XENLAB_FAULT_SUITE", "yes please", "XENLAB_FAULT_SUITE"),
    (None, "XENLAB_STORM", "storm", "XENLAB_STORM"),
]


def _prepare(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", lab=GOOD)
    (pytester.path / "binary.json").write_bytes(b"\x00\xff\xfe" * 100)
    pytester.makepyfile("def test_x():\n    pass\n")


def _clean(result: pytest.RunResult) -> str:
    out = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    return out


@pytest.mark.parametrize(("option", "variable", "value", "expected"), HOSTILE)
def test_a_hostile_option_or_variable_is_one_usage_error(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, option: str | None,
        variable: str | None, value: str, expected: str) -> None:
    _prepare(pytester)
    monkeypatch.setenv("XENLAB_INVENTORY", "lab.yml")
    ways = []
    if option is not None:
        ways.append(([f"{option}={value}"], None))
    if variable is not None and "\0" not in value:
        ways.append(([], variable))
    for argv, env in ways:
        if env is not None:
            monkeypatch.setenv(env, value)
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *argv)
        out = _clean(result)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, out
        named = variable if env is not None else option
        assert named is not None and named in out, out
        # ours names what was expected; argparse's own (a type it cannot convert) too
        assert expected in out or f"argument {option}: invalid" in out, out
        assert "passed" not in out  # refused before anything ran
        if env is not None:
            monkeypatch.delenv(env)
    CASES["hostile --lab-* values"] += len(ways)


OPTIONS = ["--lab-interval", "--lab-roundtrips", "--lab-tcp-interval", "--lab-scenarios",
           "--lab-security", "--lab-pattern", "--lab-prober", "--lab-root", "--lab-cache",
           "--lab-results", "--lab-report", "--lab-baseline", "--lab-inventory",
           "--lab-fault", "--lab-allow-wipe", "--lab-security-finding", "--lab-qemu",
           "--lab-evacuation"]


@given(option=st.sampled_from(OPTIONS),
       value=st.one_of(st.text(max_size=30), st.sampled_from(
           ["", "..", "../../etc", "/", "-1", "nan", "inf", "1e308", "0", "\udcff", "a" * 4000,
            "lab.yml", "binary.json", "none"])))
@OPTION_FUZZ
def test_any_option_value_is_accepted_or_one_usage_error(pytester: pytest.Pytester,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         option: str, value: str) -> None:
    CASES["fuzzed --lab-* values"] += 1
    _prepare(pytester)
    monkeypatch.setenv("XENLAB_INVENTORY", "lab.yml")
    before = sorted(p.name for p in pytester.path.iterdir())
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q",
                                          f"{option}={value}")
    out = _clean(result)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.USAGE_ERROR), out
    if result.ret == pytest.ExitCode.USAGE_ERROR:
        assert option in out or "argument" in out, out
    # nothing was written beside the test files (a collect-only run builds and reports nothing)
    assert sorted(p.name for p in pytester.path.iterdir()) == before


def test_report_none_writes_no_report_at_all(pytester: pytest.Pytester,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """'none' means no report: neither the HTML nor the junit.xml that goes with it."""
    pytester.makefile(".yml", lab=GOOD)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest('pytest_plugins = ["fixtures.reporting"]')
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites" / "test_x.py").write_text("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lab-inventory",
                                           "lab.yml", "--lab-report", "none", "suites")
    _clean(result)
    assert not list(pytester.path.rglob("*.html")) and not list(pytester.path.rglob("junit.xml"))
