"""AoE frames against golden bytes both ways, and the offline capture check, on captures
from the embedded lab and on crafted bad frames."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from xenlab.aoe import frames as fr
from xenlab.aoe.check import CaptureFrame, Finding, analyze, parse_capture, read_capture
from xenlab.aoe.session import parse_probe_output
from xenlab.errors import ParseError, XenlabError

INITIATOR = "7a:3c:31:36:95:6a"
TARGET = "8a:ec:dd:8a:80:cd"
# Golden frames: AoE v1 header (ver/flags, error, major, minor, command, tag) + command.
QUERY_BROADCAST = bytes.fromhex(
    "ffffffffffff" "7a3c3136956a" "88a2"    # Ethernet: broadcast from the initiator, AoE
    "10" "00" "ffff" "ff" "01" "78656e01"   # v1 request, shelf/slot all, Query Config, tag
    "0000" "0000" "00" "00" "0000")         # buffers, firmware, sectors, ver|ccmd, length
READ_SECTOR_1 = bytes.fromhex(
    "8aecdd8a80cd" "7a3c3136956a" "88a2"
    "10" "00" "0000" "00" "00" "78656e03"   # v1 request to e0.0, ATA, tag
    "40" "00" "01" "24" "010000000000" "0000")  # LBA48 flag, 1 sector, READ EXT, lba 1


def captured(data: Path) -> list[tuple[bool, bytes]]:
    lines = (data / "aoe/embedded-session.frames").read_text().splitlines()
    return [(line[0] == ">", bytes.fromhex(line[2:])) for line in lines]


def test_build_gives_golden_bytes() -> None:
    assert fr.query_config(INITIATOR, tag=0x78656E01) == QUERY_BROADCAST
    assert fr.ata_command(INITIATOR, TARGET, 0, 0, 0x78656E03, fr.ATA_READ_EXT,
                          lba=1) == READ_SECTOR_1


def test_golden_bytes_dissect_to_fields() -> None:
    q = fr.dissect(QUERY_BROADCAST)
    assert (q.dst, q.version, q.response, q.shelf, q.slot, q.command, q.tag) == (
        "ff:ff:ff:ff:ff:ff", 1, False, 0xFFFF, 0xFF, fr.CMD_QUERY_CONFIG, 0x78656E01)
    r = fr.dissect(READ_SECTOR_1)
    assert (r.target, r.command, r.payload[3], r.payload[0]) == ("e0.0", 0, 0x24, 0x40)
    assert int.from_bytes(r.payload[4:10], "little") == 1


def test_response_flag_decoded_from_its_bit(data: Path) -> None:
    """scapy names the wire's Response bit (0x8) 'r2': we read the integer."""
    from scapy.contrib.aoe import AOE
    from scapy.layers.l2 import Ether

    raw = captured(data)[1][1]
    assert raw[14] == 0x18  # version 1, Response flag
    assert "r2" in str(Ether(raw)[AOE].flags)  # the quirk, pinned
    frame = fr.dissect(raw)
    assert frame.response and not frame.error_flag
    error = bytearray(raw)
    error[14], error[15] = 0x1C, 3
    assert fr.dissect(bytes(error)).error_text == "device unavailable"


def test_vblade_answers_from_the_embedded_lab(data: Path) -> None:
    frames = [fr.dissect(raw) for _, raw in captured(data)]
    config = frames[1].config()
    assert (config.buffer_count, config.aoe_version) == (16, 1)
    identify = fr.parse_identify(frames[3].ata_data())
    assert identify.model == "Coraid EtherDrive vblade" and identify.capacity == 6 << 30
    read = frames[5]
    assert read.payload[2] == 0  # vblade answers READ with sector_count 0 ...
    label = fr.parse_pv_label(read.ata_data())  # ... so the data is taken by offset
    assert (label.sector, label.label_type, label.device_size) == (1, "LVM2 001", 6 << 30)
    assert len(label.uuid) == 38 and label.uuid.count("-") == 6


def test_padding_is_not_taken_as_sector_data(data: Path) -> None:
    """scapy's sector_count-driven field would read 0 bytes; a short frame is refused."""
    short = fr.dissect(captured(data)[5][1][:200])
    with pytest.raises(ParseError, match="data bytes"):
        short.ata_data()


def test_pv_label_errors() -> None:
    with pytest.raises(ParseError, match="LABELONE"):
        fr.parse_pv_label(b"\0" * 512)
    with pytest.raises(ParseError):
        fr.dissect(bytes.fromhex("ffffffffffff7a3c3136956a0800") + b"\0" * 40)


