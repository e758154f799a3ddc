"""The meter's prober on the observer host, its output streamed back while it runs; the
same over SSH and inside the embedded lab. By default xenlab's own raw-socket prober
(`probe_script.py`: keeps a 1 ms schedule through outages); `ping` selects iputils ping."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import platform
import shlex
from pathlib import Path

from xenlab.errors import CommandError, LabError
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
        elif native and _is_ipv4(target):  # the C prober takes addresses, never names
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



def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


SHIP_DIR = "${XDG_CACHE_HOME:-$HOME/.cache}/xenlab"


def ship_native(runner: Runner, binary: Path, machine: str | None = None) -> str | None:
    """Copy the static C prober to a remote observer once per build and return its path
    there; None (the Python prober runs instead) where the observer's architecture is not
    this machine's. Kept under the remote user's cache, named by the build's digest, so a
    second run finds it and a new build never runs an old binary."""
    data = binary.read_bytes()
    name = f"xenlab-probe-{hashlib.sha256(data).hexdigest()[:16]}"
    if runner.run(["uname", "-m"]).stdout.strip() != (machine or platform.machine()):
        return None
    script = (f'd={SHIP_DIR}; mkdir -p -m 700 "$d" && cd "$d" && '
              f'if [ ! -x {name} ]; then base64 -d > {name}.tmp && chmod 700 {name}.tmp && '
              f'mv {name}.tmp {name}; else cat > /dev/null; fi && echo "$d/{name}"')
    try:
        out = runner.run(["sh", "-c", script], input=base64.encodebytes(data).decode())
    except CommandError as exc:
        raise LabError(f"cannot copy the prober to {runner.host}: {exc}") from None
    path = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if not path.endswith(name):
        raise LabError(f"cannot copy the prober to {runner.host}: {out.stdout!r}")
    check = runner.run(["sh", "-c", f"sha256sum {shlex.quote(path)}"]).stdout.split()
    if not check or check[0] != hashlib.sha256(data).hexdigest():
        raise LabError(f"the prober copied to {runner.host}:{path} does not match its build")
    return path
