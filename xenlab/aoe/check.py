"""Offline analysis of an AoE capture (`xenlab aoe-check CAPTURE.pcap`): pure over frames.

Pairs requests and responses by initiator and tag and reports: error responses, requests
never answered, retransmissions, answers from unexpected MACs, two MACs answering for one
target, version and length anomalies, and the targets seen (shelf.slot, MAC, capacity).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from xenlab.aoe import frames as fr
from xenlab.errors import ParseError


@dataclass(frozen=True)
class Finding:
    kind: str  # error-response, unanswered, retransmission, unexpected-mac, conflict, version, length
    frame: int  # 1-based index in the capture
    message: str


@dataclass
class Target:
    shelf: int
    slot: int
    macs: set[str] = field(default_factory=set)
    capacity: int | None = None
    buffer_count: int | None = None
    firmware: int | None = None
    model: str = ""

    @property
    def name(self) -> str:
        return f"e{self.shelf}.{self.slot}"


@dataclass
class Analysis:
    frames: int = 0
    aoe_frames: int = 0
    requests: int = 0
    responses: int = 0
    findings: list[Finding] = field(default_factory=list)
    targets: dict[tuple[int, int], Target] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def report(self) -> str:
        lines = [f"{self.frames} frames, {self.aoe_frames} AoE: {self.requests} requests, "
                 f"{self.responses} responses"]
        for t in sorted(self.targets.values(), key=lambda t: (t.shelf, t.slot)):
            cap = f"{t.capacity} bytes" if t.capacity is not None else "capacity unknown"
            extra = f", {t.buffer_count} buffers" if t.buffer_count is not None else ""
            model = f", {t.model}" if t.model else ""
            lines.append(f"target {t.name} at {', '.join(sorted(t.macs))}: {cap}{extra}{model}")
        if not self.findings:
            lines.append("no problems found")
        for f in self.findings:
            lines.append(f"PROBLEM {f.kind} (frame {f.frame}): {f.message}")
        return "\n".join(lines)


def _min_length(frame: fr.AoeFrame) -> int:
    if frame.command == fr.CMD_ATA:
        return 14 + fr.AOE_HEADER + fr.ATA_HEADER
    if frame.command == fr.CMD_QUERY_CONFIG:
        return 14 + fr.AOE_HEADER + 8
    return 14 + fr.AOE_HEADER


def analyze(raw_frames: Iterable[bytes], expected_macs: Sequence[str] = ()) -> Analysis:
    result = Analysis()
    expected = {m.lower() for m in expected_macs}
    pending: dict[tuple[str, int], tuple[int, fr.AoeFrame]] = {}  # (initiator, tag) -> request
    answered: set[tuple[str, int]] = set()
    sent: dict[tuple[str, int], int] = defaultdict(int)
    for index, raw in enumerate(raw_frames, start=1):
        result.frames += 1
        if len(raw) < 14 or raw[12:14] != fr.ETHERTYPE_AOE.to_bytes(2, "big"):
            continue
        result.aoe_frames += 1
        try:
            frame = fr.dissect(raw)
        except ParseError as exc:
            result.findings.append(Finding("length", index, str(exc)))
            continue
        if frame.version != 1:
            result.findings.append(Finding("version", index, f"AoE version {frame.version} "
                                           f"from {frame.src} (expected 1)"))
        if frame.length < _min_length(frame):
            result.findings.append(Finding("length", index, f"{frame.length} bytes from "
                                           f"{frame.src}, below the {_min_length(frame)} a "
                                           f"command {frame.command} frame needs"))
            continue
        if not frame.response:
            result.requests += 1
            key = (frame.src, frame.tag)
            sent[key] += 1
            if sent[key] > 1:
                result.findings.append(Finding("retransmission", index, f"{frame.src} sent tag "
                                               f"{frame.tag:#x} again ({sent[key]} times)"))
            pending.setdefault(key, (index, frame))
            continue
        result.responses += 1
        key = (frame.dst, frame.tag)
        answered.add(key)
        target = result.targets.setdefault((frame.shelf, frame.slot),
                                           Target(frame.shelf, frame.slot))
        new_mac = frame.src not in target.macs
        target.macs.add(frame.src)
        if new_mac and len(target.macs) > 1:
            result.findings.append(Finding("conflict", index, f"{target.name} answered by "
                                           f"{', '.join(sorted(target.macs))}: two exports of "
                                           f"one shelf.slot"))
        if expected and frame.src.lower() not in expected:
            result.findings.append(Finding("unexpected-mac", index, f"{target.name} answered "
                                           f"from {frame.src}, not one of {sorted(expected)}"))
        if frame.error_flag:
            result.findings.append(Finding("error-response", index, f"{target.name} from "
                                           f"{frame.src} tag {frame.tag:#x}: {frame.error_text}"))
            continue
        _learn(target, frame, pending.get(key), result, index)
    for key, (index, request) in pending.items():
        broadcast = request.dst == fr.BROADCAST
        if key not in answered and not broadcast:
            result.findings.append(Finding("unanswered", index, f"{request.src} tag "
                                           f"{request.tag:#x} to {request.target} at "
                                           f"{request.dst} never answered"))
    return result


def _learn(target: Target, frame: fr.AoeFrame, request: tuple[int, fr.AoeFrame] | None,
           result: Analysis, index: int) -> None:
    if frame.command == fr.CMD_QUERY_CONFIG:
        cfg = frame.config()
        target.buffer_count, target.firmware = cfg.buffer_count, cfg.firmware
        return
    if frame.command != fr.CMD_ATA or request is None:
        return
    op = request[1].payload[3] if len(request[1].payload) >= fr.ATA_HEADER else None
    wanted = request[1].payload[2] if op == fr.ATA_READ_EXT else 1
    if op in (fr.ATA_IDENTIFY, fr.ATA_READ_EXT):
        data = frame.payload[fr.ATA_HEADER:]
        if len(data) < wanted * fr.SECTOR:
            result.findings.append(Finding("length", index, f"{target.name} answered tag "
                                           f"{frame.tag:#x} with {len(data)} data bytes, "
                                           f"{wanted * fr.SECTOR} asked for"))
            return
    if op == fr.ATA_IDENTIFY:
        identify = fr.parse_identify(frame.ata_data())
        target.capacity, target.model = identify.capacity, identify.model


def read_capture(path: str) -> list[bytes]:
    """Frames of a pcap or pcapng file; ParseError with the reason for anything else."""
    from scapy.error import Scapy_Exception
    from scapy.utils import PcapReader

    try:
        with PcapReader(path) as reader:
            return [bytes(packet) for packet in reader]
    except FileNotFoundError:
        raise ParseError(path, "no such file") from None
    except (Scapy_Exception, EOFError, OSError, ValueError) as exc:
        raise ParseError(path, f"not a pcap or pcapng capture ({exc})") from None
