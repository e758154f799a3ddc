"""The network's view of a migration: iputils `ping -D -O -i INTERVAL` output -> samples ->
figures. Pure: the prober only fetches the lines.

    [1795675622.904096] 64 bytes from 198.18.0.21: icmp_seq=1 ttl=64 time=1.87 ms
    [1795675622.905104] no answer yet for icmp_seq=2
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from xenlab.errors import ParseError

_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) .*?time=([\d.]+) ms"
                    r"(?: sent=(\d+\.\d+))?")
_NO_ANSWER = re.compile(r"^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)")
_SUMMARY = re.compile(r"^(\d+) packets transmitted, (\d+) received")
SEQ_MODULO = 1 << 16


@dataclass(frozen=True)
class Reply:
    seq: int  # unwrapped: keeps counting past 65535
    time: float  # wall clock when ping printed it (-D)
    rtt_ms: float
    sent: float | None = None  # when it was sent (xenlab's prober says; iputils does not)


@dataclass
class PingRun:
    interval_s: float
    replies: list[Reply] = field(default_factory=list)
    unanswered: list[tuple[int, float]] = field(default_factory=list)  # (seq, time noticed)
    transmitted: int | None = None  # from ping's summary, when it printed one
    duplicates: int = 0

    @property
    def sent(self) -> int:
        """Probes sent: ping's own count when it printed its summary, else the highest
        sequence number seen (both probers start at 1)."""
        if self.transmitted is not None:
            return self.transmitted
        return max([r.seq for r in self.replies] + [s for s, _ in self.unanswered] + [0])


def _unwrap(raw: int, last: int | None) -> int:
    if last is None:
        return raw
    base = last - (last % SEQ_MODULO)
    candidate = base + raw
    if candidate < last - SEQ_MODULO // 2:
        candidate += SEQ_MODULO
    return candidate


def parse_ping(lines: Iterable[str], interval_s: float) -> PingRun:
    """Lines of `ping -D -O` (any order of replies, sequence numbers wrapping at 65536)."""
    run = PingRun(interval_s)
    last: int | None = None
    seen: set[int] = set()
    for line in lines:
        line = line.strip()
        if m := _REPLY.match(line):
            seq = _unwrap(int(m.group(2)), last)
            last = max(seq, last or 0)
            if seq in seen:
                run.duplicates += 1
                continue
            seen.add(seq)
            run.replies.append(Reply(seq, float(m.group(1)), float(m.group(3)),
                                     float(m.group(4)) if m.group(4) else None))
        elif m := _NO_ANSWER.match(line):
            seq = _unwrap(int(m.group(2)), last)
            last = max(seq, last or 0)
            run.unanswered.append((seq, float(m.group(1))))
        elif m := _SUMMARY.match(line):
            run.transmitted = int(m.group(1))
    return run


@dataclass(frozen=True)
class Gap:
    start: float  # time of the last reply before the gap
    end: float  # time of the first reply after it (open: when the last probe was sent)
    lost: int  # probes that went unanswered in between
    open: bool = False  # no reply came after it before the meter stopped: at least this long

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000.0


@dataclass(frozen=True)
class MeterFigures:
    interval_ms: float
    sent: int
    received: int
    lost: int
    loss_pct: float
    longest_gap_ms: float
    downtime_ms: float  # longest gap minus one interval: how long the guest was unreachable
    gap_start: float | None
    gap_end: float | None
    gap_open: bool  # an outage was still open when the meter stopped ...
    open_gap_ms: float | None  # ... this long at least (from the last reply to the last probe)
    rtt_min_ms: float | None
    rtt_median_ms: float | None
    rtt_p99_ms: float | None
    rtt_max_ms: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of sorted-or-not values."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def _sent_time(reply: Reply) -> float:
    return reply.sent if reply.sent is not None else reply.time - reply.rtt_ms / 1000.0


def in_flight(run: PingRun) -> int:
    """How many of the last probes may still have had their reply on the way when the meter
    stopped: the slowest round trip seen, in intervals, plus two."""
    slowest = max((r.rtt_ms for r in run.replies), default=0.0) / 1000.0
    return math.ceil(slowest / run.interval_s) + 2 if run.interval_s > 0 else 2


def open_gap(run: PingRun) -> Gap | None:
    """The outage still going on when the meter stopped: probes after the last reply went
    unanswered, more of them than could still be in flight. It runs from the last reply to
    when the last probe was sent (ping's 'no answer yet' notice, or the schedule from the
    last reply's send time), so it is a lower bound of the outage."""
    if not run.replies:
        return None
    last = max(run.replies, key=lambda r: r.seq)
    missing = run.sent - last.seq
    if missing <= in_flight(run):
        return None
    ends = [t for seq, t in run.unanswered if seq > last.seq]
    end = max(ends) if ends else _sent_time(last) + missing * run.interval_s
    latest = max(run.replies, key=lambda r: r.time)
    return Gap(latest.time, max(end, latest.time), missing, open=True)


def gaps(run: PingRun, start: float | None = None, end: float | None = None) -> list[Gap]:
    """Gaps between consecutive replies (by print time), optionally within [start, end],
    and the open one at the end of the run when the target had stopped answering."""
    replies = sorted(run.replies, key=lambda r: r.time)
    if start is not None:
        replies = [r for r in replies if r.time >= start]
    if end is not None:
        replies = [r for r in replies if r.time <= end]
    found = [Gap(a.time, b.time, max(0, b.seq - a.seq - 1))
             for a, b in itertools.pairwise(replies)]
    tail = open_gap(run)
    if tail is not None and (start is None or tail.end >= start) and \
            (end is None or tail.start <= end):
        found.append(tail)
    return found


def longest_gap(run: PingRun, start: float | None = None, end: float | None = None) -> Gap | None:
    found = gaps(run, start, end)
    return max(found, key=lambda g: g.end - g.start) if found else None


def steady(run: PingRun, n: int) -> bool:
    """The last `n` replies (by sequence number) are consecutive: the target answers every
    probe again."""
    seqs = sorted(r.seq for r in run.replies)[-n:]
    return len(seqs) == n and seqs[-1] - seqs[0] == n - 1


def span_counts(run: PingRun, start: float, end: float) -> tuple[int, int]:
    """(sent, received) of the probes sent within [start, end] (send times from the
    schedule for lost ones): the same span in every run, whatever the window's length."""
    probes = [p for p in timeline(run) if start <= p.sent <= end]
    return len(probes), sum(1 for p in probes if p.rtt_ms is not None)


def figures(run: PingRun, span: tuple[float, float] | None = None) -> MeterFigures:
    """The meter's figures. Loss is over `span` (start, end) when given, else over the run;
    the longest gap is over the run, an outage still open at its end included."""
    if not run.replies:
        raise ParseError("ping output", "no replies at all: is the target reachable?")
    sent, received = span_counts(run, *span) if span else (run.sent, len(run.replies))
    lost = max(0, sent - received)
    gap, tail = longest_gap(run), open_gap(run)
    interval_ms = run.interval_s * 1000.0
    longest = gap.ms if gap else 0.0
    rtts = [r.rtt_ms for r in run.replies]
    return MeterFigures(
        interval_ms=interval_ms, sent=sent, received=received, lost=lost,
        loss_pct=100.0 * lost / sent if sent else 0.0,
        longest_gap_ms=longest, downtime_ms=max(0.0, longest - interval_ms),
        gap_start=gap.start if gap else None, gap_end=gap.end if gap else None,
        gap_open=tail is not None, open_gap_ms=tail.ms if tail else None,
        rtt_min_ms=min(rtts), rtt_median_ms=statistics.median(rtts),
        rtt_p99_ms=percentile(rtts, 99), rtt_max_ms=max(rtts),
    )


@dataclass(frozen=True)
class Probe:
    seq: int
    sent: float  # wall clock (estimated from the schedule when the prober did not say)
    rtt_ms: float | None  # None: lost


def timeline(run: PingRun) -> list[Probe]:
    """Every probe sent, in order, with its send time and RTT (None when lost): for plots.
    A lost probe's send time is interpolated between its neighbours' (the schedule)."""
    if not run.replies:
        return []
    known = sorted((r.seq, _sent_time(r), r.rtt_ms) for r in run.replies)
    first, last = known[0][0], max(run.sent + known[0][0] - 1, known[-1][0])
    out = []
    k = 0
    for seq in range(first, last + 1):
        while k + 1 < len(known) and known[k + 1][0] <= seq:
            k += 1
        s0, t0, rtt = known[k]
        if s0 == seq:
            out.append(Probe(seq, t0, rtt))
            continue
        if k + 1 < len(known):
            s1, t1, _ = known[k + 1]
            out.append(Probe(seq, t0 + (seq - s0) * (t1 - t0) / (s1 - s0), None))
        else:
            out.append(Probe(seq, t0 + (seq - s0) * run.interval_s, None))
    return out
