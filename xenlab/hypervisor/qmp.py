"""Pure interpretation of QEMU's QMP replies (saved replies in tests/data/qmp/)."""

from __future__ import annotations

from collections.abc import Mapping

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
