"""Guest continuity across a migration: same boot, clock kept counting, a process alive, a
file intact, guest memory intact (the memory checker). Pure: the guest's state comes in as
text from one shell command, and the judgement is a list of problems."""

from __future__ import annotations

from dataclasses import dataclass

from xenlab.errors import ParseError

STATUS_FILE = "/run/xenlab-memcheck.status"
WITNESS_FILE = "/root/xenlab-continuity"

# One command that reads everything, so a migration costs one SSH round trip each side.
# With XENLAB_SWEEP set, the memory checker first verifies every page (SIGUSR1) and the
# command waits (up to 20 s) for that sweep to be reported.
STATE_COMMAND = (
    "if [ -n \"$XENLAB_SWEEP\" ]; then "
    f"s0=$(sed -n 's/.*sweeps=\\([0-9]*\\).*/\\1/p' {STATUS_FILE}); "
    "kill -USR1 \"$XENLAB_SWEEP\" 2>/dev/null; i=0; "
    f"while [ $i -lt 400 ] && [ \"$(sed -n 's/.*sweeps=\\([0-9]*\\).*/\\1/p' {STATUS_FILE})\" "
    "= \"$s0\" ]; do sleep 0.05; i=$((i+1)); done; fi; "
    "echo boot_id=$(cat /proc/sys/kernel/random/boot_id); "
    "echo uptime=$(cut -d' ' -f1 /proc/uptime); "
    "if [ -n \"$XENLAB_PID\" ] && kill -0 \"$XENLAB_PID\" 2>/dev/null; "
    "then echo process=alive; else echo process=gone; fi; "
    f"echo file=$(sha256sum {WITNESS_FILE} 2>/dev/null | cut -d' ' -f1); "
    f"echo memcheck=$(cat {STATUS_FILE} 2>/dev/null)"
)

# Start the witnesses: a long sleep, a 1 MiB file synced to disk, the memory checker. The
# witnesses of an earlier scenario are ended by their PIDs ($3 $4), never by name.
# Arguments: checker size (MiB), rate (MiB/s), old PIDs, hot pages.
SETUP_COMMAND = (
    f"dd if=/dev/urandom of={WITNESS_FILE} bs=64k count=16 2>/dev/null && sync; "
    "for pid in $3 $4; do [ \"$pid\" -gt 1 ] 2>/dev/null && kill \"$pid\"; done; "
    f"rm -f {STATUS_FILE}; "
    f"setsid xenlab-memcheck \"$1\" \"$2\" {STATUS_FILE} \"$5\" </dev/null >/dev/null 2>&1 & "
    "checker=$!; "
    "setsid sleep 1000000 </dev/null >/dev/null 2>&1 & echo \"$! $checker\""
)


@dataclass(frozen=True)
class MemcheckStatus:
    pages: int
    verified: int
    mismatches: int
    first_bad_page: int
    uptime_ms: int
    sweeps: int = 0


@dataclass(frozen=True)
class GuestState:
    boot_id: str
    uptime_s: float
    process_alive: bool
    file_sha256: str
    memcheck: MemcheckStatus | None


def parse_memcheck(text: str) -> MemcheckStatus | None:
    fields = dict(p.split("=", 1) for p in text.split() if "=" in p)
    if not fields:
        return None
    try:
        return MemcheckStatus(int(fields["pages"]), int(fields["verified"]),
                              int(fields["mismatches"]), int(fields["first_bad_page"]),
                              int(fields["uptime_ms"]), int(fields.get("sweeps", 0)))
    except (KeyError, ValueError) as exc:
        raise ParseError("memcheck status", str(exc), text) from None


def parse_state(text: str) -> GuestState:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    try:
        return GuestState(boot_id=values["boot_id"], uptime_s=float(values["uptime"]),
                          process_alive=values["process"] == "alive",
                          file_sha256=values.get("file", ""),
                          memcheck=parse_memcheck(values.get("memcheck", "")))
    except (KeyError, ValueError) as exc:
        raise ParseError("guest state", str(exc), text) from None


def judge(before: GuestState, after: GuestState, elapsed_s: float) -> list[str]:
    """What broke across the migration (empty: nothing). `elapsed_s` is wall time between
    the two readings."""
    problems = []
    if after.boot_id != before.boot_id:
        problems.append(f"the guest rebooted: boot_id {before.boot_id} -> {after.boot_id}")
    if after.uptime_s <= before.uptime_s:
        problems.append(f"the guest's uptime went from {before.uptime_s:.2f} s to "
                        f"{after.uptime_s:.2f} s: its clock did not keep counting")
    elif after.uptime_s - before.uptime_s > elapsed_s + 5.0:
        problems.append(f"the guest's uptime jumped {after.uptime_s - before.uptime_s:.1f} s "
                        f"in {elapsed_s:.1f} s")
    if before.process_alive and not after.process_alive:
        problems.append("a process started before the migration is gone")
    if before.file_sha256 and after.file_sha256 != before.file_sha256:
        problems.append(f"a file written and synced before reads back different "
                        f"({before.file_sha256[:12]} -> {after.file_sha256[:12] or 'missing'})")
    if before.memcheck is not None:
        if after.memcheck is None:
            problems.append("the memory checker stopped reporting")
        else:
            if after.memcheck.mismatches > before.memcheck.mismatches:
                problems.append(
                    f"guest memory corrupted: {after.memcheck.mismatches - before.memcheck.mismatches}"
                    f" of {after.memcheck.pages} pages did not hold what was written "
                    f"(first bad page {after.memcheck.first_bad_page})")
            if after.memcheck.sweeps <= before.memcheck.sweeps:
                problems.append("the memory checker did not sweep its pages after the migration")
            if after.memcheck.verified <= before.memcheck.verified:
                problems.append(f"the memory checker made no progress across the migration "
                                f"(pages verified {before.memcheck.verified} -> "
                                f"{after.memcheck.verified}, its clock "
                                f"{before.memcheck.uptime_ms} -> {after.memcheck.uptime_ms} ms)")
    return problems
