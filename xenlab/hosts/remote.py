"""A process on a lab host whose output is read while it runs, and which is stopped with
SIGINT by its own PID (it reports that PID first), so it can print its figures on the way
out. The meter's prober and the TCP stream are two of them."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence

from xenlab.errors import LabError
from xenlab.hosts.runner import Runner

PID_PREFIX = 'echo "xenlab-pid $$"; exec '


def python_script(python: str, source: str, *args: str) -> list[str]:
    """argv running Python `source` (shipped as text) with `args`, announcing its PID."""
    return ["sh", "-c", PID_PREFIX + '"$0" -u -c "$@"', python, source, *args]


class RemoteProcess:
    def __init__(self, runner: Runner, argv: Sequence[str], ready_prefix: str,
                 what: str) -> None:
        """`argv` must start with `sh -c 'echo "xenlab-pid $$"; exec ...'` (see PID_PREFIX);
        the process counts as started once it prints a line starting with `ready_prefix`."""
        self.runner = runner
        self.argv = list(argv)
        self.ready_prefix = ready_prefix
        self.what = what
        self.lines: list[str] = []
        self.pid: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self, timeout: float = 10.0) -> None:
        self._proc = self.runner.stream(self.argv)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout) or not any(
                line.startswith(self.ready_prefix) for line in self.lines):
            self.stop()
            raise LabError(f"{self.what} on {self.runner.host} did not start: "
                           f"{''.join(self.lines)[-300:] or 'no output'}")

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if self.pid is None and line.startswith("xenlab-pid "):
                self.pid = int(line.split()[1])
                continue
            self.lines.append(line)
            if line.startswith(self.ready_prefix):
                self._ready.set()
        self._ready.set()

    def stop(self, timeout: float = 10.0) -> list[str]:
        """SIGINT by PID on its host, wait for it to finish; the lines it printed."""
        if self._proc is None:
            raise LabError(f"{self.what} was never started")
        if self.pid is not None and self._proc.poll() is None:
            self.runner.run(["kill", "-INT", str(self.pid)], check=False, timeout=timeout)
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # it must not outlive the measurement
            self._proc.kill()
            self._proc.wait()
        if self._reader:
            self._reader.join(timeout=timeout)
        return self.lines
