"""xl and xm toolstack drivers for real labs: commands run on the resource hosts over SSH."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from testinfra.host import Host

from xenlab.errors import ParseError
from xenlab.hypervisor.base import DomainState, MigrationResult


@dataclass(frozen=True)
class ListedDomain:
    name: str
    domid: int
    memory: int
    vcpus: int
    state: str  # the six flag columns, e.g. "r-----", "-b----", "--p---"


_LIST_ROW = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([-rbpscd]{6})\s+[\d.]+")


def parse_xl_list(text: str) -> list[ListedDomain]:
    """`xl list` / `xm list` table: Name ID Mem VCPUs State Time(s)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].split()[:2] == ["Name", "ID"]:
        raise ParseError("xl list", "no 'Name ID Mem VCPUs State Time(s)' header", text)
    rows = []
    for line in lines[1:]:
        match = _LIST_ROW.match(line)
        if not match:
            raise ParseError("xl list", f"unexpected row {line!r}", text)
        name, domid, mem, vcpus, state = match.groups()
        rows.append(ListedDomain(name, int(domid), int(mem), int(vcpus), state))
    return rows


def listed_state(domain: ListedDomain | None) -> DomainState:
    if domain is None:
        return DomainState.ABSENT
    flags = domain.state
    if "c" in flags or "s" in flags or "d" in flags:
        return DomainState.STOPPED
    if "p" in flags:
        return DomainState.PAUSED
    return DomainState.RUNNING  # r (running) or b (blocked, i.e. idle) are both alive


class XenCliDriver:
    """`xl` (Xen 4.x) or `xm` (xend, the article's) on the resource hosts."""

    def __init__(self, toolstack: str, hosts: Mapping[str, Host],
                 clock: Callable[[], float] = time.time) -> None:
        if toolstack not in ("xl", "xm"):
            raise ValueError(toolstack)
        self.toolstack = toolstack
        self.hosts = dict(hosts)
        self.clock = clock

    def state(self, host: str, domain: str) -> DomainState:
        out = self.hosts[host].check_output(f"{self.toolstack} list")
        found = [d for d in parse_xl_list(out) if d.name == domain]
        return listed_state(found[0] if found else None)

    def states(self, domain: str) -> dict[str, DomainState]:
        return {name: self.state(name, domain) for name in self.hosts}

    def running_on(self, domain: str) -> list[str]:
        return [h for h, s in self.states(domain).items() if s is DomainState.RUNNING]

    def migrate_command(self, domain: str, destination: str) -> str:
        if self.toolstack == "xm":
            return f"xm migrate --live {shlex.quote(domain)} {shlex.quote(destination)}"
        return f"xl migrate {shlex.quote(domain)} {shlex.quote(destination)}"

    def migrate(self, domain: str, source: str, destination: str,
                timeout: float = 300.0) -> MigrationResult:
        command = self.migrate_command(domain, destination)
        started = self.clock()
        result = self.hosts[source].run(f"timeout {int(timeout)} {command}")
        ended = self.clock()
        status = "completed" if result.rc == 0 else ("timeout" if result.rc == 124 else "failed")
        return MigrationResult(
            domain=domain, source=source, destination=destination, status=status,
            started_at=started, ended_at=ended, total_time_ms=(ended - started) * 1000.0,
            toolstack=self.toolstack, error=result.stderr.strip()[-500:],
            raw={"command": command, "rc": result.rc, "stdout": result.stdout[-2000:],
                 "stderr": result.stderr[-2000:]},
        )
