"""The meter's prober on the observer host, its output streamed back while it runs; the
same over SSH and inside the embedded lab. By default xenlab's own raw-socket prober
(`probe_script.py`: keeps a 1 ms schedule through outages); `ping` selects iputils ping."""

from __future__ import annotations

from pathlib import Path

from xenlab.hosts.remote import PID_PREFIX, RemoteProcess, python_script
from xenlab.hosts.runner import Runner
from xenlab.measure.ping import PingRun, parse_ping

PING_SCRIPT = 'exec ping -D -O -n -W 1 -i "$1" "$2"'
PROBE_SCRIPT = (Path(__file__).parent / "probe_script.py").read_text()


class Prober:
    """start() ... stop() -> PingRun. One ICMP echo every `interval_s` to `target`."""

    def __init__(self, runner: Runner, target: str, interval_s: float = 0.001,
                 python: str = "python3", tool: str = "xenlab", native: str | None = None) -> None:
        """`native`: the C build of xenlab's prober where the host can run it (the same
        schedule and output as the Python one, a tenth of its CPU)."""
        if tool not in ("xenlab", "ping"):
            raise ValueError(tool)
        self.runner = runner
        self.target = target
        self.interval_s = interval_s
        if tool == "ping":
            argv = ["sh", "-c", PID_PREFIX.removesuffix("exec ") + PING_SCRIPT, "xenlab-ping",
                    f"{interval_s:.6f}", target]
        elif native:
            argv = ["sh", "-c", PID_PREFIX + '"$0" "$@"', native, target, f"{interval_s:.6f}"]
        else:
            argv = python_script(python, PROBE_SCRIPT, target, f"{interval_s:.6f}")
        self.process = RemoteProcess(runner, argv, "PING ", f"the prober to {target}")

    @property
    def remote_pid(self) -> int | None:
        return self.process.pid

    @property
    def lines(self) -> list[str]:
        return self.process.lines

    def start(self, timeout: float = 10.0) -> None:
        self.process.start(timeout)

    def stop(self, timeout: float = 10.0) -> PingRun:
        """SIGINT (the prober prints its summary), then the parsed run."""
        return parse_ping(self.process.stop(timeout), self.interval_s)

