"""Hostile argv into the `xenlab` console script, in process: every case ends with exit 0, 1
or 2, one line of error at most, no traceback, and the decoys around the lab root (a file
outside it, a lab directory without a journal, a symlink to a directory holding a journal)
are all still there afterwards. Namespaces are looked up under a prefix of this test's own,
so a fuzzed name can never reach a real lab's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzzcount import CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xenlab import cli
from xenlab.lab import journal as jr
from xenlab.report import certificate

REPO = Path(__file__).parents[2]
RESULTS = sorted((REPO / "tests" / "data" / "results").glob("*.json"))
XEN_INVENTORY = REPO / "inventories" / "embedded-xen.yml"
CLI_FUZZ = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

HOSTILE = ["", ".", "..", "../../etc", "/", "/etc", "/etc/passwd", "a" * 5000, "-", "--",
           "--lab", "-h", "\udcff\udcfe", "é", "a\nb", "nan", "inf", "-1", "1e999", "0",
           "lab.json", "decoy", "linked", "embedded", "x" * 17, "a--b", "a-", "9999999999m",
           "1ms", "0.00001ms", "1e3", " ", "\t", "%s%s%n", "$(id)", "`id`", "; rm -rf /"]

# every subcommand with the places where a user types a value (ARG stands for one)
TEMPLATES = [
    ["lab", "down", "--lab", "ARG", "--root", "ROOT"],
    ["lab", "down", "--lab", "ARG", "--root", "ROOT", "--dry-run"],
    ["lab", "down", "--lab", "ARG", "--root", "ROOT", "--force"],
    ["lab", "down", "--inventory", "ARG", "--root", "ROOT"],
    ["lab", "down", "--lab", "decoy", "--root", "ARG", "--dry-run"],
    ["lab", "list", "--root", "ARG"],
    ["lab", "provision", "--inventory", "ARG", "--root", "ROOT"],
    ["lab", "power", "off", "ARG", "--root", "ROOT"],
    ["lab", "power", "on", "xen_resource_1", "--inventory", "ARG", "--root", "ROOT"],
    ["lab", "power", "ARG", "xen_resource_1", "--root", "ROOT"],
    ["lab", "power", "off", "ARG", "--inventory", "XENINV", "--root", "ROOT"],
    ["lab", "power", "on", "xen_resource_1", "--inventory", "XENINV", "--root", "ARG"],
    ["lab", "ARG"],
    ["ARG"],
    ["aoe-check", "ARG"],
    ["aoe-check", "FILE", "--expect-mac", "ARG"],
    ["compare", "ARG", "FILE"],
    ["compare", "GOOD", "FILE"],
    ["compare", "GOOD", "GOOD", "--factor", "ARG"],
    ["compare", "GOOD", "GOOD", "--slack-ms", "ARG"],
    ["compare", "GOOD", "GOOD", "--loss-slack", "ARG"],
    ["report", "trend", "FILE", "-o", "out/trend.html"],
    ["report", "trend", "ARG", "-o", "out/trend.html"],
    ["report", "trend", "GOOD", "-o", "OUT"],
    ["report", "trend", "GOOD", "-o", "outside/precious"],
    ["report", "certificate", "ARG"],
    ["report", "certificate", "FILE", "-o", "out/certificate.pdf"],
    ["report", "certificate", "GOOD", "-o", "ARG"],
    ["report", "certificate", "GOOD", "-o", "outside/precious"],
    ["probe", "999.1.1.1", "--duration", "ARG"],
    ["probe", "999.1.1.1", "--interval", "ARG"],
    ["probe", "198.18.0.1", "--from", "ARG", "--root", "ROOT"],
]


@pytest.fixture
def sandbox(tmp_path_factory: pytest.TempPathFactory,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """cwd, lab root, control and lock roots in a temporary directory, with decoys."""
    base = tmp_path_factory.mktemp("cli")
    root = base / "labs"
    (root / "decoy").mkdir(parents=True)
    (root / "decoy" / "precious").write_text("not a lab's")
    (base / "outside").mkdir()
    (base / "outside" / "precious").write_text("not a lab's")
    journal = jr.Journal.create("linked", base / "outside" / "linked")
    journal.owner_pid, journal.owner_start = 999_999, 1
    journal.save()
    (root / "linked").symlink_to(base / "outside" / "linked", target_is_directory=True)
    (base / "out").mkdir()
    monkeypatch.chdir(base)
    monkeypatch.setenv("XENLAB_LAB_ROOT", str(root))
    monkeypatch.setenv("XENLAB_CACHE", str(base / "cache"))
    monkeypatch.setattr(jr, "NAMESPACE_PREFIX", "xenlabfuzz-")
    monkeypatch.setattr(jr, "CONTROL_ROOT", base / "run")
    monkeypatch.setattr(jr, "LOCK_ROOT", base / "locks")
    monkeypatch.setattr(cli, "Prober", _never_probe)  # a guard: no fuzzed argv sends a ping
    # Chromium is not started for each fuzzed case: every input is judged before it runs,
    # and its absence is the one-line refusal the case must then give
    monkeypatch.setattr(certificate.shutil, "which", lambda name: None)
    yield base


def _never_probe(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"a fuzzed argv started a real probe: {args}")


def _decoys_intact(base: Path) -> None:
    assert (base / "labs" / "decoy" / "precious").read_text() == "not a lab's"
    assert (base / "outside" / "precious").read_text() == "not a lab's"
    assert (base / "outside" / "linked" / "lab.json").is_file()
    assert (base / "labs" / "linked").is_symlink()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # --help, and argparse's own exit after its one-line error
        code = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return code, out + err


def check(argv: list[str], capsys: pytest.CaptureFixture[str], base: Path) -> None:
    CASES["xenlab argv"] += 1
    code, out = run(argv, capsys)
    assert code in (0, 1, 2), (argv, code, out)
    for bad in ("Traceback", "INTERNALERROR", "unexpected error"):
        assert bad not in out, (argv, out)
    if code == 2:
        errors = [line for line in out.splitlines() if line.startswith("xenlab")]
        assert len(errors) == 1, (argv, out)
    _decoys_intact(base)


@given(template=st.sampled_from(TEMPLATES),
       value=st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40)),
       blob=st.binary(max_size=300))
@CLI_FUZZ
def test_hostile_argv_is_refused_in_one_line(template: list[str], value: str, blob: bytes,
                                             sandbox: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (sandbox / "blob").write_bytes(blob)
    good = str(RESULTS[0]) if RESULTS else "blob"
    argv = [{"ARG": value, "ROOT": str(sandbox / "labs"), "FILE": str(sandbox / "blob"),
             "GOOD": good, "OUT": "out/" + value.replace("/", "_"),
             "XENINV": str(XEN_INVENTORY)}.get(a, a) for a in template]
    if "--help" in argv or "-h" in argv or argv[:2] == ["lab", "kit"]:
        return  # argparse's help is not input to refuse; `lab kit` downloads a kernel
    check(argv, capsys, sandbox)


@pytest.mark.parametrize("name", ["../../etc", "", "/", "..", "decoy", "linked", "a" * 17])
def test_lab_down_of_a_hostile_name_touches_nothing(name: str, sandbox: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    for extra in ([], ["--force"], ["--dry-run"]):
        code, out = run(["lab", "down", "--lab", name, "--root", str(sandbox / "labs"),
                         *extra], capsys)
        assert code in (0, 2) and "removed directory" not in out, out
        _decoys_intact(sandbox)


def test_a_truncated_results_file_is_refused(sandbox: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    if not RESULTS:
        pytest.skip("no saved results files")
    text = RESULTS[0].read_text()
    (sandbox / "cut.json").write_text(text[: len(text) // 2])
    code, out = run(["compare", str(RESULTS[0]), "cut.json"], capsys)
    assert code == 2 and "cut.json" in out and "Traceback" not in out
    assert json.loads(text)  # the untruncated one is good JSON: the cut is what is refused


@given(target=st.one_of(st.sampled_from(HOSTILE), st.text(max_size=300)))
@CLI_FUZZ
def test_a_probe_target_is_an_address_or_a_name(target: str) -> None:
    """(Not resolved here: a fuzzed name must not become a DNS query or a probe.)"""
    CASES["probe target"] += 1
    try:
        cli._check_target(target, resolve_here=False)
    except cli.UserInputError as exc:
        assert "probe target" in str(exc)
