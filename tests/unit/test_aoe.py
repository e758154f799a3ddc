"""AoE frames against golden bytes both ways, and the offline capture check, on captures
from the embedded lab and on crafted bad frames."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xenlab.aoe import frames as fr
from xenlab.aoe.check import analyze, read_capture
from xenlab.aoe.session import parse_probe_output
from xenlab.errors import ParseError

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
