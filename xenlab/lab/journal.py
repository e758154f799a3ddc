"""The embedded lab's marker on disk, written before each resource is made.

`lab.json` in the lab's directory lists what the lab owns: namespaces, processes (PID with
its start time, so a recycled PID is never killed), the image file behind any loop device.
A run killed with SIGKILL leaves the journal behind; the next run reads it and reaps the lab.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xenlab.errors import LabBusyError, LabKeptError
from xenlab.names import check_lab_name

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
        """The journal in `directory`, or None if there is none or it is not one xenlab
        wrote (a regular file, not a link, of the journal's shape and types)."""
        path = directory / "lab.json"
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
                return None
            data = json.loads(path.read_text())
            data["processes"] = [ProcessRecord(**p) for p in data.get("processes", [])]
            journal = cls(**data)
        except (OSError, ValueError, TypeError, AttributeError, RecursionError):
            return None
        return journal if journal._well_typed() else None

    def _well_typed(self) -> bool:
        def ints(*values: object) -> bool:
            return all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        return (isinstance(self.lab, str) and isinstance(self.directory, str)
                and ints(self.owner_pid, self.owner_start) and isinstance(self.boot, str)
                and isinstance(self.kept, bool)
                and all(isinstance(n, str) for n in self.namespaces)
                and all(isinstance(i, str) for i in self.images)
                and all(ints(p.pid, p.start) and p.pid > 1 for p in self.processes))

    @classmethod
    def create(cls, lab: str, directory: Path) -> Journal:
        directory.mkdir(parents=True, exist_ok=True)
        me = os.getpid()
        journal = cls(lab=lab, directory=str(directory), owner_pid=me,
                      owner_start=process_start(me) or 0, boot=boot_id())
        journal.save()
        return journal


def lab_namespaces(lab: str) -> list[str]:
    """Namespaces on this machine that belong to the lab of this name (its exact prefix)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    prefix = namespace_prefix(lab)
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


def ended(record: ProcessRecord) -> bool:
    """The recorded process is gone, or only a zombie its parent has not reaped yet."""
    return not record.alive() or _is_zombie(record.pid)


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
    return CONTROL_ROOT / check_lab_name(lab, "lab name")


LOCK_ROOT = Path("/run/xenlab-locks")  # beside CONTROL_ROOT, never inside a lab's files


class NameLock:
    """A lab name held by one run on this machine, whatever its lab root: namespaces and
    sockets are named after the lab, so a second run of the same name (even under another
    --lab-root) must not build, or reap, beside it. The kernel drops the lock when the
    holder exits, SIGKILL included, so a killed run never blocks the next."""

    def __init__(self, lab: str) -> None:
        self.lab = check_lab_name(lab, "lab name")
        self.path = LOCK_ROOT / f"{lab}.lock"
        self._fd: int | None = None

    def acquire(self, root: Path) -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
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
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        except BlockingIOError:
            return os.read(fd, 512).decode(errors="replace").strip() or "another run"
        finally:
            os.close(fd)


@dataclass
class ReapPlan:
    """What removing lab `lab` would touch, each item proven the lab's own, and what was
    found but left alone (with the reason). Computed before anything is removed."""

    lab: str
    journal: Journal | None = None  # the lab's own journal, if it has one here
    directory: Path | None = None
    processes: list[tuple[int, int | None, str]] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    loops: list[tuple[str, str]] = field(default_factory=list)  # (loop device, image)
    sockets: Path | None = None
    left_alone: list[str] = field(default_factory=list)

    def items(self) -> list[str]:
        out = [f"process {pid} ({what})" for pid, _, what in self.processes]
        out += [f"namespace {ns}" for ns in self.namespaces]
        out += [f"loop device {loop} (backed by {image})" for loop, image in self.loops]
        out += [f"directory {d}" for d in (self.directory, self.sockets) if d is not None]
        return out


def namespace_prefix(lab: str) -> str:
    """`xenlab-<lab>--`: lab names hold no '--' and end in no '-', so this prefix names one
    lab only (lab 'a' never matches the namespaces of lab 'a-b')."""
    return f"{NAMESPACE_PREFIX}{check_lab_name(lab, 'lab name')}--"


def owned_child(root: Path, name: str) -> Path | None:
    """`root/name` if it is a real directory directly under `root` (no symlink, no name
    that leaves the root once resolved), else None."""
    candidate = root / name
    if candidate.is_symlink() or not candidate.is_dir():
        return None
    resolved = candidate.resolve()
    return resolved if resolved.parent == root.resolve() and resolved.name == name else None


def plan_reap(lab: str, root: Path = DEFAULT_ROOT) -> ReapPlan:
    """What belongs to lab `lab` on this machine: its directory under `root` only if it is a
    direct child, no symlink, holding the lab's own journal; processes the journal recorded
    (PID and start time) or running inside the lab's namespaces; namespaces of the lab's
    exact prefix; loop devices backed by the journal's images inside the lab directory; its
    SSH socket directory. Everything else found is listed as left alone. Touches nothing."""
    prefix = namespace_prefix(lab)  # (checks the name)
    plan = ReapPlan(lab)
    candidate = root / lab
    directory = owned_child(root, lab)
    journal = Journal.read(directory) if directory else None
    if candidate.is_symlink():
        plan.left_alone.append(f"{candidate}: a symlink, not a lab directory")
    elif candidate.exists() and directory is None:
        plan.left_alone.append(f"{candidate}: not a directory directly under {root}")
    elif directory is not None and journal is None:
        plan.left_alone.append(f"{candidate}: holds no lab journal (lab.json), so it is "
                               "not xenlab's")
    elif journal is not None and (journal.lab != lab or
                                  Path(journal.directory).resolve() != directory):
        plan.left_alone.append(f"{candidate}: its journal belongs to lab {journal.lab!r} at "
                               f"{journal.directory}")
        journal = None
    if journal is not None:
        plan.journal, plan.directory = journal, directory
        for record in journal.processes:
            if record.alive():
                plan.processes.append((record.pid, record.start,
                                       f"{record.what} on {record.host}"))
    recorded = set(journal.namespaces) if journal else set()
    for ns in sorted(recorded):
        if not ns.startswith(prefix):
            plan.left_alone.append(f"namespace {ns}: in the journal but not named {prefix}*")
    plan.namespaces = sorted(lab_namespaces(lab))
    known = {pid for pid, _, _ in plan.processes}
    for ns in plan.namespaces:
        for pid in namespace_pids(ns):
            if pid not in known:
                known.add(pid)
                plan.processes.append((pid, process_start(pid), f"in namespace {ns}"))
    for image in journal.images if journal else []:
        if directory is None or not Path(image).resolve().is_relative_to(directory):
            plan.left_alone.append(f"image {image}: outside the lab directory")
            continue
        plan.loops += [(loop, image) for loop in loops_of(image)]
    sockets = owned_child(CONTROL_ROOT, lab)
    if sockets is not None:
        strays = [p.name for p in sockets.iterdir() if not p.is_socket()]
        if strays:
            plan.left_alone.append(f"{sockets}: holds more than SSH sockets ({strays[0]})")
        else:
            plan.sockets = sockets
    elif (CONTROL_ROOT / lab).is_symlink():
        plan.left_alone.append(f"{CONTROL_ROOT / lab}: a symlink, not the lab's sockets")
    return plan


def reap(lab: str, root: Path = DEFAULT_ROOT, *, force: bool = False,
         kept_too: bool = False) -> list[str]:
    """Remove whatever the lab `lab` left on this machine (see `plan_reap`). Returns what was
    removed.

    Refuses (LabBusyError) when the run that owns the lab is still alive, unless `force`; and
    (LabKeptError) when the lab was kept on purpose (`--lab-keep`), unless `kept_too` (as
    `xenlab lab down` says) or `force`.
    """
    plan = plan_reap(lab, root)
    journal = plan.journal
    if journal and journal.owner_alive() and not journal.kept and not force:
        raise LabBusyError(
            f"lab '{lab}' is in use by the run with PID {journal.owner_pid}; "
            f"choose another lab name in the inventory or wait for that run to end")
    if journal and journal.kept and not (force or kept_too):
        raise LabKeptError(
            f"lab '{lab}' was kept up by an earlier run (--lab-keep) under {plan.directory} and is "
            f"not rebuilt over: remove it with `xenlab lab down --lab {lab} --root {root}`, "
            f"or give this run another lab name")
    return execute(plan)


def execute(plan: ReapPlan) -> list[str]:
    """Remove what `plan` names, in order: processes, namespaces, loop devices, directories."""
    removed: list[str] = []
    for pid, start, what in plan.processes:
        if start is not None and process_start(pid) == start:
            stop_process(pid, start)
            removed.append(f"process {pid} ({what})")
    for ns in plan.namespaces:
        if subprocess.run(["ip", "netns", "delete", ns], capture_output=True,
                          check=False).returncode == 0:
            removed.append(f"namespace {ns}")
    for loop, image in plan.loops:
        if loop in loops_of(image):  # still backed by the lab's image
            subprocess.run(["losetup", "-d", loop], capture_output=True, check=False)
            removed.append(f"loop device {loop}")
    for directory in (plan.directory, plan.sockets):
        if directory is not None and not directory.is_symlink() and directory.is_dir():
            shutil.rmtree(directory, ignore_errors=True)  # rmtree never follows links inside
            removed.append(f"directory {directory}")
    return removed
