"""The storage host's export: a sparse image (the article's partition) served over AoE by
the real vblade, started in the storage host's namespace and recorded in the journal."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from xenlab.errors import LabError
from xenlab.hosts.runner import Runner
from xenlab.inventory.model import AoeSpec
from xenlab.lab import journal as jr


def sparse_image(journal: jr.Journal, path: Path, size: int) -> None:
    """`size` bytes that take only what is written; in the journal before it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    journal.add_image(str(path))
    with open(path, "wb") as f:
        f.truncate(size)


def sparse_copy(source: Path, offset: int, size: int, target: Path) -> None:
    """`size` bytes of `source` from `offset` into a new sparse file: only the data is read
    and written (SEEK_DATA/SEEK_HOLE), the holes stay holes."""
    with open(source, "rb") as src, open(target, "wb") as dst:
        dst.truncate(size)
        fd, pos, end = src.fileno(), offset, offset + size
        while pos < end:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # no data after pos
                break
            if data >= end:
                break
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
            src.seek(data)
            dst.seek(data - offset)
            left = hole - data
            while left > 0:
                chunk = src.read(min(left, 1 << 20))
                if not chunk:
                    break
                dst.write(chunk)
                left -= len(chunk)
            pos = hole


def start_vblade(runner: Runner, host: str, aoe: AoeSpec, image: Path, log: Path,
                 record: Callable[[int, str], None]) -> subprocess.Popen[bytes]:
    """vblade SHELF SLOT IFACE IMAGE on `host`; an exit at once is the error, with its log."""
    proc = runner.spawn(["vblade", str(aoe.shelf), str(aoe.slot), aoe.interface, str(image)],
                        log=str(log))
    record(proc.pid, "vblade")
    time.sleep(0.1)
    if proc.poll() is not None:
        text = log.read_text(errors="replace") if log.exists() else ""
        raise LabError(f"vblade on {host} exited {proc.returncode}: {text[-500:]}")
    return proc
