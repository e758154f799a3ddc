"""Offline analysis of an AoE capture (`xenlab aoe-check CAPTURE.pcap`): pure over frames.

Pairs requests and responses and reports: error responses, requests never answered
("unanswered"), discoveries no target answered ("no-target"), retransmissions, answers from
unexpected MACs, two MACs answering for one target, version and length anomalies, and the
targets seen (shelf.slot, MAC, capacity).

A request is answered by a later frame with the Response flag set, the same shelf, slot,
tag and command, sent to the request's initiator (or to broadcast), from any source MAC;
the request itself may have gone to any destination MAC, unicast or broadcast. A request
to the wildcard shelf 0xffff or slot 0xff (a discovery) is answered by a response of any
target it covers.

Requests near the capture's end: a request whose answer may still have been in flight
when the capture stopped (its last transmission less than `IN_FLIGHT_S` before the
capture's last frame) still counts as unanswered (exit 1): nothing else tells a target
that died at the end of a short session (the harness's probe windows are 0.5 s) from a
capture stopped too early, and vblade answers within a millisecond (0.1 ms in the saved
captures). Its message says how long after it the capture ended, the finding has
`in_flight=True`, and the report's total says how many of the unanswered were so close to
the end: capture a little longer to be sure.
"""

from __future__ import annotations

import struct
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from xenlab.aoe import frames as fr
from xenlab.errors import ParseError

IN_FLIGHT_S = 1.0  # an answer may still be on its way this long after its request
LISTED = 10  # findings of one kind listed one by one in the report; the rest are counted
WILDCARD_SHELF = 0xFFFF
WILDCARD_SLOT = 0xFF
ATA_NAMES = {fr.ATA_IDENTIFY: "IDENTIFY", fr.ATA_READ_EXT: "READ EXT", 0x34: "WRITE EXT",
             0x20: "READ", 0x30: "WRITE", 0xE7: "FLUSH CACHE", 0xEA: "FLUSH CACHE EXT"}


@dataclass(frozen=True)
class CaptureFrame:
    """One frame of a capture file: its bytes and when it was captured (seconds since the
    epoch; None when the file does not say, as in a pcapng Simple Packet Block)."""

    time: float | None
    raw: bytes


@dataclass(frozen=True)
class Finding:
    kind: str  # error-response, unanswered, no-target, retransmission, unexpected-mac,
    # conflict, version, length
    frame: int  # 1-based index in the capture
    message: str
    target: str = ""  # e0.1; e*.* for a discovery of every shelf and slot
    tag: int | None = None
    time: float | None = None  # seconds after the capture's first frame
    in_flight: bool = False  # within IN_FLIGHT_S of the capture's end: may yet be answered


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

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def report(self) -> str:
        """Targets, then findings: at most LISTED of each kind, and a total per kind that
        has more (and for unanswered requests always)."""
        lines = [f"{self.frames} frames, {self.aoe_frames} AoE: {self.requests} requests, "
                 f"{self.responses} responses"]
        for t in sorted(self.targets.values(), key=lambda t: (t.shelf, t.slot)):
            cap = f"{t.capacity} bytes" if t.capacity is not None else "capacity unknown"
            extra = f", {t.buffer_count} buffers" if t.buffer_count is not None else ""
            model = f", {t.model}" if t.model else ""
            lines.append(f"target {t.name} at {', '.join(sorted(t.macs))}: {cap}{extra}{model}")
        if not self.findings:
            lines.append("no problems found")
        listed: Counter[str] = Counter()
        for f in self.findings:
            listed[f.kind] += 1
            if listed[f.kind] <= LISTED:
                lines.append(f"PROBLEM {f.kind} (frame {f.frame}): {f.message}")
        for kind, count in listed.items():
            if kind != "unanswered" and count <= LISTED:
                continue
            shown = f", the first {LISTED} listed" if count > LISTED else ""
            if kind == "unanswered":
                near = sum(1 for f in self.of_kind(kind) if f.in_flight)
                near_text = (f"; {near} sent less than {IN_FLIGHT_S:g} s before the capture "
                             "ended (capture longer to be sure)" if near else "")
                lines.append(f"{count} request{'s' if count > 1 else ''} never answered"
                             f"{shown}{near_text}")
            else:
                lines.append(f"{count} {kind} findings{shown}")
        return "\n".join(lines)


