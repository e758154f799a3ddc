"""The certification verdict on one observed migration (pure), and the meter's window."""

from __future__ import annotations

from xenlab.inventory import Inventory
from xenlab.measure.results import MigrationRecord

WINDOW_S = 3.0  # the meter observes each migration for at least this long ...
WINDOW_BEFORE_S = 0.5  # ... starting this long before it ...
WINDOW_AFTER_S = 0.5  # ... and ending no sooner than this after it, ...
STEADY_REPLIES = 50  # ... once this many consecutive replies came after the migration ...
WINDOW_MAX_AFTER_S = 10.0  # ... or this long after it: an outage still going is then open


def judge_record(record: MigrationRecord, inventory: Inventory, location: str | None, *,
                 limits: bool = True) -> list[str]:
    """Every reason the migration fails certification (empty: it passes). Without `limits`
    (a storm, which measures how downtime grows with concurrency) its downtime and loss are
    figures, not judged against the lab's limits for one migration; all else is."""
    problems = []
    if record.status != "completed":
        problems.append(f"status {record.status}: {record.hypervisor.get('error') or 'no detail'}")
    if location != record.destination:
        who = record.guest or inventory.domain.name
        problems.append(f"{who} runs on {location or 'no single host'}, "
                        f"not only on {record.destination}")
    problems += record.continuity
    audit = record.hypervisor.get("memory_audit")
    if audit and audit.get("differing_count"):
        problems.append(f"the destination received {audit['differing_count']} of "
                        f"{audit['pages']} guest pages different from the source's "
                        f"(first at {', '.join(audit['differing_first'][:4])})")
    tcp = record.tcp or {}
    if tcp.get("error"):
        problems.append(f"the TCP connection broke: {tcp['error']}")
    elif not tcp.get("in_order", True) or tcp.get("echoed", 0) != tcp.get("sent", 0):
        problems.append(f"the TCP connection lost data: {tcp.get('echoed')} of "
                        f"{tcp.get('sent')} lines echoed, in order: {tcp.get('in_order')}")
    net = record.network
    limit = inventory.limits
    if net is None:
        problems.append("the meter saw no replies at all")
    else:
        if net.get("gap_open"):
            problems.append(f"the guest's network had not come back when the meter stopped, "
                            f"{WINDOW_MAX_AFTER_S:g} s after the migration: an outage of at "
                            f"least {net['open_gap_ms']:.1f} ms, still open")
        if limits and net["downtime_ms"] > limit.downtime_ms:
            problems.append(f"network downtime {net['downtime_ms']:.1f} ms > limit "
                            f"{limit.downtime_ms:.0f} ms")
        if limits and net["loss_pct"] > limit.loss_pct:
            problems.append(f"probe loss {net['loss_pct']:.2f} % > limit {limit.loss_pct} %")
    return problems
