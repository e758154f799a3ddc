"""The meter's prober on the observer host, its output streamed back while it runs; the
same over SSH and inside the embedded lab. By default xenlab's own raw-socket prober
(`probe_script.py`: keeps a 1 ms schedule through outages); `ping` selects iputils ping."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from xenlab.errors import LabError
from xenlab.hosts.runner import Runner
from xenlab.measure.ping import PingRun, parse_ping

PING_SCRIPT = 'echo "xenlab-pid $$"; exec ping -D -O -n -W 1 -i "$1" "$2"'
PROBE_SCRIPT = (Path(__file__).parent / "probe_script.py").read_text()


class Prober:
    """start() ... stop() -> PingRun. One ICMP echo every `interval_s` to `target`."""

    def __init__(self, runner: Runner, target: str, interval_s: float = 0.001,
                 python: str = "python3", tool: str = "xenlab") -> None:
        if tool not in ("xenlab", "ping"):
            raise ValueError(tool)
        self.python = python
        self.tool = tool
        self.runner = runner
        self.target = target
        self.interval_s = interval_s
        self.lines: list[str] = []
        self.remote_pid: int | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._started = threading.Event()

    def start(self, timeout: float = 10.0) -> None:
        if self.tool == "ping":
            argv = ["sh", "-c", PING_SCRIPT, "xenlab-ping", f"{self.interval_s:.6f}", self.target]
        else:
            argv = ["sh", "-c", 'echo "xenlab-pid $$"; exec "$0" -u -c "$@"', self.python,
                    PROBE_SCRIPT, self.target, f"{self.interval_s:.6f}"]
        self._proc = self.runner.stream(argv)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._started.wait(timeout):
            self._kill_local()
            raise LabError(f"ping from {self.runner.host} to {self.target} did not start: "
                           f"{''.join(self.lines)[-300:]}")

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if self.remote_pid is None and line.startswith("xenlab-pid "):
                self.remote_pid = int(line.split()[1])
                continue
            self.lines.append(line)
            if not self._started.is_set() and line.startswith("PING "):
                self._started.set()
        self._started.set()

    def stop(self, timeout: float = 10.0) -> PingRun:
        """SIGINT to ping (it prints its summary), then the parsed run."""
        if self._proc is None:
            raise LabError("the prober was never started")
        if self.remote_pid is not None and self._proc.poll() is None:
            self.runner.run(["kill", "-INT", str(self.remote_pid)], check=False, timeout=timeout)
        try:
            self._proc.wait(timeout=timeout)
        except Exception:  # noqa: BLE001 - it must not outlive the measurement
            self._kill_local()
        if self._reader:
            self._reader.join(timeout=timeout)
        return parse_ping(self.lines, self.interval_s)

    def _kill_local(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def measure(runner: Runner, target: str, seconds: float, interval_s: float = 0.001,
            python: str = "python3") -> PingRun:
    """Probe for `seconds` and return the run."""
    prober = Prober(runner, target, interval_s, python)
    prober.start()
    time.sleep(seconds)
    return prober.stop()
