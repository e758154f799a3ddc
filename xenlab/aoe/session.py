"""Talk AoE to a target from a lab host: the probe runs on the host (through its testinfra
connection), the frames are built and read here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from testinfra.host import Host

from xenlab.aoe import frames as fr
from xenlab.errors import CommandError, ParseError

PROBE_SOURCE = (Path(__file__).parent / "probe.py").read_text()


@dataclass(frozen=True)
class Captured:
    time: float
    outgoing: bool
    raw: bytes

    @property
    def frame(self) -> fr.AoeFrame:
        return fr.dissect(self.raw)


def parse_probe_output(text: str) -> tuple[str, list[Captured]]:
    """The probe's JSON -> (the interface's MAC, frames in order)."""
    try:
        data = json.loads(text)
        frames = [Captured(float(f["t"]), bool(f["out"]), bytes.fromhex(f["hex"]))
                  for f in data["frames"]]
        return str(data["mac"]), frames
    except (ValueError, KeyError, TypeError) as exc:
        raise ParseError("AoE probe output", str(exc), text) from None


class AoeSession:
    """Send frames from `host`'s `interface` and keep everything seen, for the pcap."""

    def __init__(self, host: Host, host_name: str, interface: str, python: str = "python3"):
        self.host = host
        self.host_name = host_name
        self.interface = interface
        self.python = python
        self.captured: list[Captured] = []
        self.mac = ""
        self._tag = 0x78656E00  # "xen\0"

    def next_tag(self) -> int:
        self._tag += 1
        return self._tag

    def exchange(self, *raw_frames: bytes, window: float = 0.5) -> list[fr.AoeFrame]:
        """Send the frames; return the responses seen within `window` seconds."""
        command = f"{self.python} -c %s %s %s" + " %s" * len(raw_frames)
        result = self.host.run(command, PROBE_SOURCE, self.interface, str(window),
                               *[r.hex() for r in raw_frames])
        if result.rc != 0:
            raise CommandError(self.host_name, f"AoE probe on {self.interface}", result.rc,
                               result.stdout, result.stderr)
        self.mac, frames = parse_probe_output(result.stdout)
        self.captured.extend(frames)
        return [c.frame for c in frames if not c.outgoing]

    def query_config(self, window: float = 0.5) -> list[fr.AoeFrame]:
        """Broadcast Query Config to every shelf and slot; the responses to it (by tag:
        a host whose aoe driver talks to the target sees that traffic too)."""
        tag = self.next_tag()
        return [f for f in self.exchange(fr.query_config("00:00:00:00:00:00", tag=tag),
                                         window=window) if f.tag == tag and f.response]

    def ata(self, dst: str, shelf: int, slot: int, command: int, lba: int = 0,
            window: float = 0.5) -> fr.AoeFrame:
        tag = self.next_tag()
        raw = fr.ata_command("00:00:00:00:00:00", dst, shelf, slot, tag, command, lba=lba)
        answers = [f for f in self.exchange(raw, window=window) if f.tag == tag and f.response]
        if not answers:
            raise ParseError("AoE ATA exchange", f"no response to tag {tag:#x} from {dst} "
                             f"on {self.host_name}:{self.interface}")
        return answers[0]

    def write_pcap(self, path: Path) -> Path:
        from scapy.layers.l2 import Ether
        from scapy.utils import wrpcap

        packets = []
        for c in self.captured:
            packet = Ether(c.raw)
            packet.time = c.time
            packets.append(packet)
        path.parent.mkdir(parents=True, exist_ok=True)
        wrpcap(str(path), packets)
        return path

    def summary(self) -> list[str]:
        return [f"{c.time:.6f} {'>' if c.outgoing else '<'} {fr.summary(c.frame)}"
                for c in self.captured]


@dataclass
class AoeProbe:
    """What one resource host saw of the AoE target, and the capture of it."""

    host: str
    interface: str
    config_answers: list[fr.AoeFrame] = field(default_factory=list)
    identify: fr.AoeFrame | None = None
    read_label: fr.AoeFrame | None = None
    error: str = ""
    pcap: Path | None = None
    summary: list[str] = field(default_factory=list)

    def answers_for(self, shelf: int, slot: int) -> list[fr.AoeFrame]:
        return [f for f in self.config_answers if (f.shelf, f.slot) == (shelf, slot)]
