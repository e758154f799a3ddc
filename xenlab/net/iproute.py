"""Pure parsers for iproute2's JSON output (`ip -j ...`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from xenlab.errors import ParseError


@dataclass(frozen=True)
class Link:
    name: str
    mac: str
    state: str  # operstate: UP, DOWN, UNKNOWN, LOWERLAYERDOWN
    master: str
    kind: str
    mtu: int


@dataclass(frozen=True)
class Address:
    ifname: str
    address: str
    prefixlen: int


def _load(text: str, what: str) -> list[dict[str, object]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParseError(what, str(exc), text) from None
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise ParseError(what, "expected a JSON list of objects", text)
    return data


def parse_links(text: str) -> list[Link]:
    """`ip -j -d link show`"""
    links = []
    for d in _load(text, "ip -j link"):
        info = d.get("linkinfo")
        kind = str(info.get("info_kind", "")) if isinstance(info, dict) else ""
        links.append(Link(name=str(d.get("ifname", "")), mac=str(d.get("address", "")),
                          state=str(d.get("operstate", "")), master=str(d.get("master", "")),
                          kind=kind, mtu=int(d.get("mtu", 0))))  # type: ignore[call-overload]
    return links


def parse_addresses(text: str) -> list[Address]:
    """`ip -j addr show` -> the IPv4 addresses"""
    out = []
    for d in _load(text, "ip -j addr"):
        for a in d.get("addr_info", []) or []:  # type: ignore[attr-defined]
            if isinstance(a, dict) and a.get("family") == "inet":
                out.append(Address(str(d.get("ifname", "")), str(a.get("local", "")),
                                   int(a.get("prefixlen", 0))))
    return out


def link_address(text: str) -> str:
    """The MAC address of the single link in `ip -j link show IFNAME`."""
    links = parse_links(text)
    if len(links) != 1 or not links[0].mac:
        raise ParseError("ip -j link show", "expected exactly one link with an address", text)
    return links[0].mac
