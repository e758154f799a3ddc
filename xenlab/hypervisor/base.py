"""What every toolstack driver returns: typed records, never scraped text."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class DomainState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # e.g. an incoming domain waiting for its migration
    STOPPED = "stopped"  # migrated away, shut down or crashed
    ABSENT = "absent"


@dataclass(frozen=True)
class MigrationResult:
    domain: str
    source: str
    destination: str
    status: str  # "completed", "failed", "cancelled", ...
    started_at: float  # wall clock (time.time()) when the migration was requested
    ended_at: float
    total_time_ms: float | None = None  # the hypervisor's own figures ...
    downtime_ms: float | None = None
    setup_time_ms: float | None = None
    bytes_transferred: int | None = None
    toolstack: str = ""
    error: str = ""
    raw: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def wall_time_ms(self) -> float:
        return (self.ended_at - self.started_at) * 1000.0
