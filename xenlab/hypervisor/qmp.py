"""Pure interpretation of QEMU's QMP replies (saved replies in tests/data/qmp/)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from xenlab.errors import ParseError
from xenlab.hypervisor.base import DomainState

FINAL_MIGRATION_STATES = {"completed", "failed", "cancelled"}


def migration_figures(reply: Mapping[str, object]) -> dict[str, object]:
    """Figures of a `query-migrate` return value: status, times in ms, bytes sent."""
    if not isinstance(reply, Mapping) or "status" not in reply:
        raise ParseError("query-migrate reply", "no 'status' field", repr(reply))
    ram = reply.get("ram")
    ram = ram if isinstance(ram, Mapping) else {}
    return {
        "status": str(reply["status"]),
        "total_time_ms": _num(reply.get("total-time")),
        "downtime_ms": _num(reply.get("downtime")),
        "setup_time_ms": _num(reply.get("setup-time")),
        "bytes_transferred": _int(ram.get("transferred")),
        # what was left to send when the guest was paused, and the rate QEMU measured: the
        # transfer's own lower bound on the pause (a completed migration reports both)
        "switchover_bytes": _int(ram.get("downtime-bytes")),
        "bandwidth_mbps": _num(ram.get("mbps")),
        "error": str(reply.get("error-desc", "")),
    }


def figures_settled(figures: Mapping[str, object]) -> bool:
    """QEMU can report total-time/downtime 0 right when status turns 'completed'."""
    return bool(figures.get("total_time_ms")) and figures.get("downtime_ms") is not None


def domain_state(status_reply: Mapping[str, object]) -> DomainState:
    """A `query-status` return value -> our state."""
    status = status_reply.get("status") if isinstance(status_reply, Mapping) else None
    if not isinstance(status, str):
        raise ParseError("query-status reply", "no 'status' field", repr(status_reply))
    if status == "running":
        return DomainState.RUNNING
    if status in ("inmigrate", "prelaunch", "paused", "suspended", "finish-migrate"):
        return DomainState.PAUSED
    return DomainState.STOPPED  # postmigrate, shutdown, internal-error, guest-panicked, ...


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class BlockBacking:
    """What a guest disk really reads: a file, from an offset, for a size (0: to the end)."""

    node: str
    path: str
    offset: int
    size: int


def block_backings(reply: object) -> list[BlockBacking]:
    """`query-block` -> the backing of each inserted disk (raw driver with offset/size)."""
    if not isinstance(reply, list):
        raise ParseError("query-block reply", "expected a list", repr(reply))
    out = []
    for device in reply:
        inserted = device.get("inserted") if isinstance(device, dict) else None
        if not isinstance(inserted, dict):
            continue
        name = str(inserted.get("file", ""))
        node = str(inserted.get("node-name", ""))
        if name.startswith("json:"):
            try:
                spec = json.loads(name[5:])
                path = str(spec["file"]["filename"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ParseError("query-block file", str(exc), name) from None
            out.append(BlockBacking(node, path, int(spec.get("offset", 0)),
                                    int(spec.get("size", 0))))
        else:
            out.append(BlockBacking(node, name, 0, 0))
    return out


def memory_mib(reply: object) -> int:
    """`query-memory-size-summary` -> the guest's RAM in MiB (base plus hot-plugged)."""
    if not isinstance(reply, dict) or _int(reply.get("base-memory")) is None:
        raise ParseError("query-memory-size-summary reply", "no base-memory", repr(reply))
    total = (_int(reply.get("base-memory")) or 0) + (_int(reply.get("plugged-memory")) or 0)
    return total // (1 << 20)


def vcpu_count(reply: object) -> int:
    """`query-cpus-fast` -> how many vCPUs the guest has."""
    if not isinstance(reply, list) or not all(isinstance(c, dict) and "cpu-index" in c
                                              for c in reply):
        raise ParseError("query-cpus-fast reply", "expected a list of CPUs", repr(reply)[:500])
    return len(reply)


def nic_macs(reply: object) -> tuple[str, ...]:
    """`query-rx-filter` -> each NIC's MAC (lower case), in the guest's device order."""
    if not isinstance(reply, list) or not all(isinstance(n, dict) and
                                              isinstance(n.get("main-mac"), str) for n in reply):
        raise ParseError("query-rx-filter reply", "expected NICs with a main-mac",
                         repr(reply)[:500])
    return tuple(str(n["main-mac"]).lower() for n in reply)
