"""Xen host configuration, judged: xend-config.sxp, `xl info` / `xm info`, memory."""

from __future__ import annotations

import re

from xenlab.errors import ParseError

_SXP = re.compile(r"^\(\s*([A-Za-z0-9_-]+)\s+(.*?)\s*\)\s*$")


def parse_xend_config(text: str) -> dict[str, str]:
    """Active `(key value)` lines of xend-config.sxp; quotes removed, comments skipped.
    A key given twice keeps its last value, as xend reads it."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SXP.match(line)
        if not match:
            raise ParseError("xend-config.sxp", f"line {number} is not (key value)", raw)
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def relocation_findings(config: dict[str, str], port: int) -> list[str]:
    """What keeps `xm migrate --live` from reaching this host on `port`."""
    problems = []
    if config.get("xend-relocation-server", "no") != "yes":
        problems.append("(xend-relocation-server yes) is not set")
    if config.get("xend-relocation-port") != str(port):
        problems.append(f"(xend-relocation-port {port}) is not set "
                        f"(found {config.get('xend-relocation-port', 'none')})")
    return problems


def relocation_open_to_all(config: dict[str, str]) -> bool:
    """address '' (every interface) and no hosts-allow list: anyone can push a domain in."""
    address = config.get("xend-relocation-address", "")
    allow = config.get("xend-relocation-hosts-allow", "")
    return address == "" and allow.strip() == ""


def free_memory_mib(info: dict[str, str]) -> int:
    try:
        return int(info["free_memory"])
    except (KeyError, ValueError):
        raise ParseError("xl info", "no integer free_memory") from None


def meminfo_available_mib(text: str) -> int:
    """/proc/meminfo MemAvailable in MiB."""
    match = re.search(r"^MemAvailable:\s+(\d+) kB", text, re.MULTILINE)
    if not match:
        raise ParseError("/proc/meminfo", "no MemAvailable line", text[:200])
    return int(match.group(1)) // 1024


SSH_PORT = 22


def migration_port(features: frozenset[str], relocation_port: int) -> int:
    """The port a destination receives migrations on: QEMU's incoming port or xend's
    relocation port where the lab has them, else SSH (xl and libvirt migrate over it)."""
    if "qemu-incoming" in features or "xend-relocation" in features:
        return relocation_port
    return SSH_PORT


def classify_connect(rc: int, stderr: str) -> str:
    """A TCP connect attempt by `timeout N bash -c '</dev/tcp/ADDR/PORT'`: open, refused,
    filtered (no answer: a firewall drops it) or unreachable."""
    if rc == 0:
        return "open"
    if rc == 124:
        return "filtered"
    if "refused" in stderr.lower():
        return "refused"
    return "unreachable"
