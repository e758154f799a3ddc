"""The xenlab pytest plugin (entry point `pytest11: xenlab`): options, inventory, run state.

All options live in one group with the `--lab-` prefix, each with an environment fallback.
The inventory is loaded and validated at configure time, before any I/O on a lab: a bad one
ends the run with a single usage error naming the file, the key and what was expected.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

import pytest

from xenlab.errors import InventoryError
from xenlab.inventory import Inventory, LabKind, load_inventory
from xenlab.inventory.model import RunDefaults

DEFAULT_INVENTORY = "inventories/embedded-xen.yml"


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
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise pytest.UsageError(f"{name}={value!r}: expected a number") from None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "yes", "true", "on")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xenlab", "xenlab: live-migration lab certification")
    group.addoption(
        "--lab-inventory", default=os.environ.get("XENLAB_INVENTORY"), metavar="FILE",
        help=f"lab inventory (YAML); env XENLAB_INVENTORY; default {DEFAULT_INVENTORY}")
    group.addoption(
        "--lab-keep", action="store_true", default=_env_flag("XENLAB_KEEP"),
        help="leave the embedded lab up after the run (remove it with `xenlab lab down`); "
             "env XENLAB_KEEP=1")
    group.addoption(
        "--lab-qemu", default=os.environ.get("XENLAB_QEMU", "qemu-system-x86_64"), metavar="BIN",
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
        default=_env_number("XENLAB_INTERVAL_MS", float),
        help="the meter's probe interval in ms (default: the inventory's run.interval_ms, "
             "else 1); env XENLAB_INTERVAL_MS")
    group.addoption(
        "--lab-roundtrips", type=int, metavar="N",
        default=_env_number("XENLAB_ROUNDTRIPS", int),
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
        "--lab-memory-audit", action="store_true", default=_env_flag("XENLAB_MEMORY_AUDIT"),
        help="embedded lab: hold each destination paused after a migration and compare the "
             "guest's memory on both sides page by page (lengthens the guest's pause); "
             "env XENLAB_MEMORY_AUDIT=1")
    group.addoption(
        "--lab-tcp-interval", type=float, metavar="MS",
        default=_env_number("XENLAB_TCP_INTERVAL_MS", float),
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
        "--lab-accept-new-host-keys", action="store_true", default=False,
        help="trust an SSH host key not yet in known_hosts on first use (default: refuse)")
    group.addoption(
        "--lab-fault-suite", action="store_true", default=_env_flag("XENLAB_FAULT_SUITE"),
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
    path = config.getoption("lab_inventory")
    if path is None and (Path(config.rootpath) / DEFAULT_INVENTORY).exists():
        path = str(Path(config.rootpath) / DEFAULT_INVENTORY)
    inventory = None
    if path is not None:
        try:
            inventory = load_inventory(path)
        except InventoryError as exc:
            raise pytest.UsageError(f"bad lab inventory: {exc}") from None
    # what the command line (or env) does not say, the inventory's `run:` defaults say
    run = inventory.run if inventory is not None else RunDefaults()
    scenarios = config.getoption("lab_scenarios")
    options = LabOptions(
        inventory_path=config.getoption("lab_inventory"),
        keep=bool(config.getoption("lab_keep")),
        qemu=config.getoption("lab_qemu"),
        lab_root=config.getoption("lab_root"),
        cache=config.getoption("lab_cache"),
        faults=tuple(config.getoption("lab_fault") or ()),
        security=config.getoption("lab_security"),
        interval_ms=_given(config.getoption("lab_interval"), run.interval_ms),
        roundtrips=_given(config.getoption("lab_roundtrips"), run.roundtrips),
        pattern=config.getoption("lab_pattern"),
        scenarios=(tuple(s.strip() for s in scenarios.split(",") if s.strip())
                   if scenarios is not None else run.scenarios),
        prober=config.getoption("lab_prober"),
        baseline=config.getoption("lab_baseline"),
        results=config.getoption("lab_results"),
        memory_audit=bool(config.getoption("lab_memory_audit")),
        tcp_interval_ms=_given(config.getoption("lab_tcp_interval"), run.tcp_interval_ms),
        report=config.getoption("lab_report"),
        security_findings=_findings(config.getoption("lab_security_finding") or []),
        plan=bool(config.getoption("lab_plan")),
        provision=bool(config.getoption("lab_provision")),
        allow_wipe=tuple(config.getoption("lab_allow_wipe") or ()),
        accept_new_host_keys=bool(config.getoption("lab_accept_new_host_keys")),
        fault_suite=bool(config.getoption("lab_fault_suite")),
        fault_selftest=config.getoption("lab_fault_selftest"),
    )
    _check_options(options)
    config.stash[OPTIONS_KEY] = options
    config.stash[INVENTORY_KEY] = inventory
    if options.faults:
        from xenlab.lab.embedded import FAULTS

        unknown = [f for f in options.faults if f not in FAULTS]
        if unknown:
            raise pytest.UsageError(f"--lab-fault {unknown[0]}: unknown fault; known: "
                                    f"{', '.join(FAULTS)}")
        if inventory is not None and inventory.kind is not LabKind.EMBEDDED:
            raise pytest.UsageError("--lab-fault applies to the embedded (QEMU) lab only; "
                                    f"{inventory.path} is a {inventory.kind.value} lab")
    if options.fault_selftest and inventory is not None and inventory.kind is not LabKind.EMBEDDED:
        raise pytest.UsageError("--lab-fault-selftest runs on the embedded (QEMU) lab only; "
                                f"{inventory.path} is a {inventory.kind.value} lab")
    _sigterm_as_interrupt()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """--lab-plan: print every provisioning command per host, in order, and end the run
    before any session starts (nothing built, touched or reported)."""
    if not config.getoption("lab_plan", False):
        return None
    from xenlab.provision.steps import article_plan, plan_text

    path = config.getoption("lab_inventory") or str(Path(config.rootpath) / DEFAULT_INVENTORY)
    try:
        inventory = load_inventory(path)
    except InventoryError as exc:
        raise pytest.UsageError(f"bad lab inventory: {exc}") from None
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


def _check_options(options: LabOptions) -> None:
    if not 0.1 <= options.interval_ms <= 1000:
        raise pytest.UsageError(f"--lab-interval {options.interval_ms}: expected 0.1 to 1000 ms")
    if options.roundtrips < 1:
        raise pytest.UsageError(f"--lab-roundtrips {options.roundtrips}: expected 1 or more")
    unknown = [s for s in options.scenarios if s not in SCENARIOS]
    if unknown or not options.scenarios:
        raise pytest.UsageError(f"--lab-scenarios: unknown scenario {unknown[0] if unknown else ''!r}"
                                f"; known: {', '.join(SCENARIOS)}")
    if options.baseline and not Path(options.baseline).is_file():
        raise pytest.UsageError(f"--lab-baseline {options.baseline}: no such file")


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


def get_options(config: pytest.Config) -> LabOptions:
    return config.stash[OPTIONS_KEY]