def _min_length(frame: fr.AoeFrame) -> int:
    if frame.command == fr.CMD_ATA:
        return 14 + fr.AOE_HEADER + fr.ATA_HEADER
    if frame.command == fr.CMD_QUERY_CONFIG:
        return 14 + fr.AOE_HEADER + 8
    return 14 + fr.AOE_HEADER


@dataclass
class _Request:
    """A request waiting for its answer; retransmissions of it (same initiator, shelf,
    slot, tag and command) are counted on it."""

    frame: fr.AoeFrame
    index: int
    time: float | None
    last_index: int
    last_time: float | None
    sent: int = 1

    @property
    def discovery(self) -> bool:
        return self.frame.shelf == WILDCARD_SHELF or self.frame.slot == WILDCARD_SLOT

    def answered_by(self, response: fr.AoeFrame) -> bool:
        request = self.frame
        return (response.tag == request.tag and response.command == request.command
                and response.dst in (request.src, fr.BROADCAST)
                and request.shelf in (response.shelf, WILDCARD_SHELF)
                and request.slot in (response.slot, WILDCARD_SLOT))


def _address(shelf: int, slot: int) -> str:
    return (f"e{'*' if shelf == WILDCARD_SHELF else shelf}."
            f"{'*' if slot == WILDCARD_SLOT else slot}")


def _command(frame: fr.AoeFrame) -> str:
    if frame.command == fr.CMD_QUERY_CONFIG:
        return "Query Config"
    if frame.command == fr.CMD_ATA:
        if len(frame.payload) < fr.ATA_HEADER:
            return "ATA"
        op = frame.payload[3]
        return f"ATA {ATA_NAMES[op]} ({op:#04x})" if op in ATA_NAMES else f"ATA {op:#04x}"
    return f"command {frame.command}"


def analyze(raw_frames: Iterable[bytes | CaptureFrame], expected_macs: Sequence[str] = (),
            in_flight: float = IN_FLIGHT_S) -> Analysis:
    """Frames (bytes, or CaptureFrames as read_capture gives them, whose times place the
    findings and the capture's end) -> Analysis. See the module's docstring for what answers
    a request and the rule for requests within `in_flight` seconds of the capture's end."""
    result = Analysis()
    expected = {m.lower() for m in expected_macs}
    waiting: dict[tuple[int, int, int, int], list[_Request]] = defaultdict(list)
    wildcard: dict[tuple[int, int], list[_Request]] = defaultdict(list)  # (tag, command)
    sent: dict[tuple[str, int], int] = defaultdict(int)
    first_time: float | None = None
    last_time: float | None = None
    for index, item in enumerate(raw_frames, start=1):
        raw, time = (item.raw, item.time) if isinstance(item, CaptureFrame) else (item, None)
        if time is not None:
            first_time = time if first_time is None else first_time
            last_time = time
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
            _wait(frame, index, time, waiting, wildcard)
            continue
        result.responses += 1
        request = _answer(frame, waiting, wildcard)
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
        _learn(target, frame, request, result, index)
    left = [r for group in (*waiting.values(), *wildcard.values()) for r in group]
    for request in sorted(left, key=lambda r: r.index):
        result.findings.append(_unanswered(request, first_time, last_time, in_flight))
    return result


def _wait(frame: fr.AoeFrame, index: int, time: float | None,
          waiting: dict[tuple[int, int, int, int], list[_Request]],
          wildcard: dict[tuple[int, int], list[_Request]]) -> None:
    """Keep a request until its answer; a retransmission is counted on the one it repeats."""
    if frame.shelf == WILDCARD_SHELF or frame.slot == WILDCARD_SLOT:
        group = wildcard[(frame.tag, frame.command)]
    else:
        group = waiting[(frame.shelf, frame.slot, frame.tag, frame.command)]
    for request in group:
        if (request.frame.src, request.frame.shelf, request.frame.slot) == (
                frame.src, frame.shelf, frame.slot):
            request.sent += 1
            request.last_index, request.last_time = index, time
            return
    group.append(_Request(frame, index, time, index, time))


