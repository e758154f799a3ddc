"""The meter at its edges, on saved real prober output (and doctored copies of it): an
outage still open when the window closes, probes still in flight at the stop, late echoes,
a target that never answers again, loss over a fixed span, the window's steadiness test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xenlab import cli
from xenlab.measure.ping import figures, open_gap, parse_ping, span_counts, steady, timeline

INTERVAL = 0.001


def _lines(data: Path, name: str) -> list[str]:
    return (data / "ping" / name).read_text().splitlines()


def _cut_after(lines: list[str], seq: int) -> list[str]:
    """The same run as if the target had stopped answering after icmp_seq=`seq`: later
    replies are gone, the prober's summary (probes sent) stays."""
    kept = []
    for line in lines:
        if "bytes from" in line and int(line.split("icmp_seq=")[1].split()[0]) > seq:
            continue
        kept.append(line)
    return kept


def test_an_outage_open_at_the_end_is_a_gap_of_at_least_its_length(data: Path) -> None:
    lines = _lines(data, "xenlab-probe-1ms-outages.txt")
    whole = figures(parse_ping(lines, INTERVAL))
    assert not whole.gap_open
    run = parse_ping(_cut_after(lines, 1000), INTERVAL)  # 126 probes unanswered at the end
    f = figures(run)
    assert f.gap_open and run.sent == 1126
    # from the last reply to the last probe's send time: about 126 intervals; the injected
    # 200 ms outage earlier in the run is still the longest gap
    assert f.open_gap_ms is not None and 120 <= f.open_gap_ms <= 135
    assert 199 <= f.longest_gap_ms <= 203
    tail = open_gap(run)
    assert tail is not None and tail.open and tail.lost == 126
    assert 120 <= tail.ms <= 135


def test_a_target_that_never_answers_again_dominates(data: Path) -> None:
    lines = _lines(data, "xenlab-probe-1ms-outages.txt")
    run = parse_ping(_cut_after(lines, 300), INTERVAL)  # silent for the last ~0.9 s
    f = figures(run)
    assert f.gap_open and f.open_gap_ms is not None and f.open_gap_ms >= 800
    assert f.downtime_ms >= 800  # the open outage is the longest: never a few ms


def test_probes_still_in_flight_at_the_stop_are_no_outage(data: Path) -> None:
    lines = _lines(data, "xenlab-probe-1ms-outages.txt")
    run = parse_ping(_cut_after(lines, 1124), INTERVAL)  # the last two had no reply yet
    assert open_gap(run) is None and not figures(run).gap_open


def test_iputils_notices_bound_an_open_outage(data: Path) -> None:
    lines = _lines(data, "iputils-ping-1ms-outage.txt")
    # the target stops answering just before the saved outage: ping's own "no answer yet"
    # notices (icmp_seq 353 on) bound the open outage, not the schedule
    run = parse_ping(_cut_after(lines, 340), INTERVAL)
    notices = [t for seq, t in run.unanswered if seq > 340]
    tail = open_gap(run)
    assert notices and tail is not None and tail.open
    assert tail.end == max(notices) and tail.ms > 0


def test_a_late_echo_does_not_hide_the_gap(data: Path) -> None:
    """A reply that comes back long after its probe (queued in a migrating guest) is a
    reply: the gap is measured between replies by arrival, and the late one is counted."""
    lines = _lines(data, "xenlab-probe-1ms-outages.txt")
    base = figures(parse_ping(lines, INTERVAL))
    doctored = []
    for line in lines:  # the reply to icmp_seq=600 arrives 50 ms late, after later ones
        if "icmp_seq=600 " in line:
            stamp = float(line[1:line.index("]")])
            late = line.replace(line[1:line.index("]")], f"{stamp + 0.05:.6f}")
            continue
        doctored.append(line)
    doctored.insert(next(i for i, ln in enumerate(doctored) if "icmp_seq=" in ln and
                         int(ln.split("icmp_seq=")[1].split()[0]) > 650), late)
    f = figures(parse_ping(doctored, INTERVAL))
    assert (f.received, f.lost, f.sent) == (base.received, base.lost, base.sent)
    assert not f.gap_open and f.longest_gap_ms == pytest.approx(base.longest_gap_ms)


