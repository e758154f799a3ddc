"""AoE frames, built and dissected with scapy's AoE layer, with its quirks handled here.

scapy quirks (seen against vblade, see FINDINGS.md):
- the header flags are named bit-reversed: the wire's Response bit (0x8) is scapy's `r2`
  and Error (0x4) is `r1`: flags are decoded from their integer value;
- for ATA READ vblade answers with sector_count 0, and Ethernet padding would be taken as
  data: sector bytes are taken from the raw payload, by offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from scapy.contrib.aoe import AOE, IssueATACommand, QueryConfigInformation
from scapy.layers.l2 import Ether

from xenlab.errors import ParseError

ETHERTYPE_AOE = 0x88A2
BROADCAST = "ff:ff:ff:ff:ff:ff"
FLAG_RESPONSE = 0x8
FLAG_ERROR = 0x4
CMD_ATA = 0
CMD_QUERY_CONFIG = 1
ATA_IDENTIFY = 0xEC
ATA_READ_EXT = 0x24
ATA_FLAG_EXTENDED = 0x40  # LBA48
AOE_HEADER = 10
ATA_HEADER = 12
SECTOR = 512
AOE_ERRORS = {1: "unrecognized command code", 2: "bad argument parameter",
              3: "device unavailable", 4: "config string present",
              5: "unsupported version", 6: "target is reserved"}


def query_config(src: str, shelf: int = 0xFFFF, slot: int = 0xFF, tag: int = 0,
                 dst: str = BROADCAST) -> bytes:
    """Query Config Information (read config string); broadcast by default."""
    frame = Ether(src=src, dst=dst, type=ETHERTYPE_AOE) / AOE(
        version=1, flags=0, major=shelf, minor=slot, cmd=CMD_QUERY_CONFIG, tag=tag,
        q_conf_info=QueryConfigInformation(ccmd=0, config_length=0, config=b""))
    return bytes(frame)


def ata_command(src: str, dst: str, shelf: int, slot: int, tag: int, command: int,
                lba: int = 0, sectors: int = 1, extended: bool = True) -> bytes:
    """An AoE ATA command (no data): IDENTIFY, or READ SECTORS EXT of `sectors` at `lba`."""
    lba_bytes = lba.to_bytes(6, "little")
    ata = IssueATACommand(
        flags=ATA_FLAG_EXTENDED if extended else 0, err_feature=0,
        sector_count=sectors if command != ATA_IDENTIFY else 1, cmd_status=command,
        lba0=lba_bytes[0], lba1=lba_bytes[1], lba2=lba_bytes[2], lba3=lba_bytes[3],
        lba4=lba_bytes[4], lba5=lba_bytes[5], data=b"")
    frame = Ether(src=src, dst=dst, type=ETHERTYPE_AOE) / AOE(
        version=1, flags=0, major=shelf, minor=slot, cmd=CMD_ATA, tag=tag, i_ata_cmd=ata)
    return bytes(frame)


@dataclass(frozen=True)
class AoeFrame:
    """A dissected AoE frame; `payload` is everything after the 10-byte AoE header."""

    src: str
    dst: str
    version: int
    response: bool
    error_flag: bool
    error: int
    shelf: int
    slot: int
    command: int
    tag: int
    payload: bytes
    length: int  # bytes of the whole frame as captured

    @property
    def target(self) -> str:
        return f"e{self.shelf}.{self.slot}"

    @property
    def error_text(self) -> str:
        return AOE_ERRORS.get(self.error, f"error {self.error}") if self.error_flag else ""

    # Query Config Information response fields
    def config(self) -> ConfigInfo:
        if self.command != CMD_QUERY_CONFIG or len(self.payload) < 8:
            raise ParseError("AoE config", f"frame tag {self.tag:#x} is not a config response")
        buffers, firmware, sectors, ver_ccmd, length = struct.unpack(">HHBBH", self.payload[:8])
        return ConfigInfo(buffer_count=buffers, firmware=firmware, sector_count=sectors,
                          aoe_version=ver_ccmd >> 4, ccmd=ver_ccmd & 0xF,
                          config=self.payload[8:8 + length])

    # ATA response fields
    def ata_status(self) -> int:
        self._need_ata()
        return self.payload[3]

    def ata_data(self, sectors: int = 1) -> bytes:
        """Sector data from the raw payload (not from scapy's sector_count, see above)."""
        self._need_ata()
        data = self.payload[ATA_HEADER:ATA_HEADER + sectors * SECTOR]
        if len(data) < sectors * SECTOR:
            raise ParseError("AoE ATA response", f"{len(data)} data bytes, expected "
                             f"{sectors * SECTOR}")
        return data

    def _need_ata(self) -> None:
        if self.command != CMD_ATA or len(self.payload) < ATA_HEADER:
            raise ParseError("AoE ATA frame", f"frame tag {self.tag:#x} is not an ATA frame")


@dataclass(frozen=True)
class ConfigInfo:
    buffer_count: int
    firmware: int
    sector_count: int
    aoe_version: int
    ccmd: int
    config: bytes


def dissect(raw: bytes) -> AoeFrame:
    """Bytes of an Ethernet frame -> AoeFrame, through scapy, flags from their integer value."""
    if len(raw) < 14:
        raise ParseError("Ethernet frame", f"{len(raw)} bytes, shorter than an Ethernet header")
    try:
        ether = Ether(raw)
        ethertype = int(ether.type)
    except Exception as exc:  # noqa: BLE001 - scapy raises many kinds on garbage
        raise ParseError("Ethernet frame", str(exc) or type(exc).__name__) from None
    if ethertype != ETHERTYPE_AOE or AOE not in ether:
        raise ParseError("AoE frame", f"ethertype {ethertype:#06x} is not AoE ({ETHERTYPE_AOE:#x})")
    if len(raw) < 14 + AOE_HEADER:
        raise ParseError("AoE frame", f"{len(raw)} bytes, shorter than the AoE header")
    try:
        aoe = ether[AOE]
        flags = int(aoe.flags)
        return AoeFrame(
            src=ether.src, dst=ether.dst, version=int(aoe.version),
            response=bool(flags & FLAG_RESPONSE), error_flag=bool(flags & FLAG_ERROR),
            error=int(aoe.error), shelf=int(aoe.major), slot=int(aoe.minor),
            command=int(aoe.cmd), tag=int(aoe.tag), payload=raw[14 + AOE_HEADER:],
            length=len(raw))
    except Exception as exc:  # noqa: BLE001 - a header scapy could not dissect
        raise ParseError("AoE frame", f"unreadable header: {exc or type(exc).__name__}") from None


@dataclass(frozen=True)
class Identify:
    model: str
    serial: str
    firmware: str
    lba48_sectors: int
    lba28_sectors: int

    @property
    def capacity(self) -> int:
        return self.lba48_sectors * SECTOR


def parse_identify(data: bytes) -> Identify:
    """ATA IDENTIFY DEVICE data (512 bytes): strings are byte-swapped 16-bit words."""
    if len(data) < SECTOR:
        raise ParseError("ATA IDENTIFY data", f"{len(data)} bytes, expected 512")

    def text(first_word: int, words: int) -> str:
        raw = data[first_word * 2:(first_word + words) * 2]
        swapped = b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))
        return swapped.decode("ascii", errors="replace").strip(" \0")

    return Identify(model=text(27, 20), serial=text(10, 10), firmware=text(23, 4),
                    lba48_sectors=struct.unpack_from("<Q", data, 200)[0],
                    lba28_sectors=struct.unpack_from("<I", data, 120)[0])