def _answer(response: fr.AoeFrame, waiting: dict[tuple[int, int, int, int], list[_Request]],
            wildcard: dict[tuple[int, int], list[_Request]]) -> _Request | None:
    """The waiting request this response answers (no longer waiting), or None. A discovery
    stays answered however many targets answer it."""
    named = waiting.get((response.shelf, response.slot, response.tag, response.command), [])
    discoveries = wildcard.get((response.tag, response.command), [])
    for group in (named, discoveries):
        for request in group:
            if request.answered_by(response):
                group.remove(request)
                return request
    return None


def _unanswered(request: _Request, first_time: float | None, last_time: float | None,
                in_flight: float) -> Finding:
    frame = request.frame
    address = _address(frame.shelf, frame.slot)
    rel = None
    notes = []
    if request.time is not None and first_time is not None:
        rel = request.time - first_time
        notes.append(f"{rel:.3f} s into the capture")
    if request.sent > 1:
        notes.append(f"sent {request.sent} times, last at frame {request.last_index}")
    where = f" ({', '.join(notes)})" if notes else ""
    near = False
    tail = ""
    if request.last_time is not None and last_time is not None:
        after = last_time - request.last_time
        if after < in_flight:
            near = True
            tail = (f"; the capture ended {after * 1000:.0f} ms after it, so the answer may "
                    "have been in flight")
    if request.discovery:
        covers = ("every shelf and slot" if address == "e*.*" else address)
        message = (f"no target answered the discovery ({_command(frame)} to {covers}, tag "
                   f"{frame.tag:#x}) from {frame.src} to {frame.dst}{where}{tail}")
        kind = "no-target"
    else:
        message = (f"{address} tag {frame.tag:#x} {_command(frame)} from {frame.src} to "
                   f"{frame.dst}{where} never answered{tail}")
        kind = "unanswered"
    return Finding(kind, request.index, message, target=address, tag=frame.tag, time=rel,
                   in_flight=near)


def _learn(target: Target, frame: fr.AoeFrame, request: _Request | None,
           result: Analysis, index: int) -> None:
    if frame.command == fr.CMD_QUERY_CONFIG:
        cfg = frame.config()
        target.buffer_count, target.firmware = cfg.buffer_count, cfg.firmware
        return
    if frame.command != fr.CMD_ATA or request is None:
        return
    payload = request.frame.payload
    op = payload[3] if len(payload) >= fr.ATA_HEADER else None
    wanted = payload[2] if op == fr.ATA_READ_EXT else 1
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


# -- reading capture files -----------------------------------------------------------------

EXPECTED = "expected a pcap or pcapng capture of an Ethernet interface (tcpdump -w)"
LINKTYPE_ETHERNET = 1
LINKTYPE_NAMES = {113: "Linux cooked capture, as from tcpdump -i any",
                  276: "Linux cooked capture v2, as from tcpdump -i any"}
PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


def read_capture(path: str) -> list[CaptureFrame]:
    """Frames of a pcap or pcapng file. A missing, unreadable, empty, truncated or foreign
    file, or one without frames, is a ParseError naming the file and what was expected."""
    what = f"capture {path}"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ParseError(what, f"no such file; {EXPECTED}") from None
    except IsADirectoryError:
        raise ParseError(what, f"is a directory; {EXPECTED}") from None
    except OSError as exc:
        raise ParseError(what, f"cannot read it ({exc.strerror or exc}); {EXPECTED}") from None
    return parse_capture(data, what)


def parse_capture(data: bytes, what: str = "capture") -> list[CaptureFrame]:
    """Bytes of a pcap (micro- or nanosecond, either byte order) or pcapng file -> frames.
    Strict: a record or block that runs past the end of the data is an error, not dropped."""
    if not data:
        raise ParseError(what, f"empty file (0 bytes); {EXPECTED}")
    if data[:4] in PCAP_MAGICS:
        frames = _parse_pcap(data, what)
    elif data[:4] == PCAPNG_SHB:
        frames = _parse_pcapng(data, what)
    else:
        raise ParseError(what, f"not a pcap or pcapng capture: it starts with {data[:8]!r}, "
                         f"not a pcap magic number (a1b2c3d4) or a pcapng section header "
                         f"(0a0d0d0a); {EXPECTED}")
    if not frames:
        raise ParseError(what, "holds no frames (only its file header): expected at least "
                         "one captured frame")
    return frames


def _linktype(linktype: int, what: str) -> None:
    if linktype != LINKTYPE_ETHERNET:
        name = LINKTYPE_NAMES.get(linktype, "not Ethernet")
        raise ParseError(what, f"link type {linktype} ({name}); {EXPECTED}, of the interface "
                         "the AoE traffic crosses")


