"""A TCP connection held open across a migration, from the observer to the guest's echo
service: no reset, no lost or reordered bytes, and its longest stall."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from xenlab.errors import ParseError
from xenlab.hosts.remote import RemoteProcess, python_script
from xenlab.hosts.runner import Runner

SCRIPT = (Path(__file__).parent / "stream_script.py").read_text()


@dataclass(frozen=True)
class StreamResult:
    sent: int
    echoed: int
    in_order: bool
    error: str
    longest_stall_ms: float
    stall_open: bool = False  # lines never came back: the stall had not ended at the report

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
                                    str(d["error"]), float(d["longest_stall_ms"]),
                                    bool(d.get("stall_open", False)))
            except (ValueError, KeyError, TypeError) as exc:
                raise ParseError("TCP stream result", str(exc), line) from None
    raise ParseError("TCP stream result", "no JSON line", text)


class TcpStream:
    """start() ... stop() -> StreamResult: one connection, a numbered line every interval."""

    def __init__(self, runner: Runner, address: str, port: int, interval_s: float = 0.01,
                 python: str = "python3") -> None:
        self.process = RemoteProcess(
            runner, python_script(python, SCRIPT, address, str(port), str(interval_s)),
            "connected", f"a TCP connection to {address}:{port}")

    def start(self, timeout: float = 15.0) -> None:
        self.process.start(timeout)

    def stop(self, timeout: float = 30.0) -> StreamResult:
        """SIGINT; the script drains echoes for up to 20 s before it reports."""
        return parse_stream_result("".join(self.process.stop(timeout)))