def test_probe_output_parser() -> None:
    mac, frames = parse_probe_output(
        '{"interface": "xenbr0", "mac": "aa:bb:cc:dd:ee:ff", '
        f'"frames": [{{"t": 1.5, "out": true, "hex": "{QUERY_BROADCAST.hex()}"}}]}}')
    assert mac == "aa:bb:cc:dd:ee:ff" and frames[0].outgoing and frames[0].raw == QUERY_BROADCAST
    with pytest.raises(ParseError):
        parse_probe_output("Traceback (most recent call last):")


# -- the offline check -------------------------------------------------------------------

def test_check_of_a_healthy_capture(data: Path) -> None:
    analysis = analyze(read_capture(str(data / "aoe/embedded-session.pcap")), [TARGET])
    assert analysis.ok, analysis.report()
    target = analysis.targets[(0, 0)]
    assert target.capacity == 6 << 30 and target.macs == {TARGET} and target.buffer_count == 16
    assert "target e0.0 at 8a:ec:dd:8a:80:cd: 6442450944 bytes" in analysis.report()


def test_check_finds_two_exports(data: Path) -> None:
    analysis = analyze(read_capture(str(data / "aoe/embedded-two-exports.pcap")))
    assert [f.kind for f in analysis.findings] == ["conflict"]


def frames_of(data: Path) -> list[bytes]:
    return [raw for _, raw in captured(data)]


def test_check_finds_crafted_problems(data: Path) -> None:
    frames = frames_of(data)
    error = bytearray(frames[3])
    error[14], error[15] = 0x1C, 2  # IDENTIFY answered with an error
    version = bytearray(frames[1])
    version[14] = 0x28  # AoE version 2
    unanswered = fr.ata_command(INITIATOR, TARGET, 0, 0, 0x99, fr.ATA_IDENTIFY)
    analysis = analyze([frames[0], bytes(version), frames[2], bytes(error), frames[4],
                        frames[4], frames[5][:100], unanswered], ["02:00:00:00:00:01"])
    kinds = [f.kind for f in analysis.findings]
    for kind in ("version", "error-response", "retransmission", "length", "unanswered",
                 "unexpected-mac"):
        assert kind in kinds, f"{kind} not found in {analysis.report()}"
    assert "bad argument parameter" in analysis.report()


def test_aoe_check_command(data: Path, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "xenlab.cli", "aoe-check", *args],
                              capture_output=True, text=True)

    ok = run(str(data / "aoe/embedded-session.pcap"))
    assert ok.returncode == 0 and "no problems found" in ok.stdout
    bad = run(str(data / "aoe/embedded-two-exports.pcap"))
    assert bad.returncode == 1 and "PROBLEM conflict" in bad.stdout
    text = tmp_path / "notes.txt"
    text.write_text("not a capture\n")
    wrong = run(str(text))
    assert wrong.returncode == 2 and "not a pcap or pcapng capture" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    missing = run(str(tmp_path / "absent.pcap"))
    assert missing.returncode == 2 and "absent.pcap: no such file" in missing.stderr
    assert "Traceback" not in missing.stderr
    doctored = run(str(without_responses(data / "aoe/embedded-session.pcap", tmp_path)))
    assert doctored.returncode == 1, doctored.stdout + doctored.stderr
    assert "PROBLEM no-target (frame 1): no target answered the discovery" in doctored.stdout
    assert "PROBLEM unanswered (frame 2): e0.0 tag 0x78656e02 ATA IDENTIFY" in doctored.stdout
    assert "2 requests never answered" in doctored.stdout


# -- requests nobody answers, on real vblade traffic and on real traffic with answers taken out

VBLADE_INITIATOR = "02:78:6c:00:00:01"
VBLADE = "02:78:6c:00:00:02"


def without_responses(capture: Path, tmp_path: Path,
                      tags: tuple[int, ...] = ()) -> Path:
    """A real capture with its response frames removed (those of `tags` only, if given),
    written with scapy, timestamps kept."""
    from scapy.utils import rdpcap, wrpcap

    def dropped(raw: bytes) -> bool:
        response = bool(raw[14] & fr.FLAG_RESPONSE)
        return response and (not tags or int.from_bytes(raw[20:24], "big") in tags)

    packets = [p for p in rdpcap(str(capture)) if not dropped(bytes(p))]
    out = tmp_path / f"{capture.stem}-doctored.pcap"
    wrpcap(str(out), packets)
    return out


