"""A TCP connection held open across a migration, from the observer to the guest's echo
service: no reset, no lost or reordered bytes, and its longest stall."""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from xenlab.errors import LabError, ParseError
from xenlab.hosts.runner import Runner

SCRIPT = (Path(__file__).parent / "stream_script.py").read_text()


@dataclass(frozen=True)
class StreamResult:
    sent: int
    echoed: int
    in_order: bool
    error: str
    longest_stall_ms: float

    @property
    def intact(self) -> bool:
        """Every line came back, in order, on a connection that stayed up."""
        return not self.error and self.in_order and self.echoed == self.sent

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def parse_stream_result(text: str) -> StreamResult:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                d = json.loads(line)
                return StreamResult(int(d["sent"]), int(d["echoed"]), bool(d["in_order"]),
                                    str(d["error"]), float(d["longest_stall_ms"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise ParseError("TCP stream result", str(exc), line) from None
    raise ParseError("TCP stream result", "no JSON line", text)


class TcpStream:
    def __init__(self, runner: Runner, address: str, port: int, interval_s: float = 0.01,
                 python: str = "python3") -> None:
        self.runner, self.address, self.port = runner, address, port
        self.interval_s, self.python = interval_s, python
        self.lines: list[str] = []
        self.remote_pid: int | None = None
        self._connected = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 15.0) -> None:
        self._proc = self.runner.stream(
            ["sh", "-c", 'echo "xenlab-pid $$"; exec "$0" -u -c "$@"', self.python, SCRIPT,
             self.address, str(self.port), str(self.interval_s)])
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._connected.wait(timeout) or not any(line.startswith("connected") for line in self.lines):
            self.stop()
            raise LabError(f"no TCP connection from {self.runner.host} to "
                           f"{self.address}:{self.port}: {''.join(self.lines)[-300:]}")

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if self.remote_pid is None and line.startswith("xenlab-pid "):
                self.remote_pid = int(line.split()[1])
                continue
            self.lines.append(line)
            if line.startswith("connected"):
                self._connected.set()
        self._connected.set()

    def stop(self, timeout: float = 10.0) -> StreamResult:
        if self._proc is None:
            raise LabError("the TCP stream was never started")
        if self.remote_pid is not None and self._proc.poll() is None:
            self.runner.run(["kill", "-INT", str(self.remote_pid)], check=False, timeout=timeout)
        try:
            self._proc.wait(timeout=timeout)
        except Exception:  # noqa: BLE001
            self._proc.kill()
            self._proc.wait()
        if self._reader:
            self._reader.join(timeout=timeout)
        return parse_stream_result("".join(self.lines))