@dataclass(frozen=True)
class PvLabel:
    sector: int
    label_type: str
    uuid: str  # formatted as pvs prints it, e.g. YxyVH0-dgdx-Tp2m-1wcS-iwcj-ZgAY-hrwqRV
    device_size: int


def format_lvm_uuid(raw: str) -> str:
    """32 characters -> LVM's 6-4-4-4-4-4-6 dashed form."""
    groups = (6, 4, 4, 4, 4, 4, 6)
    parts, at = [], 0
    for n in groups:
        parts.append(raw[at:at + n])
        at += n
    return "-".join(parts)


def parse_pv_label(sector: bytes) -> PvLabel:
    """An LVM2 label sector: LABELONE, sector number, crc, offset, 'LVM2 001', pv_header."""
    if len(sector) < SECTOR:
        raise ParseError("LVM label", f"{len(sector)} bytes, expected 512")
    if sector[:8] != b"LABELONE":
        raise ParseError("LVM label", f"no LABELONE signature (found {sector[:8]!r})")
    number, _crc, offset = struct.unpack_from("<QII", sector, 8)
    label_type = sector[24:32].decode("ascii", errors="replace")
    uuid = sector[offset:offset + 32].decode("ascii", errors="replace")
    (device_size,) = struct.unpack_from("<Q", sector, offset + 32)
    return PvLabel(sector=number, label_type=label_type, uuid=format_lvm_uuid(uuid),
                   device_size=device_size)


def summary(frame: AoeFrame) -> str:
    """One line for the report."""
    kind = {CMD_ATA: "ATA", CMD_QUERY_CONFIG: "QueryConfig"}.get(frame.command,
                                                                   f"cmd{frame.command}")
    direction = "rsp" if frame.response else "req"
    extra = ""
    if frame.command == CMD_ATA and len(frame.payload) >= ATA_HEADER:
        op = frame.payload[3]
        lba = int.from_bytes(frame.payload[4:10], "little")
        name = "status" if frame.response else "ata"
        extra = f" {name}={op:#04x} lba={lba} sectors={frame.payload[2]}"
    elif frame.command == CMD_QUERY_CONFIG and frame.response:
        cfg = frame.config()
        extra = f" buffers={cfg.buffer_count} fw={cfg.firmware:#x} aoe_ver={cfg.aoe_version}"
    err = f" ERROR({frame.error_text})" if frame.error_flag else ""
    return (f"{frame.src} > {frame.dst} {kind} {direction} {frame.target} tag={frame.tag:#010x} "
            f"v{frame.version} len={frame.length}{extra}{err}")