def summary(findings: list[Finding]) -> list[tuple[str, int, str, int | None, bool]]:
    """(kind, frame, shelf.slot, tag, in flight) of each finding."""
    return [(f.kind, f.frame, f.target, f.tag, f.in_flight) for f in findings]


@pytest.mark.parametrize("name", ["vblade-clean.pcap", "embedded-session.pcap"])
def test_clean_real_capture_has_no_findings(data: Path, name: str) -> None:
    analysis = analyze(read_capture(str(data / "aoe" / name)))
    assert analysis.ok, analysis.report()
    assert analysis.requests == analysis.responses and "no problems found" in analysis.report()


def test_two_exports_capture_has_only_the_conflict(data: Path) -> None:
    """Two targets answering one discovery: the discovery is answered, nothing unanswered."""
    analysis = analyze(read_capture(str(data / "aoe/embedded-two-exports.pcap")))
    assert summary(analysis.findings) == [("conflict", 3, "", None, False)]


def test_unanswered_requests_in_real_vblade_traffic(data: Path) -> None:
    """vblade exports e0.0 only: IDENTIFY to e0.1, to its MAC or to broadcast, is never
    answered; frame 11 was sent 0.3 s before the capture's last frame."""
    analysis = analyze(read_capture(str(data / "aoe/vblade-unanswered.pcap")), [VBLADE])
    assert summary(analysis.findings) == [
        ("unanswered", 5, "e0.1", 0x786C6103, False),
        ("unanswered", 6, "e0.1", 0x786C6104, False),
        ("unanswered", 11, "e0.1", 0x786C6107, True)]
    first, broadcast, late = analysis.findings
    assert first.message == (f"e0.1 tag 0x786c6103 ATA IDENTIFY (0xec) from {VBLADE_INITIATOR} "
                             f"to {VBLADE} (0.101 s into the capture) never answered")
    assert f"to {fr.BROADCAST}" in broadcast.message
    assert late.message.endswith("; the capture ended 300 ms after it, so the answer may have "
                                 "been in flight")
    assert first.time == pytest.approx(0.1007, abs=1e-3)
    report = analysis.report()
    assert "PROBLEM unanswered (frame 6): e0.1 tag 0x786c6104" in report
    assert ("3 requests never answered; 1 sent less than 1 s before the capture ended"
            in report)
    assert analysis.targets[(0, 0)].model == "Coraid EtherDrive vblade"


def test_no_target_answers_a_discovery_in_real_traffic(data: Path) -> None:
    """vblade stopped: neither discovery nor IDENTIFY to e0.0 is answered."""
    analysis = analyze(read_capture(str(data / "aoe/vblade-no-target.pcap")))
    assert summary(analysis.findings) == [
        ("no-target", 1, "e*.*", 0x786C6101, False),
        ("no-target", 2, "e*.*", 0x786C6102, True),
        ("unanswered", 3, "e0.0", 0x786C6103, True)]
    assert analysis.findings[0].message == (
        "no target answered the discovery (Query Config to every shelf and slot, tag "
        f"0x786c6101) from {VBLADE_INITIATOR} to {fr.BROADCAST} (0.000 s into the capture)")
    assert "the capture ended 0 ms after it" in analysis.findings[2].message
    assert not analysis.ok and not analysis.targets


def test_real_capture_with_the_answers_taken_out(data: Path, tmp_path: Path) -> None:
    """embedded-session.pcap without its three responses: the discovery (t=0) is 1.19 s
    before the last frame; IDENTIFY (t=0.59) and READ EXT (the last frame) are within 1 s."""
    doctored = read_capture(str(without_responses(data / "aoe/embedded-session.pcap",
                                                  tmp_path)))
    assert len(doctored) == 3
    analysis = analyze(doctored, [TARGET])
    assert summary(analysis.findings) == [
        ("no-target", 1, "e*.*", 0x78656E01, False),
        ("unanswered", 2, "e0.0", 0x78656E02, True),
        ("unanswered", 3, "e0.0", 0x78656E03, True)]
    assert "ATA IDENTIFY (0xec)" in analysis.findings[1].message
    assert "ATA READ EXT (0x24)" in analysis.findings[2].message
    assert "the capture ended 600 ms after it" in analysis.findings[1].message