def test_loss_over_a_fixed_span_does_not_depend_on_the_window(data: Path) -> None:
    lines = _lines(data, "xenlab-probe-1ms-outages.txt")
    run = parse_ping(lines, INTERVAL)
    outages = json.loads((data / "ping" / "outages-injected.json").read_text())["outages"]
    span = (outages[1]["start"] - 0.1, outages[1]["end"] + 0.1)
    f = figures(run, span)
    sent, received = span_counts(run, *span)
    assert (f.sent, f.received) == (sent, received)
    # a 400 ms span holding the 200 ms outage (the prober keeps ~1.1 ms intervals here)
    assert 340 <= sent <= 410 and 170 <= f.lost <= 210
    # a shorter window (the run cut 0.3 s after the span) gives the same loss over the span
    shorter = parse_ping([ln for ln in lines if "icmp_seq=" not in ln or
                          int(ln.split("icmp_seq=")[1].split()[0]) < 1000], INTERVAL)
    assert figures(shorter, span).loss_pct == pytest.approx(f.loss_pct)
    assert figures(run).loss_pct != pytest.approx(f.loss_pct)  # over the window: another figure


def test_steady_means_consecutive_replies(data: Path) -> None:
    run = parse_ping(_lines(data, "xenlab-probe-1ms-outages.txt"), INTERVAL)
    assert steady(run, 50)
    cut = parse_ping(_cut_after(_lines(data, "xenlab-probe-1ms-outages.txt"), 1000), INTERVAL)
    assert steady(cut, 50)  # replies up to 1000 were steady; nothing after says otherwise
    sparse = parse_ping([ln for ln in _lines(data, "xenlab-probe-1ms-outages.txt")
                         if "icmp_seq=" not in ln or
                         int(ln.split("icmp_seq=")[1].split()[0]) % 2], INTERVAL)
    assert not steady(sparse, 50) and not steady(run, len(run.replies) + 1)
    assert len(timeline(run)) == run.sent


def test_the_probe_command_reports_an_open_outage(data: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`xenlab probe` against a target that stops answering halfway: an open outage, exit 1
    (the prober's real output, as it printed it, stands in for the network)."""
    lines = _cut_after(_lines(data, "xenlab-probe-1ms-outages.txt"), 300)

    class Replay:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def start(self) -> None:
            pass

        def stop(self):  # type: ignore[no-untyped-def]
            return parse_ping(lines, INTERVAL)

    monkeypatch.setattr(cli, "Prober", Replay)
    code = cli.main(["probe", "198.18.0.21", "--duration", "1ms", "--tool", "ping"])
    out = capsys.readouterr().out
    assert code == 1 and "still open" in out and "at least" in out, out


ECHO_THAT_PAUSES = """
import socket, sys, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(1)
print("listening", flush=True)
conn, _ = srv.accept()
buffer, lines, paused = b"", 0, False
while True:
    data = conn.recv(65536)
    if not data:
        break
    buffer += data
    *done, buffer = buffer.split(b"\\n")
    lines += len(done)
    if lines >= 20 and not paused:  # the guest pauses (a migration's stop-and-copy)
        paused = True
        time.sleep(float(sys.argv[2]))
    conn.sendall(b"".join(line + b"\\n" for line in done))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace of its own needs root")
def test_the_tcp_stall_runs_to_the_first_echo_after_the_stop(tmp_path: Path) -> None:
    """The stream is stopped while the echo service is paused: the echoes drained after the
    stop end the stall, which is measured up to them (it used to read as one interval)."""
    from xenlab.measure.stream import SCRIPT, parse_stream_result

    ns = f"xenlab-unit{os.getpid()}--tcp"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        (tmp_path / "echo.py").write_text(ECHO_THAT_PAUSES)
        (tmp_path / "stream.py").write_text(SCRIPT)
        echo = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                                 str(tmp_path / "echo.py"), "7777", "0.8"],
                                stdout=subprocess.PIPE, text=True)
        assert echo.stdout is not None and echo.stdout.readline().strip() == "listening"
        stream = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                                   str(tmp_path / "stream.py"), "127.0.0.1", "7777", "0.01"],
                                  stdout=subprocess.PIPE, text=True)
        assert stream.stdout is not None and stream.stdout.readline().strip() == "connected"
        time.sleep(0.5)  # 20 lines in 0.2 s, then 0.3 s into the 0.8 s pause
        stream.send_signal(signal.SIGINT)
        out, _ = stream.communicate(timeout=30)
        result = parse_stream_result(out)
        assert result.intact and not result.stall_open, result
        assert result.longest_stall_ms >= 400, result  # to the first echo after the pause
        echo.kill()
        echo.wait()
    finally:
        subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
