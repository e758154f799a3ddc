"""The continuity witnesses shipped into a guest that lacks them: a real shell in a network
namespace of this test's own stands in for the guest (its /tmp a temporary directory)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from xenlab.errors import LabError
from xenlab.lab.guestkit import ensure_echo, ensure_memcheck
from xenlab.measure.witness_kit import listens_on, prepare, remove

CACHE = Path(os.environ.get("XENLAB_CACHE", "/var/cache/xenlab")) / "guest"
PROC_NET_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid
   0: 00000000:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0
   1: 0100007F:0016 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0
"""


def test_a_listening_port_is_read_from_proc_net_tcp() -> None:
    assert listens_on(PROC_NET_TCP, 7000)  # 0x1B58 in state 0A (LISTEN)
    assert not listens_on(PROC_NET_TCP, 22)  # 0x16 is an established connection, not LISTEN
    assert not listens_on("garbage\n:: 0A\n", 7000)


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


@dataclass
class NamespaceShell:
    """A guest stand-in: `run(command, *args)` as testinfra's, inside a namespace."""

    namespace: str
    path: str = "/usr/bin:/bin"

    def run(self, command: str, *args: str) -> Result:
        import shlex

        line = command % tuple(shlex.quote(a) for a in args)
        proc = subprocess.run(["ip", "netns", "exec", self.namespace, "env", "-i",
                               f"PATH={self.path}", "sh", "-c", line],
                              capture_output=True, text=True, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def guest() -> Iterator[NamespaceShell]:
    if os.geteuid() != 0:
        pytest.skip("a network namespace of its own needs root")
    ns = f"xenlab-unit{uuid.uuid4().hex[:6]}--guest"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    try:
        yield NamespaceShell(ns)
    finally:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


def _builds() -> tuple[Path, Path]:
    return ensure_memcheck(CACHE), ensure_echo(CACHE)


def test_missing_witnesses_are_copied_started_and_removed(guest: NamespaceShell,
                                                          tmp_path: Path) -> None:
    kit = prepare(guest, "vm1", _builds, 7000, root=str(tmp_path))
    assert kit.shipped == ["xenlab-memcheck", "xenlab-echo"] and kit.echo_pid
    assert kit.directory is not None and Path(kit.directory).parent == tmp_path
    # the copies are the builds, byte for byte, and run from the PATH the kit gives
    assert (Path(kit.directory) / "xenlab-memcheck").read_bytes() == _builds()[0].read_bytes()
    usage = guest.run(f"{kit.path_prefix}xenlab-memcheck 2>&1; true")
    assert "usage" in usage.stdout.lower() or "xenlab-memcheck" in usage.stdout
    # the echo service answers inside the namespace
    reply = subprocess.run(["ip", "netns", "exec", guest.namespace, "python3", "-c",
                            "import socket; s = socket.create_connection(('127.0.0.1', 7000));"
                            "s.sendall(b'12\\n'); print(s.recv(10).decode().strip())"],
                           capture_output=True, text=True, timeout=10)
    assert reply.stdout.strip() == "12", reply
    # a second look (the copied memcheck on the PATH, the echo listening): nothing copied
    guest.path = f"{kit.directory}:{guest.path}"
    again = prepare(guest, "vm1", _builds, 7000, root=str(tmp_path))
    assert again.shipped == [] and again.directory is None
    remove(guest, kit)
    assert not Path(kit.directory).exists()
    # ended (a zombie counts: this machine's PID 1 may never reap what it inherits)
    status = f"/proc/{kit.echo_pid}/status"
    gone = guest.run("sh -c %s", f"for i in 1 2 3 4 5 6 7 8 9 10; do [ -e {status} ] && "
                     f"! grep -q '^State:.*Z' {status} || {{ echo gone; exit; }}; sleep 0.2; "
                     "done; echo alive")
    assert gone.stdout.strip() == "gone"


def test_a_guest_without_a_writable_tmp_is_told_once(guest: NamespaceShell,
                                                     tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    with pytest.raises(LabError, match=r"cannot copy it to .* \(no writable /tmp\?\)"):
        prepare(guest, "vm1", _builds, 7000, root=str(blocked))


def test_a_guest_without_a_shell_is_told_so(tmp_path: Path) -> None:
    class NoShell:
        def run(self, command: str, *args: str) -> Result:
            return Result(127, "", "sh: not found")

    with pytest.raises(LabError, match="has no POSIX shell"):
        prepare(NoShell(), "vm1", _builds, 7000, root=str(tmp_path))


def test_a_copy_that_fails_halfway_leaves_nothing(guest: NamespaceShell,
                                                  tmp_path: Path) -> None:
    """base64 missing in the guest: the copy fails at its first piece, and the directory it
    had made is removed again."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("sh", "mkdir", "cat", "rm", "printf", "kill"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True,
                               text=True).stdout.strip()
        if found.startswith("/"):
            (bare / tool).symlink_to(found)
    guest.path = str(bare)
    with pytest.raises(LabError, match="base64 -d missing"):
        prepare(guest, "vm1", _builds, 7000, root=str(tmp_path / "guest-tmp"))
    assert list((tmp_path / "guest-tmp").iterdir()) == []
