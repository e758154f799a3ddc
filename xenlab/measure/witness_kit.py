"""What the continuity checks need inside the guest, shipped where it is missing.

The migration tests read two witnesses in the guest: `xenlab-memcheck` (on its PATH) and a
TCP echo service (port 7000). The embedded labs' guests carry both; a real lab's guest may
carry neither. `prepare()` looks first, and copies only what is missing: the static builds
from the cache, into /tmp/xenlab-witness-<digest> (named by the two builds' digest, so a
new build never meets an old one), each checked by sha256 after the copy. The echo service
it starts is ended by its PID, and the directory removed, by `remove()` at the end of the
run. A guest without a shell, without base64/sha256sum or without a writable /tmp is told
what is missing, in one message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from xenlab.errors import LabError

CHUNK = 6000  # base64 characters per command: dropbear takes commands of 9000 bytes at most


class _Result(Protocol):
    rc: int
    stdout: str
    stderr: str


class GuestShell(Protocol):
    """What is used of testinfra's Host: `run(command, *args)` with %s-quoted args."""

    def run(self, command: str, *args: str) -> _Result: ...


def listens_on(proc_net_tcp: str, port: int) -> bool:
    """A socket in state LISTEN (0A) on `port` in /proc/net/tcp or tcp6 text."""
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) > 3 and ":" in fields[1] and fields[3] == "0A":
            try:
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
            except ValueError:
                continue
    return False


@dataclass
class GuestKit:
    directory: str | None = None  # where xenlab copied its tools (None: nothing copied)
    shipped: list[str] = field(default_factory=list)
    echo_pid: str | None = None  # the echo service xenlab started (None: the guest's own)

    @property
    def path_prefix(self) -> str:
        """A PATH assignment that puts the copied tools first (empty: none copied)."""
        return f"PATH={self.directory}:$PATH " if self.directory else ""


def kit_directory(memcheck: Path, echo: Path, root: str = "/tmp") -> str:
    digest = hashlib.sha256(memcheck.read_bytes() + echo.read_bytes()).hexdigest()[:16]
    return f"{root}/xenlab-witness-{digest}"


_KIT = re.compile(r"^/[A-Za-z0-9_./-]*/xenlab-witness-[0-9a-f]{16}$")


def prepare(guest: GuestShell, name: str, builds: Callable[[], tuple[Path, Path]],
            port: int, root: str = "/tmp") -> GuestKit:
    """Look for the witnesses in the guest; copy and start what is missing. `builds()` gives
    the static memcheck and echo (built on first need only)."""
    probe = _run(guest, name, "command -v xenlab-memcheck; echo; "
                 "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null")
    if probe.rc == 127 or (probe.rc != 0 and not probe.stdout):
        raise LabError(f"the guest {name} has no POSIX shell xenlab can use "
                       f"({probe.stderr.strip()[-200:] or 'exit ' + str(probe.rc)}): the "
                       "continuity checks need sh, base64, sha256sum and a writable /tmp")
    has_memcheck = bool(probe.stdout.split("\n", 1)[0].strip())
    has_echo = listens_on(probe.stdout, port)
    kit = GuestKit()
    if has_memcheck and has_echo:
        return kit
    memcheck, echo = builds()
    kit.directory = kit_directory(memcheck, echo, root)
    try:
        _ship(guest, name, kit, memcheck, echo, port, has_memcheck, has_echo)
    except LabError:
        with contextlib.suppress(Exception):
            remove(guest, kit)  # nothing half-copied stays in the guest
        raise
    return kit


def _ship(guest: GuestShell, name: str, kit: GuestKit, memcheck: Path, echo: Path,
          port: int, has_memcheck: bool, has_echo: bool) -> None:
    assert kit.directory is not None
    if not has_memcheck:
        _copy(guest, name, memcheck.read_bytes(), f"{kit.directory}/xenlab-memcheck")
        kit.shipped.append("xenlab-memcheck")
    if not has_echo:
        _copy(guest, name, echo.read_bytes(), f"{kit.directory}/xenlab-echo")
        kit.shipped.append("xenlab-echo")
        started = _run(guest, name, f"setsid {shlex.quote(kit.directory)}/xenlab-echo "
                       f"{port} </dev/null >/dev/null 2>&1 & echo $!")
        pid = started.stdout.strip()
        if started.rc != 0 or not pid.isdigit():
            raise LabError(f"the guest {name}: cannot start the echo service xenlab copied: "
                           f"{started.stderr.strip()[-200:]}")
        kit.echo_pid = pid


def _run(guest: GuestShell, name: str, script: str) -> _Result:
    """One `sh -c` in the guest; a connection that fails (testinfra raises) is a LabError."""
    try:
        return guest.run("sh -c %s", script)
    except RuntimeError as exc:
        raise LabError(f"the guest {name}: a command to set up the continuity witnesses "
                       f"could not run: {str(exc)[-200:]}") from None


def _copy(guest: GuestShell, name: str, data: bytes, path: str) -> None:
    """`data` to `path` in the guest in base64 chunks, then checked by sha256."""
    tmp = f"{path}.tmp"
    directory = path.rsplit("/", 1)[0]
    first = _run(guest, name, f"mkdir -p -m 700 {shlex.quote(directory)} && "
                 f": > {shlex.quote(tmp)}")
    if first.rc != 0:
        raise LabError(f"the guest {name} lacks a continuity witness and xenlab cannot copy "
                       f"it to {directory} (no writable /tmp?): {first.stderr.strip()[-200:]}")
    encoded = base64.b64encode(data).decode()
    step = CHUNK - CHUNK % 4  # whole base64 quanta: each piece decodes on its own
    for start in range(0, len(encoded), step):
        piece = encoded[start:start + step]
        out = _run(guest, name, f"printf %s {piece} | base64 -d >> {shlex.quote(tmp)}")
        if out.rc != 0:
            raise LabError(f"the guest {name}: copying {path} failed (base64 -d missing?): "
                           f"{out.stderr.strip()[-200:]}")
    done = _run(guest, name, f"chmod 700 {shlex.quote(tmp)} && mv {shlex.quote(tmp)} "
                f"{shlex.quote(path)} && sha256sum {shlex.quote(path)}")
    if done.rc != 0 or done.stdout.split()[:1] != [hashlib.sha256(data).hexdigest()]:
        raise LabError(f"the guest {name}: {path} does not match its build after the copy "
                       f"({done.stdout.strip()[:80] or done.stderr.strip()[-200:]})")


def remove(guest: GuestShell, kit: GuestKit) -> None:
    """End the echo service xenlab started (by PID) and remove what it copied."""
    if kit.echo_pid:
        guest.run("sh -c %s", f"kill {kit.echo_pid} 2>/dev/null; true")
    if kit.directory and _KIT.match(kit.directory) and ".." not in kit.directory:
        guest.run("sh -c %s", f"rm -rf -- {shlex.quote(kit.directory)}")  # xenlab's own name
