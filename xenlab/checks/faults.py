"""What a fault scenario must show, judged from what was observed (pure: no lab access).

A scenario passes only if the fault really happened, the run said clearly what happened,
the guest runs on exactly one host with its data intact, and the next migration works. Each
rule is there because a harness that skipped it could pass a broken lab (the self-tests
feed this judge the outcomes a lying harness would produce)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

MIGRATION_FAULTS = ("link-cut", "destination-killed", "cancel")
STORAGE_OUTAGE = "storage-outage"


@dataclass(frozen=True)
class FaultOutcome:
    fault: str  # a MigrationFault value, or "storage-outage"
    domain: str
    home: str  # where the guest must be after the fault: the source (or, for storage, its host)
    destination: str  # of the next migration
    injected: str  # what the harness did, in words ("" = nothing was done)
    injection_failed: bool = False
    missed: str = ""  # why it was never set off (the migration ended first), when it was not
    status: str = ""  # of the faulted migration ("" for the storage outage)
    message: str = ""  # what the run said about it
    copies: tuple[tuple[str, str, str], ...] = ()  # (host, name, state) after the fault
    cleanup: tuple[str, ...] = ()  # half-received copies the harness had to remove
    written: str | None = None  # digest of the data written before (or during) the fault
    read_back: str | None = None  # the same data read from disk afterwards
    io_errors: tuple[str, ...] = ()  # the guest's kernel log lines about failed I/O
    next_status: str = ""
    next_message: str = ""
    next_copies: tuple[tuple[str, str, str], ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def running_hosts(copies: tuple[tuple[str, str, str], ...], domain: str) -> list[str]:
    return sorted(h for h, name, state in copies if name == domain and state == "running")


def judge_fault(o: FaultOutcome) -> list[str]:
    """Every reason the scenario fails (empty: the lab survived the fault and the run told
    the truth about it)."""
    problems = []
    if not o.injected:
        why = f" ({o.missed})" if o.missed else ""
        problems.append(f"{o.fault}: the fault was never set off{why}, so the scenario proved "
                        "nothing")
    elif o.injection_failed:
        problems.append(f"{o.fault}: setting the fault off failed: {o.injected}")
    if o.fault in MIGRATION_FAULTS:
        if o.status == "completed":
            problems.append(f"{o.fault}: the migration reports 'completed' although the fault "
                            "was set off mid-transfer: the fault had no effect or went unseen")
        elif not o.message.strip():
            problems.append(f"{o.fault}: the migration ended '{o.status or 'unknown'}' with "
                            "no message saying why")
    running = running_hosts(o.copies, o.domain)
    if running != [o.home]:
        where = ", ".join(running) if running else "no host"
        problems.append(f"{o.fault}: after the fault {o.domain} runs on {where}; it must run on "
                        f"exactly one host, {o.home}")
    others = [f"{name} ({state}) on {host}" for host, name, state in o.copies
              if not (host == o.home and name == o.domain)
              and not (state == "running" and name == o.domain)]
    if others:
        problems.append(f"{o.fault}: copies left besides the guest: {', '.join(others)}")
    if o.written is None or o.read_back is None:
        problems.append(f"{o.fault}: the data written before the fault could not be read back")
    elif o.written != o.read_back:
        problems.append(f"{o.fault}: the data written before the fault reads back different "
                        f"(sha256 {o.written[:12]} written, {o.read_back[:12]} read)")
    if o.io_errors:
        problems.append(f"{o.fault}: the guest logged I/O errors: " + "; ".join(o.io_errors[:3]))
    if o.next_status != "completed":
        problems.append(f"{o.fault}: the next migration did not complete "
                        f"({o.next_status or 'not run'}: {o.next_message or 'no message'})")
    elif running_hosts(o.next_copies, o.domain) != [o.destination]:
        problems.append(f"{o.fault}: after the next migration {o.domain} does not run on "
                        f"{o.destination} alone")
    return problems


def describe(o: FaultOutcome) -> str:
    """One paragraph for the report: what was done, what the run said, what was found."""
    lines = [f"fault: {o.fault}", f"done: {o.injected or '(nothing)'}"]
    if o.fault in MIGRATION_FAULTS:
        lines.append(f"migration: {o.status}: {o.message or '(no message)'}")
    lines.append("copies after: " + (", ".join(f"{n} {s} on {h}" for h, n, s in o.copies)
                                     or "none"))
    lines += [f"clean-up: {note}" for note in o.cleanup]
    lines.append(f"data: written {(o.written or '?')[:12]}, read back {(o.read_back or '?')[:12]}")
    lines.append(f"next migration: {o.next_status}: {o.next_message or 'ok'}")
    return "\n".join(lines)
