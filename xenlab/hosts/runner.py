"""Run commands on this machine or inside one embedded host (a network namespace).

Commands are argument lists, never pasted strings. The lab builder uses these runners; suites
reach hosts through testinfra (`xenlab.hosts.access`).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xenlab.errors import CommandError

OVERLAY_SCRIPT = (
    'mount -t overlay xenlab-etc -o "lowerdir=$1:/etc" /etc || exit 125; '
    '[ -s /etc/hostname ] && cat /etc/hostname > /proc/sys/kernel/hostname; shift; exec "$@"'
)


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str


def netns_prefix(namespace: str, etc_dir: str | None) -> list[str]:
    """argv prefix that runs a command inside `namespace` with `etc_dir` laid over /etc.

    The overlay gives every embedded host its own /etc/hosts and its own files under /etc
    (e.g. /etc/xen/vm/vm1) in a private mount namespace, and its own host name in a private
    UTS namespace; nothing on the machine changes.
    """
    prefix = ["ip", "netns", "exec", namespace]
    if etc_dir:
        prefix += ["unshare", "--mount", "--uts", "--propagation", "private",
                   "sh", "-c", OVERLAY_SCRIPT, "xenlab-etc", etc_dir]
    return prefix


class Runner:
    """Runs argument lists on one host; raises CommandError with full context on failure."""

    def __init__(self, host: str = "controller", prefix: Sequence[str] = (),
                 env: Mapping[str, str] | None = None) -> None:
        self.host = host
        self.prefix = list(prefix)
        self.env = dict(env) if env else None

    def argv(self, argv: Sequence[str]) -> list[str]:
        return self.prefix + list(argv)

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float | None = 120, cwd: str | None = None) -> Result:
        full = self.argv(argv)
        env = {**os.environ, **self.env} if self.env else None
        try:
            proc = subprocess.run(full, input=input, capture_output=True, text=True,
                                  timeout=timeout, env=env, cwd=cwd, check=False)
        except FileNotFoundError as exc:
            raise CommandError(self.host, argv, 127, "", f"command not found: {exc.filename}") from None
        except subprocess.TimeoutExpired as exc:
            raise CommandError(self.host, argv, -1, _text(exc.stdout),
                               f"timed out after {timeout} s") from None
        result = Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise CommandError(self.host, argv, proc.returncode, proc.stdout, proc.stderr)
        return result

    def spawn(self, argv: Sequence[str], *, log: str) -> subprocess.Popen[bytes]:
        """Start a long-running process in its own session, output to `log`."""
        with open(log, "ab") as out:
            return subprocess.Popen(self.argv(argv), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def __repr__(self) -> str:
        return f"Runner({self.host!r}, {shlex.join(self.prefix)!r})"


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
