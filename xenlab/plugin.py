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

import pytest

from xenlab.errors import InventoryError
from xenlab.inventory import Inventory, LabKind, load_inventory

DEFAULT_INVENTORY = "inventories/embedded.yml"


@dataclass(frozen=True)
class LabOptions:
    inventory_path: str | None
    keep: bool
    qemu: str
    lab_root: str
    cache: str
    faults: tuple[str, ...] = ()
    security: str = "warn"


OPTIONS_KEY = pytest.StashKey[LabOptions]()
INVENTORY_KEY = pytest.StashKey["Inventory | None"]()


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
        help="QEMU binary of the embedded lab; env XENLAB_QEMU")
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
        "--lab-cache", default=os.environ.get("XENLAB_CACHE", "/var/cache/xenlab"),
        metavar="DIR", help="downloads and built guest kernels; env XENLAB_CACHE")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "destructive: changes the lab (provisioning, migration); "
        "deselect with -m 'not destructive' to certify a lab read-only")
    options = LabOptions(
        inventory_path=config.getoption("lab_inventory"),
        keep=bool(config.getoption("lab_keep")),
        qemu=config.getoption("lab_qemu"),
        lab_root=config.getoption("lab_root"),
        cache=config.getoption("lab_cache"),
        faults=tuple(config.getoption("lab_fault") or ()),
        security=config.getoption("lab_security"),
    )
    config.stash[OPTIONS_KEY] = options
    path = options.inventory_path
    if path is None and (Path(config.rootpath) / DEFAULT_INVENTORY).exists():
        path = str(Path(config.rootpath) / DEFAULT_INVENTORY)
    inventory = None
    if path is not None:
        try:
            inventory = load_inventory(path)
        except InventoryError as exc:
            raise pytest.UsageError(f"bad lab inventory: {exc}") from None
    config.stash[INVENTORY_KEY] = inventory
    if options.faults:
        from xenlab.lab.embedded import FAULTS

        unknown = [f for f in options.faults if f not in FAULTS]
        if unknown:
            raise pytest.UsageError(f"--lab-fault {unknown[0]}: unknown fault; known: "
                                    f"{', '.join(FAULTS)}")
        if inventory is not None and inventory.kind is not LabKind.EMBEDDED:
            raise pytest.UsageError("--lab-fault applies to the embedded lab only; "
                                    f"{inventory.path} is a real lab")
    _sigterm_as_interrupt()


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