def _parse_pcap(data: bytes, what: str) -> list[CaptureFrame]:
    order, unit = PCAP_MAGICS[data[:4]]
    if len(data) < 24:
        raise ParseError(what, f"truncated: {len(data)} bytes, shorter than the 24-byte pcap "
                         "file header")
    _linktype(struct.unpack_from(order + "I", data, 20)[0] & 0xFFFF, what)
    frames: list[CaptureFrame] = []
    at = 24
    while at < len(data):
        number = len(frames) + 1
        if len(data) - at < 16:
            raise ParseError(what, f"truncated: frame {number} at byte {at} has "
                             f"{len(data) - at} of its 16-byte record header")
        seconds, fraction, size, _ = struct.unpack_from(order + "IIII", data, at)
        if len(data) - at - 16 < size:
            raise ParseError(what, f"truncated: frame {number} at byte {at} needs {size} "
                             f"bytes, {len(data) - at - 16} are left")
        frames.append(CaptureFrame(seconds + fraction * unit, data[at + 16:at + 16 + size]))
        at += 16 + size
    return frames


def _parse_pcapng(data: bytes, what: str) -> list[CaptureFrame]:
    frames: list[CaptureFrame] = []
    interfaces: list[tuple[int, int, float]] = []  # (link type, snap length, time unit)
    order, at, block = "<", 0, 0
    while at < len(data):
        block += 1
        if len(data) - at < 12:
            raise ParseError(what, f"truncated: block {block} at byte {at} has "
                             f"{len(data) - at} bytes, a pcapng block has at least 12")
        kind = data[at:at + 4]
        if kind == PCAPNG_SHB:
            magic = data[at + 8:at + 12]
            if magic not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                raise ParseError(what, f"pcapng section header at byte {at} has byte-order "
                                 f"magic {magic.hex()}, not 1a2b3c4d")
            order = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">"
            interfaces = []
        code, length = struct.unpack_from(order + "II", data, at)
        if length < 12 or length % 4 or length > len(data) - at:
            raise ParseError(what, f"truncated: block {block} at byte {at} claims {length} "
                             f"bytes, {len(data) - at} are left" if length > len(data) - at
                             else f"block {block} at byte {at} has a bad length {length}")
        body = data[at + 8:at + length - 4]
        if code == 1 and len(body) >= 8:  # Interface Description Block
            linktype, _, snaplen = struct.unpack_from(order + "HHI", body)
            interfaces.append((linktype, snaplen, _time_unit(body[8:], order)))
        elif code in (2, 6) and len(body) >= 20:  # (obsolete) Packet Block, Enhanced Packet
            if code == 6:
                iface, high, low, size, _ = struct.unpack_from(order + "IIIII", body)
            else:
                iface, _, high, low, size, _ = struct.unpack_from(order + "HHIIII", body)
            unit = _interface(interfaces, iface, block, what)[2]
            if size > len(body) - 20:
                raise ParseError(what, f"block {block} at byte {at}: frame of {size} bytes "
                                 f"in a block of {length}")
            frames.append(CaptureFrame(((high << 32) | low) * unit, body[20:20 + size]))
        elif code == 3 and len(body) >= 4:  # Simple Packet Block: no time
            snaplen = _interface(interfaces, 0, block, what)[1]
            size = struct.unpack_from(order + "I", body)[0]
            size = min(size, snaplen or size, len(body) - 4)
            frames.append(CaptureFrame(None, body[4:4 + size]))
        at += length
    return frames


def _interface(interfaces: list[tuple[int, int, float]], number: int, block: int,
               what: str) -> tuple[int, int, float]:
    if number >= len(interfaces):
        raise ParseError(what, f"block {block} names interface {number}, but "
                         f"{len(interfaces)} are described before it")
    _linktype(interfaces[number][0], what)
    return interfaces[number]


def _time_unit(options: bytes, order: str) -> float:
    """An Interface Description Block's if_tsresol option (code 9), default microseconds."""
    at = 0
    while at + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, at)
        if code == 0:
            break
        if code == 9 and length >= 1 and at + 5 <= len(options):
            value = options[at + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0 ** -value
        at += 4 + (length + 3) // 4 * 4
    return 1e-6
