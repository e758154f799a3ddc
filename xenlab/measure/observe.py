"""One migration observed: the meter probing the guest, a TCP stream through it, the guest's
witnesses before and after, and the hypervisor's own figures, as one record."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from xenlab.errors import XenlabError
from xenlab.inventory import Inventory
from xenlab.lab import Lab, guest_of
from xenlab.lab.image import ECHO_PORT
from xenlab.measure.continuity import judge
from xenlab.measure.ping import PingRun, figures, parse_ping, steady, timeline
from xenlab.measure.plan import Step
from xenlab.measure.prober import Prober
from xenlab.measure.results import MigrationRecord
from xenlab.measure.stream import TcpStream
from xenlab.measure.verdict import (
    STEADY_REPLIES,
    WINDOW_AFTER_S,
    WINDOW_BEFORE_S,
    WINDOW_MAX_AFTER_S,
    WINDOW_S,
)
from xenlab.measure.witness import GuestWitness


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_timeline(path: Path, run: PingRun, started: float, ended: float) -> None:
    probes = timeline(run)
    t0 = probes[0].sent if probes else started
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "t0": t0, "interval_ms": run.interval_s * 1000.0,
        "migration_ms": [(started - t0) * 1000.0, (ended - t0) * 1000.0],
        "probes": [[p.seq, round((p.sent - t0) * 1000.0, 3), p.rtt_ms] for p in probes],
    }))


def wait_until_steady(prober: Prober, mark: int, minimum_s: float,
                      maximum_s: float = WINDOW_MAX_AFTER_S) -> None:
    """Wait at least `minimum_s`, then until the prober's lines after `mark` (those printed
    since the migration ended) hold STEADY_REPLIES consecutive replies, or `maximum_s`."""
    started = time.monotonic()
    time.sleep(minimum_s)
    while time.monotonic() - started < maximum_s:
        if steady(parse_ping(list(prober.lines)[mark:], prober.interval_s), STEADY_REPLIES):
            return
        time.sleep(0.05)


def tcp_stream(lab: Lab, inventory: Inventory, interval_s: float,
               guest: str = "") -> TcpStream:
    """The TCP connection from the observer through the guest's echo service."""
    address = str(inventory.guest_named(guest).host.address)
    return TcpStream(lab.runner(inventory.observer), address, ECHO_PORT,
                     interval_s=interval_s, python=lab.probe_python)


def observe_migration(lab: Lab, step: Step, witness: GuestWitness,
                      make_prober: Callable[[str], Prober], make_stream: Callable[[str], TcpStream],
                      results_dir: Path) -> MigrationRecord:
    """Migrate one step while measuring everything; the record, with its timeline written
    under `results_dir`/timelines."""
    witness.ensure(step.scenario)
    before = witness.state()
    stream = make_stream(step.guest)
    stream.start()
    prober = make_prober(step.guest)
    prober.start()
    opened = time.monotonic()
    time.sleep(WINDOW_BEFORE_S)  # replies before the migration starts
    read_before = time.time()
    try:
        result = lab.migrate(step.destination, guest=step.guest)
    finally:
        # the meter's window: at least WINDOW_S long and WINDOW_AFTER_S past the end,
        # then until the replies are steady again (or WINDOW_MAX_AFTER_S: still open)
        wait_until_steady(prober, len(prober.lines),
                          max(WINDOW_AFTER_S, WINDOW_S - (time.monotonic() - opened)))
        ping_run = prober.stop()
        tcp = stream.stop()
    try:
        after = witness.state(sweep=True)
        continuity = judge(before, after, time.time() - read_before)
    except (XenlabError, AssertionError, RuntimeError) as exc:  # testinfra: ssh failed
        continuity = [f"the guest cannot be read after the migration: {str(exc)[-300:]}"]
    try:  # loss over the same span around the migration in every run
        network = figures(ping_run, (result.started_at - WINDOW_BEFORE_S,
                                     result.ended_at + WINDOW_AFTER_S)).as_dict()
    except XenlabError:
        network = None
    timeline_file = results_dir / "timelines" / f"{safe_name(step.id)}.json"
    write_timeline(timeline_file, ping_run, result.started_at, result.ended_at)
    record = MigrationRecord(
        id=step.id, scenario=step.scenario, round_trip=step.round_trip,
        source=step.source, destination=step.destination, status=result.status,
        started_at=result.started_at, ended_at=result.ended_at,
        hypervisor={"toolstack": result.toolstack, "total_time_ms": result.total_time_ms,
                    "downtime_ms": result.downtime_ms, "setup_time_ms": result.setup_time_ms,
                    "bytes_transferred": result.bytes_transferred,
                    "switchover_bytes": result.switchover_bytes,
                    "bandwidth_mbps": result.bandwidth_mbps,
                    "transfer_bound_ms": result.transfer_bound_ms,
                    "wall_time_ms": result.wall_time_ms, "error": result.error,
                    "memory_audit": (result.memory_audit.as_dict()
                                     if result.memory_audit else None),
                    # xl/xm: their progress events (s after the command)
                    "events_s": result.events_s or None,
                    "note": result.note or None},
        network=network, tcp=tcp.as_dict(), continuity=continuity, passed=False,
        timeline=str(timeline_file.relative_to(results_dir)),
        guest=guest_of(lab.inventory, step.guest).name)
    return record