def test_one_answer_taken_out_of_a_real_capture(data: Path, tmp_path: Path) -> None:
    """Only IDENTIFY's answer removed: one finding, and the conflict still seen."""
    path = without_responses(data / "aoe/embedded-two-exports.pcap", tmp_path,
                             tags=(0x78656E02,))
    analysis = analyze(read_capture(str(path)))
    assert summary(analysis.findings) == [("conflict", 3, "", None, False),
                                          ("unanswered", 4, "e0.0", 0x78656E02, True)]
    # the same frames as bytes, without their times: no time, no in-flight rule
    bare = analyze([f.raw for f in read_capture(str(path))])
    assert summary(bare.findings)[1] == ("unanswered", 4, "e0.0", 0x78656E02, False)
    assert bare.findings[1].message == ("e0.0 tag 0x78656e02 ATA IDENTIFY (0xec) from "
                                        "62:b3:1a:8f:1a:1b to 3e:1f:2a:f9:2d:68 never answered")


def test_in_flight_window_at_the_capture_end(data: Path) -> None:
    """Still unanswered, always; `in_flight` only when the capture's last frame came less
    than the window after the request."""
    raw = [f.raw for f in read_capture(str(data / "aoe/vblade-unanswered.pcap"))]
    request, answered_qc, answer = raw[4], raw[8], raw[9]  # e0.1 IDENTIFY; a discovery and its answer

    def late(seconds: float, window: float = 1.0) -> bool:
        frames = [CaptureFrame(100.0, request), CaptureFrame(100.0 + seconds / 2, answered_qc),
                  CaptureFrame(100.0 + seconds, answer)]
        [finding] = analyze(frames, in_flight=window).findings
        assert (finding.kind, finding.tag) == ("unanswered", 0x786C6103)
        return finding.in_flight

    assert late(0.0) and late(0.999) and not late(1.0) and not late(30.0)
    assert not late(0.5, window=0.4) and late(0.5, window=0.6)
    real = analyze(read_capture(str(data / "aoe/vblade-unanswered.pcap")), in_flight=0.2)
    assert [f.in_flight for f in real.findings] == [False, False, False]


def test_an_answer_must_match_shelf_slot_tag_command_and_initiator(data: Path) -> None:
    frames = [f.raw for f in read_capture(str(data / "aoe/vblade-clean.pcap"))]
    identify, answer = frames[2], frames[3]  # e0.0 IDENTIFY tag 0x786c6102 and its answer

    def changed(raw: bytes, at: int, value: bytes) -> bytes:
        return raw[:at] + value + raw[at + len(value):]

    def unanswered(*frames: bytes) -> list[tuple[str, int, str, int | None, bool]]:
        return summary(analyze(list(frames)).findings)

    assert unanswered(identify, answer) == []
    assert unanswered(identify, changed(answer, 6, bytes.fromhex("020000000099"))) == []  # any source
    assert unanswered(changed(identify, 0, b"\xff" * 6), answer) == []  # request to broadcast
    miss = [("unanswered", 1, "e0.0", 0x786C6102, False)]
    assert unanswered(identify, changed(answer, 19, b"\x01")) == miss  # answer from e0.1
    assert unanswered(identify, changed(answer, 16, b"\x00\x05")) == miss  # from e5.0
    assert unanswered(identify, changed(answer, 23, b"\x07")) == miss  # another tag
    assert unanswered(identify, changed(answer, 0, bytes.fromhex("020000000077"))) == miss
    assert unanswered(identify, changed(answer, 14, b"\x10")) == [  # no Response flag:
        *miss, ("unanswered", 2, "e0.0", 0x786C6102, False)]  # a request of its own
    assert unanswered(answer, identify) == [  # an answer before its request answers nothing
        ("unanswered", 2, "e0.0", 0x786C6102, False)]
    query = changed(identify, 19, b"\x01")  # Query Config command, same tag
    assert unanswered(query, answer)[0][:4] == ("unanswered", 1, "e0.0", 0x786C6102)


def test_retransmitted_request_is_one_unanswered_request(data: Path) -> None:
    identify = [f.raw for f in read_capture(str(data / "aoe/vblade-clean.pcap"))][2]
    analysis = analyze([identify, identify, identify])
    assert [f.kind for f in analysis.findings] == ["retransmission", "retransmission",
                                                   "unanswered"]
    assert "(sent 3 times, last at frame 3) never answered" in analysis.findings[-1].message
    assert "1 request never answered" in analysis.report()


def test_report_lists_ten_unanswered_and_counts_all() -> None:
    requests = [fr.ata_command(INITIATOR, TARGET, 0, 1, tag, fr.ATA_IDENTIFY) for tag in range(25)]
    analysis = analyze(requests)
    assert len(analysis.of_kind("unanswered")) == 25
    report = analysis.report()
    assert report.count("PROBLEM unanswered") == 10
    assert "PROBLEM unanswered (frame 10): e0.1 tag 0x9 ATA IDENTIFY" in report
    assert report.endswith("25 requests never answered, the first 10 listed")


