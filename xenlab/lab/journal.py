"""The embedded lab's marker on disk, written before each resource is made.

`lab.json` in the lab's directory lists what the lab owns: namespaces, processes (PID with
its start time, so a recycled PID is never killed), the image file behind any loop device.
A run killed with SIGKILL leaves the journal behind; the next run reads it and reaps the lab.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xenlab.errors import LabBusyError

DEFAULT_ROOT = Path(os.environ.get("XENLAB_LAB_ROOT", "/var/lib/xenlab/labs"))
NAMESPACE_PREFIX = "xenlab-"


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def process_start(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])


@dataclass
class ProcessRecord:
    pid: int
    start: int
    host: str
    what: str

    def alive(self) -> bool:
        return process_start(self.pid) == self.start


@dataclass
class Journal:
    lab: str
    directory: str
    owner_pid: int
    owner_start: int
    boot: str
    kept: bool = False
    namespaces: list[str] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return Path(self.directory) / "lab.json"

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, self.path)

    def add_namespace(self, name: str) -> None:
        if name not in self.namespaces:
            self.namespaces.append(name)
            self.save()

    def add_process(self, pid: int, host: str, what: str) -> ProcessRecord:
        record = ProcessRecord(pid, process_start(pid) or 0, host, what)
        self.processes.append(record)
        self.save()
        return record

    def add_image(self, path: str) -> None:
        if path not in self.images:
            self.images.append(path)
            self.save()

    def owner_alive(self) -> bool:
        if self.boot != boot_id():
            return False
        return self.owner_pid != os.getpid() and process_start(self.owner_pid) == self.owner_start

    @classmethod
    def read(cls, directory: Path) -> Journal | None:
        try:
            data = json.loads((directory / "lab.json").read_text())
            data["processes"] = [ProcessRecord(**p) for p in data.get("processes", [])]
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None

    @classmethod
    def create(cls, lab: str, directory: Path) -> Journal:
        directory.mkdir(parents=True, exist_ok=True)
        me = os.getpid()
        journal = cls(lab=lab, directory=str(directory), owner_pid=me,
                      owner_start=process_start(me) or 0, boot=boot_id())
        journal.save()
        return journal


def lab_namespaces(lab: str) -> list[str]:
    """Namespaces on this machine that belong to the lab of this name (found by prefix)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    prefix = f"{NAMESPACE_PREFIX}{lab}-"
    return [line.split()[0] for line in out.stdout.splitlines()
            if line.split() and line.split()[0].startswith(prefix)]


def namespace_pids(namespace: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True,
                         check=False)
    return [int(p) for p in out.stdout.split() if p.isdigit()]


def stop_process(pid: int, start: int | None, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; only if `pid` is still the same process."""
    if start is not None and process_start(pid) != start:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process_start(pid) != start or _is_zombie(pid):
            _reap_child(pid)
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap_child(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def _reap_child(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def loops_of(image: str) -> list[str]:
    out = subprocess.run(["losetup", "-j", image, "-O", "NAME", "-n"], capture_output=True,
                         text=True, check=False)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


CONTROL_ROOT = Path("/run/xenlab")


def control_dir(lab: str) -> Path:
    """Where a lab's SSH connection-sharing sockets live (short: a socket path is limited)."""
    return CONTROL_ROOT / lab


LOCK_ROOT = Path("/run/xenlab-locks")  # beside CONTROL_ROOT: a lab may be named anything


class NameLock:
    """A lab name held by one run on this machine, whatever its lab root: namespaces and
    sockets are named after the lab, so a second run of the same name (even under another
    --lab-root) must not build, or reap, beside it. The kernel drops the lock when the
    holder exits, SIGKILL included, so a killed run never blocks the next."""

    def __init__(self, lab: str) -> None:
        self.lab = lab
        self.path = LOCK_ROOT / f"{lab}.lock"
        self._fd: int | None = None

    def acquire(self, root: Path) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 512).decode(errors="replace").strip() or "another run"
                os.close(fd)
                raise LabBusyError(f"lab '{self.lab}' is in use on this machine by {holder}; "
                                   "choose another lab name in the inventory (lab: ...) or "
                                   "wait for that run to end") from None
            try:  # the holder before us may have removed the file: lock the one in place
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"the run with PID {os.getpid()} (lab root {root})\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # nothing of the lab stays, not even this
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def remove_if_free(self) -> None:
        """The lock file of a kept lab's ended run (nobody holds it): removed with the lab."""
        if self._fd is None and self.path.exists() and self.held_elsewhere() is None:
            self.path.unlink(missing_ok=True)

    def held_elsewhere(self) -> str | None:
        """Who holds the name, if another process does (for `xenlab lab down`)."""
        if self._fd is not None or not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        except BlockingIOError:
            return os.read(fd, 512).decode(errors="replace").strip() or "another run"
        finally:
            os.close(fd)


def reap(lab: str, root: Path = DEFAULT_ROOT, *, force: bool = False) -> list[str]:
    """Remove whatever the lab `lab` left on this machine. Returns what was removed.

    Refuses (LabBusyError) when the run that owns the lab is still alive, unless `force`.
    """
    import shutil

    directory = root / lab
    journal = Journal.read(directory)
    if journal and journal.owner_alive() and not journal.kept and not force:
        raise LabBusyError(
            f"lab '{lab}' is in use by the run with PID {journal.owner_pid}; "
            f"choose another lab name in the inventory or wait for that run to end")
    removed: list[str] = []
    namespaces = set(lab_namespaces(lab)) | set(journal.namespaces if journal else [])
    for record in journal.processes if journal else []:
        if record.alive():
            stop_process(record.pid, record.start)
            removed.append(f"process {record.pid} ({record.what} on {record.host})")
    for ns in sorted(namespaces):
        for pid in namespace_pids(ns):
            stop_process(pid, process_start(pid))
            removed.append(f"process {pid} (in namespace {ns})")
    for ns in sorted(namespaces):
        if subprocess.run(["ip", "netns", "delete", ns], capture_output=True,
                          check=False).returncode == 0:
            removed.append(f"namespace {ns}")
    for image in journal.images if journal else []:
        for loop in loops_of(image):
            subprocess.run(["losetup", "-d", loop], capture_output=True, check=False)
            removed.append(f"loop device {loop}")
    if directory.exists():
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(f"directory {directory}")
    sockets = control_dir(lab)
    if sockets.exists():
        shutil.rmtree(sockets, ignore_errors=True)
        removed.append(f"directory {sockets}")
    return removed
