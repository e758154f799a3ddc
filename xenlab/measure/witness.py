"""The guest-side witnesses of continuity (the memory checker and the echo service): set up
once per scenario, copied into the guest first where it lacks them, removed after."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from testinfra.host import Host

from xenlab.errors import XenlabError
from xenlab.inventory import Inventory
from xenlab.lab.guestkit import ensure_echo, ensure_memcheck
from xenlab.lab.image import ECHO_PORT
from xenlab.measure.continuity import (
    SETUP_COMMAND,
    STATE_COMMAND,
    STATUS_FILE,
    GuestState,
    parse_memcheck,
    parse_state,
)
from xenlab.measure.witness_kit import GuestKit, prepare, remove

# a checker fills its region once before it reports: seconds, more in a Xen guest that
# shares its dom0's one emulated CPU
MEMCHECK_READY_S = 120.0
IDLE_SIZE_MIB = 16  # the checker's region in the idle scenario (swept at load.idle_rate_mib_s)
HOT_PAGES = 16  # memory-dirty: pages rewritten every millisecond, as a kernel's are


class WitnessUnavailable(XenlabError):
    """The guest cannot run the witnesses (said in full once, at the first migration)."""


class GuestWitness:
    """The guest-side witnesses of continuity, set up once per scenario; what the guest
    lacks of them (memcheck, the echo service) is copied there first, and removed after."""

    def __init__(self, guest: Host, inventory: Inventory, cache: Path,
                 domain: str = "") -> None:
        self.guest = guest
        self.inventory = inventory
        self.domain = domain or inventory.domain.name  # which guest ("": the first)
        self.cache = cache
        self.scenario = ""
        self.pid = ""  # the witness process (a long sleep)
        self.checker_pid = ""  # the memory checker
        self.load: tuple[int, float, int] = (0, 0.0, 0)  # its region, rate and hot pages
        self.kit: GuestKit | None = None
        self.unavailable = ""  # why the witnesses cannot run in this guest (said once)

    def _builds(self) -> tuple[Path, Path]:
        return ensure_memcheck(self.cache / "guest"), ensure_echo(self.cache / "guest")

    def _prepare(self) -> GuestKit:
        if self.unavailable:
            raise WitnessUnavailable(f"{self.unavailable.split(':')[0]} (reported at the "
                                     f"first migration)")
        if self.kit is None:
            try:
                self.kit = prepare(self.guest, self.domain, self._builds,
                                   ECHO_PORT)
            except XenlabError as exc:
                self.unavailable = str(exc)
                raise
        return self.kit

    def close(self) -> None:
        if self.kit is not None:
            with contextlib.suppress(Exception):
                remove(self.guest, self.kit)

    def ensure(self, scenario: str) -> None:
        kit = self._prepare()
        if scenario == self.scenario:
            return
        load = self.inventory.load
        dirty = scenario == "memory-dirty"
        size, rate = ((load.size_mib, load.rate_mib_s) if dirty
                      else (IDLE_SIZE_MIB, load.idle_rate_mib_s))
        hot = HOT_PAGES if dirty else 0
        if self.checker_pid and self.load == (size, rate, hot):
            self.scenario = scenario  # the checker runs as this scenario wants: keep it
            return
        out = self.guest.run(f"{kit.path_prefix}sh -c %s xenlab %s %s %s %s %s", SETUP_COMMAND,
                             str(size),
                             str(rate), self.pid or "-", self.checker_pid or "-", str(hot))
        pids = out.stdout.split()
        if out.rc != 0 or len(pids) != 2 or not all(p.isdigit() for p in pids):
            raise XenlabError(f"cannot start the continuity witnesses in the guest: "
                              f"{out.stderr.strip() or out.stdout.strip()}")
        self.pid, self.checker_pid = pids
        self.scenario, self.load = scenario, (size, rate, hot)
        started = time.monotonic()
        while True:  # until the checker has filled its memory once, and said so
            # a light look (its status file and whether it runs): the full state hashes the
            # witness file, which in a guest that nested emulation runs slows the checker
            look = self.guest.run(f"cat {STATUS_FILE} 2>/dev/null; echo; kill -0 "
                                  f"{self.checker_pid} 2>/dev/null && echo checker-runs")
            if parse_memcheck(look.stdout.split("\n", 1)[0]) is not None:
                break
            if "checker-runs" not in look.stdout:
                said = self.guest.run("dmesg | grep -i 'out of memory' | tail -1").stdout
                raise XenlabError(
                    f"the memory checker in {self.domain} (pid {self.checker_pid}, {size} "
                    f"MiB) ended before it reported" + (f": {said.strip()[-160:]}" if said.strip()
                                                        else "") + " (give the guest more "
                    "memory, or the idle checker less)")
            if time.monotonic() - started > MEMCHECK_READY_S:
                raise XenlabError(f"the memory checker in {self.domain} did not report in "
                                  f"{MEMCHECK_READY_S:.0f} s")
            time.sleep(0.5)

    def state(self, sweep: bool = False) -> GuestState:
        """The guest's state; with `sweep`, after the memory checker verified every page."""
        env = f"XENLAB_PID={self.pid}" + (f" XENLAB_SWEEP={self.checker_pid}" if sweep else "")
        return parse_state(self.guest.check_output(f"{env} sh -c %s", STATE_COMMAND))