def test_discovery_of_one_shelf_is_answered_by_its_targets(data: Path) -> None:
    qc, answer = [f.raw for f in read_capture(str(data / "aoe/vblade-clean.pcap"))][:2]
    shelf0 = qc[:16] + b"\x00\x00" + qc[18:]  # Query Config to e0.* (slot still 0xff)
    assert analyze([shelf0, answer]).ok
    shelf3 = qc[:16] + b"\x00\x03" + qc[18:]
    [finding] = analyze([shelf3, answer]).findings
    assert (finding.kind, finding.target) == ("no-target", "e3.*")
    assert "discovery (Query Config to e3.*, tag 0x786c6101)" in finding.message


# -- reading capture files ---------------------------------------------------------------

def test_read_capture_agrees_with_scapy(data: Path, tmp_path: Path) -> None:
    """Our pcap and pcapng reader against scapy's, on real captures."""
    from scapy.utils import PcapNgWriter, PcapWriter, rdpcap

    source = data / "aoe/vblade-unanswered.pcap"
    packets = rdpcap(str(source))
    expected = [(float(p.time), bytes(p)) for p in packets]
    nano, ng = tmp_path / "nano.pcap", tmp_path / "capture.pcapng"
    with PcapWriter(str(nano), nano=True, endianness=">") as writer:
        for p in packets:
            writer.write(p)
    with PcapNgWriter(str(ng)) as ng_writer:
        for p in packets:
            ng_writer.write(p)
    for path in (source, nano, ng):
        got = [(f.time, f.raw) for f in read_capture(str(path))]
        assert [raw for _, raw in got] == [raw for _, raw in expected], path
        assert [t for t, _ in got] == pytest.approx([t for t, _ in expected], abs=1e-6), path
    assert [f.kind for f in analyze(read_capture(str(ng))).findings] == ["unanswered"] * 3


def _pcap(data: Path) -> bytes:
    return (data / "aoe/vblade-clean.pcap").read_bytes()


@pytest.mark.parametrize("name, content, expected", [
    ("empty.pcap", lambda d: b"", r"empty file \(0 bytes\); expected a pcap or pcapng"),
    ("text.pcap", lambda d: b"tcpdump: listening on eth0\n", "not a pcap or pcapng capture: "
     "it starts with b'tcpdump:'"),
    ("short.pcap", lambda d: _pcap(d)[:20], "truncated: 20 bytes, shorter than the 24-byte"),
    ("header-only.pcap", lambda d: _pcap(d)[:24], "holds no frames"),
    ("cut-header.pcap", lambda d: _pcap(d)[:30], "truncated: frame 1 at byte 24 has 6 of its "
     "16-byte record header"),
    ("cut-frame.pcap", lambda d: _pcap(d)[:-100], r"truncated: frame 8 at byte \d+ needs 548 "
     "bytes, 448 are left"),
    ("cooked.pcap", lambda d: _pcap(d)[:20] + (113).to_bytes(4, "little") + _pcap(d)[24:],
     r"link type 113 \(Linux cooked capture, as from tcpdump -i any\)"),
    ("cut.pcapng", None, r"truncated: block \d+ at byte \d+ claims \d+ bytes"),
])
def test_read_capture_refuses_what_is_not_a_whole_capture(
        data: Path, tmp_path: Path, name: str, content: Callable[[Path], bytes] | None,
        expected: str) -> None:
    path = tmp_path / name
    if content is None:
        from scapy.utils import PcapNgWriter, rdpcap

        with PcapNgWriter(str(path)) as writer:
            for p in rdpcap(str(data / "aoe/vblade-clean.pcap")):
                writer.write(p)
        path.write_bytes(path.read_bytes()[:-10])
    else:
        path.write_bytes(content(data))
    with pytest.raises(ParseError, match=f"^cannot parse capture {path}: {expected}"):
        read_capture(str(path))


def test_read_capture_refuses_missing_files_and_directories(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=f"capture {tmp_path}/none.pcap: no such file; "
                                         "expected a pcap or pcapng capture"):
        read_capture(str(tmp_path / "none.pcap"))
    with pytest.raises(ParseError, match=f"capture {tmp_path}: is a directory; expected"):
        read_capture(str(tmp_path))
    assert isinstance(ParseError("x", "y"), XenlabError)
    with pytest.raises(ParseError, match="capture: empty file"):
        parse_capture(b"")
