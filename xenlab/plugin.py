"""The xenlab pytest plugin (entry point `pytest11: xenlab`): options, inventory, run state.

All options live in one group with the `--lab-` prefix, each with an environment fallback.
The inventory is loaded and validated at configure time, before any I/O on a lab: a bad one
ends the run with a single usage error naming the file, the key and what was expected.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

import pytest

from xenlab.errors import XenlabError
from xenlab.inventory import Inventory, load_inventory
from xenlab.inventory.model import RunDefaults

DEFAULT_INVENTORY = "inventories/embedded-xen.yml"
DEFAULT_QEMU = "qemu-system-x86_64"


@dataclass(frozen=True)
class LabOptions:
    inventory_path: str | None
    keep: bool
    qemu: str
    lab_root: str
    cache: str
    faults: tuple[str, ...] = ()
    security: str = "warn"
    interval_ms: float = 1.0
    roundtrips: int = 3
    pattern: str = "ring"
    scenarios: tuple[str, ...] = ("idle", "memory-dirty")
    prober: str = "xenlab"
    baseline: str | None = None
    results: str = "reports/results.json"
    memory_audit: bool = False
    tcp_interval_ms: float = 10.0
    report: str = "reports/report.html"
    security_findings: tuple[tuple[str, str], ...] = ()
    plan: bool = False
    provision: bool = False
    allow_wipe: tuple[str, ...] = ()
    accept_new_host_keys: bool = False
    allow_power_off: bool = False
    evacuation: int = 1  # guests moved at a time when a host is emptied (1: sequential)
    storm: bool = True  # the migration storm runs (the inventory's run.storm, or --lab-storm)
    fault_suite: bool = False
    fault_selftest: str | None = None


FAULT_SELFTESTS = {  # what a lying harness would do; the fault suite must fail on each
    "no-injection": "claim the fault was set off but migrate normally",
    "duplicate-guest": "leave a second running copy of the guest on the destination",
    "corrupt-data": "change the witness file in the guest behind the suite's back",
}

OPTIONS_KEY = pytest.StashKey[LabOptions]()
INVENTORY_KEY = pytest.StashKey["Inventory | None"]()


def _env_number(name: str, kind: type[int] | type[float]) -> int | float | None:
    """A number from an environment variable (None if unset); bad text is a usage error."""
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        number = kind(value)
    except ValueError:
        raise pytest.UsageError(f"environment variable {name}={value[:60]!r}: expected "
                                f"{'an integer' if kind is int else 'a number'}") from None
    if not math.isfinite(number):
        raise pytest.UsageError(f"environment variable {name}={value!r}: expected a finite "
                                "number")
    return number


_FLAG_WORDS = {"1": True, "yes": True, "true": True, "on": True,
               "0": False, "no": False, "false": False, "off": False, "": False}


def _env_flag(name: str) -> bool:
    """A yes/no environment variable; anything but 1/0, yes/no, true/false, on/off is a
    usage error (a typo must not silently mean 'no')."""
    value = os.environ.get(name, "")
    if value.strip().lower() not in _FLAG_WORDS:
        raise pytest.UsageError(f"environment variable {name}={value[:60]!r}: expected 1 or "
                                "0 (yes/no, true/false, on/off)")
    return _FLAG_WORDS[value.strip().lower()]


def _flag(config: pytest.Config, option: str, variable: str | None = None) -> bool:
    """A store_true option: given on the command line, or else its environment variable."""
    return bool(config.getoption(option)) or (variable is not None and _env_flag(variable))


def _number(config: pytest.Config, option: str, variable: str,
            kind: type[int] | type[float]) -> int | float | None:
    value = config.getoption(option)
    return _env_number(variable, kind) if value is None else value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xenlab", "xenlab: live-migration lab certification")
    group.addoption(
        "--lab-inventory", default=os.environ.get("XENLAB_INVENTORY"), metavar="FILE",
        help=f"lab inventory (YAML); env XENLAB_INVENTORY; default {DEFAULT_INVENTORY}")
    group.addoption(
        "--lab-keep", action="store_true", default=False,
        help="leave the embedded lab up after the run (remove it with `xenlab lab down`); "
             "env XENLAB_KEEP=1")
    group.addoption(
        "--lab-qemu", default=os.environ.get("XENLAB_QEMU", DEFAULT_QEMU), metavar="BIN",
        help="QEMU of the embedded lab: a binary, or a version such as 7.2 for Debian's "
             "build of it, fetched into the cache; env XENLAB_QEMU")
    group.addoption(
        "--lab-root", default=os.environ.get("XENLAB_LAB_ROOT", "/var/lib/xenlab/labs"),
        metavar="DIR", help="where embedded labs keep their files; env XENLAB_LAB_ROOT")
    group.addoption(
        "--lab-fault", action="append", metavar="FAULT",
        default=[f for f in os.environ.get("XENLAB_FAULTS", "").split(",") if f],
        help="build the embedded lab with this fault, to watch a check catch it "
             "(repeatable; env XENLAB_FAULTS=a,b); see `xenlab lab faults`")
    group.addoption(
        "--lab-security", choices=("warn", "fail"),
        default=os.environ.get("XENLAB_SECURITY", "warn"),
        help="what a security finding does to a certification: warn (default) or fail; "
             "env XENLAB_SECURITY")
    group.addoption(
        "--lab-security-finding", action="append", metavar="NAME=warn|fail", default=[],
        help="the severity of one security finding (relocation-open, aoe-interface, "
             "aoe-no-mac-allowlist, guest-shadow-copied, ssh-password-auth); repeatable")
    group.addoption(
        "--lab-interval", type=float, metavar="MS",
        default=None,
        help="the meter's probe interval in ms (default: the inventory's run.interval_ms, "
             "else 1); env XENLAB_INTERVAL_MS")
    group.addoption(
        "--lab-roundtrips", type=int, metavar="N",
        default=None,
        help="ping-pong round trips per scenario (default: the inventory's run.roundtrips, "
             "else 3); env XENLAB_ROUNDTRIPS")
    group.addoption(
        "--lab-pattern", choices=("ring", "matrix"),
        default=os.environ.get("XENLAB_PATTERN", "ring"),
        help="with more than two resource hosts: a ring, or every ordered pair (matrix)")
    group.addoption(
        "--lab-scenarios", metavar="LIST",
        default=os.environ.get("XENLAB_SCENARIOS"),
        help="migration scenarios, comma-separated: idle, memory-dirty (default: the "
             "inventory's run.scenarios, else both); env XENLAB_SCENARIOS")
    group.addoption(
        "--lab-prober", choices=("xenlab", "ping"),
        default=os.environ.get("XENLAB_PROBER", "xenlab"),
        help="the meter: xenlab's raw-socket prober (default) or iputils ping")
    group.addoption(
        "--lab-baseline", metavar="FILE", default=os.environ.get("XENLAB_BASELINE"),
        help="an earlier results.json: fail on a downtime or loss regression against it")
    group.addoption(
        "--lab-results", metavar="FILE",
        default=os.environ.get("XENLAB_RESULTS", "reports/results.json"),
        help="where to write the run's results (default reports/results.json)")
    group.addoption(
        "--lab-memory-audit", action="store_true", default=False,
        help="embedded lab: hold each destination paused after a migration and compare the "
             "guest's memory on both sides page by page (lengthens the guest's pause); "
             "env XENLAB_MEMORY_AUDIT=1")
    group.addoption(
        "--lab-tcp-interval", type=float, metavar="MS",
        default=None,
        help="how often the TCP connection held across migrations sends a line (default: "
             "the inventory's run.tcp_interval_ms, else 10 ms); env XENLAB_TCP_INTERVAL_MS")
    group.addoption(
        "--lab-report", metavar="FILE",
        default=os.environ.get("XENLAB_REPORT", "reports/report.html"),
        help="the HTML report of a certification (default reports/report.html; 'none': "
             "no report); --html overrides it; env XENLAB_REPORT")
    group.addoption(
        "--lab-plan", action="store_true", default=False,
        help="print, per host, every command provisioning would run, in order; touch nothing")
    group.addoption(
        "--lab-provision", action="store_true", default=False,
        help="real lab: perform the article's set-up first (idempotent steps; see "
             "--lab-plan for what would run); never without this option")
    group.addoption(
        "--lab-allow-wipe", action="append", metavar="DEVICE", default=[],
        help="let provisioning overwrite DEVICE although it carries a filesystem, partition "
             "table or LVM signature (repeatable); without it such a device is refused")
    group.addoption(
        "--lab-allow-power-off", action="store_true", default=False,
        help="real lab: let the maintenance suite run the inventory's xenlab_power_off and "
             "xenlab_power_on commands on an emptied resource host (no environment "
             "variable: only this flag, typed for the run, allows it)")
    group.addoption(
        "--lab-evacuation", metavar="POLICY",
        help="how the maintenance suite empties a host: sequential, or N guests at a time "
             "(default: the inventory's run.evacuation, else sequential); env "
             "XENLAB_EVACUATION")
    group.addoption(
        "--lab-storm", action="store_true", default=False,
        help="run the migration storm even where the inventory's run.storm is false (the "
             "embedded Xen lab's, for time); env XENLAB_STORM=1")
    group.addoption(
        "--lab-accept-new-host-keys", action="store_true", default=False,
        help="trust an SSH host key not yet in known_hosts on first use (default: refuse)")
    group.addoption(
        "--lab-fault-suite", action="store_true", default=False,
        help="run suites/test_faults.py: cut the migration link, kill the destination's "
             "receiver, cancel, stop the storage target, on embedded labs; env "
             "XENLAB_FAULT_SUITE=1")
    group.addoption(
        "--lab-fault-selftest", choices=tuple(FAULT_SELFTESTS), metavar="LIE",
        help="self-test of the fault suite (QEMU-only embedded lab): make the harness lie "
             f"({', '.join(FAULT_SELFTESTS)}) and see the suite fail")
    group.addoption(
        "--lab-cache", default=os.environ.get("XENLAB_CACHE", "/var/cache/xenlab"),
        metavar="DIR", help="downloads and built guest kernels; env XENLAB_CACHE")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "destructive: changes the lab (provisioning, migration); "
        "deselect with -m 'not destructive' to certify a lab read-only")
    config.addinivalue_line(
        "markers", "needs(*features): runs only on a lab with these features "
        "(xenlab/lab/features.py); skipped elsewhere, with the reason")
    path = config.getoption("lab_inventory")
    if path is None and (Path(config.rootpath) / DEFAULT_INVENTORY).exists():
        path = str(Path(config.rootpath) / DEFAULT_INVENTORY)
    inventory = None
    if path is not None:
        _text(path, "--lab-inventory (or XENLAB_INVENTORY)")
        try:
            inventory = load_inventory(path)
        except XenlabError as exc:
            raise pytest.UsageError(f"bad lab inventory (--lab-inventory or XENLAB_INVENTORY): "
                                    f"{exc}") from None
    # what the command line (or env) does not say, the inventory's `run:` defaults say
    run = inventory.run if inventory is not None else RunDefaults()
    scenarios = config.getoption("lab_scenarios")
    options = LabOptions(
        inventory_path=config.getoption("lab_inventory"),
        keep=_flag(config, "lab_keep", "XENLAB_KEEP"),
        qemu=config.getoption("lab_qemu"),
        lab_root=_directory(config.getoption("lab_root"), "--lab-root", "XENLAB_LAB_ROOT"),
        cache=_directory(config.getoption("lab_cache"), "--lab-cache", "XENLAB_CACHE"),
        faults=tuple(config.getoption("lab_fault") or ()),
        security=config.getoption("lab_security"),
        interval_ms=_given(_number(config, "lab_interval", "XENLAB_INTERVAL_MS", float),
                           run.interval_ms),
        roundtrips=int(_given(_number(config, "lab_roundtrips", "XENLAB_ROUNDTRIPS", int),
                              run.roundtrips)),
        pattern=config.getoption("lab_pattern"),
        scenarios=(tuple(s.strip() for s in scenarios.split(",") if s.strip())
                   if scenarios is not None else run.scenarios),
        prober=config.getoption("lab_prober"),
        baseline=config.getoption("lab_baseline"),
        results=config.getoption("lab_results"),
        memory_audit=_flag(config, "lab_memory_audit", "XENLAB_MEMORY_AUDIT"),
        tcp_interval_ms=_given(_number(config, "lab_tcp_interval", "XENLAB_TCP_INTERVAL_MS",
                                       float), run.tcp_interval_ms),
        report=config.getoption("lab_report"),
        security_findings=_findings(config.getoption("lab_security_finding") or []),
        plan=bool(config.getoption("lab_plan")),
        provision=bool(config.getoption("lab_provision")),
        allow_wipe=tuple(config.getoption("lab_allow_wipe") or ()),
        accept_new_host_keys=bool(config.getoption("lab_accept_new_host_keys")),
        allow_power_off=bool(config.getoption("lab_allow_power_off")),
        evacuation=_evacuation(next(v for v in (config.getoption("lab_evacuation"),
                                                os.environ.get("XENLAB_EVACUATION"),
                                                run.evacuation) if v is not None)),
        storm=_flag(config, "lab_storm", "XENLAB_STORM") or run.storm,
        fault_suite=_flag(config, "lab_fault_suite", "XENLAB_FAULT_SUITE"),
        fault_selftest=config.getoption("lab_fault_selftest"),
    )
    _check_options(options)
    config.stash[OPTIONS_KEY] = options
    config.stash[INVENTORY_KEY] = inventory
    if options.faults:
        from xenlab.lab.embedded import FAULTS

        unknown = [f for f in options.faults if f not in FAULTS]
        if unknown:
            raise pytest.UsageError(f"--lab-fault (or XENLAB_FAULTS) {unknown[0]!r}: unknown "
                                    "fault; known: "
                                    f"{', '.join(FAULTS)}")
    if inventory is not None:
        _honoured_by_the_lab(options, inventory)
    _sigterm_as_interrupt()


def _evacuation(value: str) -> int:
    """sequential (1) or N guests at a time, 1 to 64."""
    text = str(value).strip()
    if text == "sequential":
        return 1
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise pytest.UsageError(f"--lab-evacuation (or XENLAB_EVACUATION, or the inventory's "
                                f"run.evacuation) {text[:40]!r}: expected sequential or a "
                                "number of guests at a time, 1 to 64")
    return int(text)


def _honoured_by_the_lab(options: LabOptions, inventory: Inventory) -> None:
    """An option the inventory's lab cannot honour is refused in one line naming the option
    and the lab, never silently ignored."""
    from xenlab.lab.features import FEATURES
    from xenlab.lab.select import lab_features

    features = lab_features(inventory)
    asked = [("--lab-fault (or XENLAB_FAULTS)", bool(options.faults), "build-faults"),
             ("--lab-fault-selftest", bool(options.fault_selftest), "fault-selftest"),
             ("--lab-fault-suite (or XENLAB_FAULT_SUITE)", options.fault_suite,
              "fault-injection"),
             ("--lab-memory-audit (or XENLAB_MEMORY_AUDIT)", options.memory_audit,
              "memory-audit"),
             ("--lab-qemu (or XENLAB_QEMU)", options.qemu != DEFAULT_QEMU, "qemu-binary"),
             ("--lab-provision", options.provision, "provisioning"),
             ("--lab-allow-power-off", options.allow_power_off, "power-control")]
    for option, given, needed in asked:
        if given and needed not in features:
            raise pytest.UsageError(
                f"{option}: lab {inventory.lab} ({inventory.path}, {inventory.kind.value}, "
                f"{inventory.toolstack}) cannot honour it: it needs {FEATURES[needed]}")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """--lab-plan: print every provisioning command per host, in order, and end the run
    before any session starts (nothing built, touched or reported)."""
    if not config.getoption("lab_plan", False):
        return None
    from xenlab.provision.steps import article_plan, plan_text

    path = config.getoption("lab_inventory") or str(Path(config.rootpath) / DEFAULT_INVENTORY)
    _text(path, "--lab-inventory (or XENLAB_INVENTORY)")
    try:
        inventory = load_inventory(path)
    except XenlabError as exc:
        raise pytest.UsageError(f"bad lab inventory (--lab-inventory or XENLAB_INVENTORY): "
                                    f"{exc}") from None
    print(f"provisioning plan for lab {inventory.lab} ({inventory.path}); nothing is run:")
    print(plan_text(article_plan(inventory)), end="")
    return 0


SCENARIOS = ("idle", "memory-dirty")

T = TypeVar("T")


def _given(value: T | None, default: T) -> T:
    return default if value is None else value


def _findings(values: list[str]) -> tuple[tuple[str, str], ...]:
    from xenlab.inventory.load import SECURITY_FINDINGS

    out = []
    for value in values:
        name, _, level = value.partition("=")
        if name not in SECURITY_FINDINGS or level not in ("warn", "fail"):
            raise pytest.UsageError(f"--lab-security-finding {value}: expected NAME=warn|fail "
                                    f"with NAME one of {', '.join(SECURITY_FINDINGS)}")
        out.append((name, level))
    return tuple(out)


def _text(value: object, where: str) -> str:
    """A path or word a user typed: printable, no NUL, not absurdly long."""
    if not isinstance(value, str) or not value or "\0" in value or len(value) > 4096 \
            or not value.isprintable():
        shown = value[:60] if isinstance(value, str) else value
        raise pytest.UsageError(f"{where}: expected a path or name in printable characters, "
                                f"found {shown!r}")
    return value


def _directory(value: str, option: str, variable: str) -> str:
    """A directory option (or its variable): absolute from here on, never an existing
    non-directory."""
    where = f"{option} (or {variable})"
    path = Path(_text(value, where)).absolute()
    try:
        if path.exists() and not path.is_dir():
            raise pytest.UsageError(f"{where} {value}: expected a directory, found a file")
    except OSError as exc:
        raise pytest.UsageError(f"{where} {value[:60]}...: {exc.strerror}") from None
    return str(path)


def _output_file(value: str, where: str) -> None:
    try:
        _output_path(Path(_text(value, where)), value, where)
    except OSError as exc:
        raise pytest.UsageError(f"{where} {value[:60]}: {exc.strerror}") from None


def _output_path(path: Path, value: str, where: str) -> None:
    if path.is_dir():
        raise pytest.UsageError(f"{where} {value}: expected a file to write, found a directory")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise pytest.UsageError(f"{where} {value}: {parent} is a file, not a directory")


def _check_options(options: LabOptions) -> None:
    if not 0.1 <= options.interval_ms <= 1000:
        raise pytest.UsageError(f"--lab-interval (or XENLAB_INTERVAL_MS) "
                                f"{options.interval_ms}: expected 0.1 to 1000 ms")
    if not 1 <= options.roundtrips <= 1000:
        raise pytest.UsageError(f"--lab-roundtrips (or XENLAB_ROUNDTRIPS) "
                                f"{options.roundtrips}: expected 1 to 1000")
    if not 1 <= options.tcp_interval_ms <= 10000:
        raise pytest.UsageError(f"--lab-tcp-interval (or XENLAB_TCP_INTERVAL_MS) "
                                f"{options.tcp_interval_ms}: expected 1 to 10000 ms")
    unknown = [s for s in options.scenarios if s not in SCENARIOS]
    if unknown or not options.scenarios:
        raise pytest.UsageError(f"--lab-scenarios (or XENLAB_SCENARIOS): unknown scenario "
                                f"{unknown[0] if unknown else ''!r}; known: "
                                f"{', '.join(SCENARIOS)}")
    for value, choices, where in (
            (options.security, ("warn", "fail"), "--lab-security (or XENLAB_SECURITY)"),
            (options.pattern, ("ring", "matrix"), "--lab-pattern (or XENLAB_PATTERN)"),
            (options.prober, ("xenlab", "ping"), "--lab-prober (or XENLAB_PROBER)")):
        if value not in choices:
            raise pytest.UsageError(f"{where} {value!r}: expected one of {', '.join(choices)}")
    _text(options.qemu, "--lab-qemu (or XENLAB_QEMU)")
    _output_file(options.results, "--lab-results (or XENLAB_RESULTS)")
    if options.report != "none":
        _output_file(options.report, "--lab-report (or XENLAB_REPORT)")
    for device in options.allow_wipe:
        if not device.startswith("/dev/") or ".." in Path(device).parts or "\0" in device:
            raise pytest.UsageError(f"--lab-allow-wipe {device[:60]!r}: expected a device "
                                    "path under /dev/ (the device you name may be wiped)")
    if options.baseline:
        _text(options.baseline, "--lab-baseline (or XENLAB_BASELINE)")
        from xenlab.measure.results import load_results

        try:
            load_results(options.baseline)
        except XenlabError as exc:
            raise pytest.UsageError(f"--lab-baseline (or XENLAB_BASELINE): {exc}") from None


def _sigterm_as_interrupt() -> None:
    """SIGTERM tears the lab down like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def get_inventory(config: pytest.Config) -> Inventory | None:
    return config.stash.get(INVENTORY_KEY, None)


def report_dir(config: pytest.Config) -> Path:
    """Where this run's report files go (the AoE captures, the lab's logs, junit.xml): beside
    its HTML report, or beside its results when there is none, so concurrent runs with
    reports of their own never share a file."""
    html = getattr(config.option, "htmlpath", None)
    if html:
        return Path(html).parent
    results = Path(config.getoption("lab_results") or "reports/results.json")
    return (results if results.is_absolute() else Path(config.rootpath) / results).parent


def get_options(config: pytest.Config) -> LabOptions:
    return config.stash[OPTIONS_KEY]
