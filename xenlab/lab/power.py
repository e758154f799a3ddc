"""A host's power, as the maintenance suite pulls it: off hard (no shutdown), then on again.
A lab offers it (`Lab.power_control()`) or does not. Labs built here stop their own host
(its namespace's processes, with SIGKILL); a real lab runs the inventory's `power_off` and
`power_on` commands for the host (an `ipmitool ... chassis power off` line, say), on this
machine, and only when the run was started with --lab-allow-power-off."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from xenlab.errors import CommandError, LabError
from xenlab.hosts.runner import Runner
from xenlab.inventory.model import Inventory

POWER_COMMAND_TIMEOUT_S = 900.0  # an ipmitool line returns in seconds; a script may wait for the boot
BACK_UP_TIMEOUT_S = 900.0  # a real server's POST and boot


class PowerControl(Protocol):
    def off(self, host: str) -> str: ...  # what was done, in words
    def on(self, host: str) -> str: ...  # ... once the host answers again


class CommandPower:
    """The inventory's power commands, run here with `sh -c`; on() waits until the host
    answers a command again (`answers(host)`)."""

    def __init__(self, inventory: Inventory, local: Runner,
                 answers: Callable[[str], bool], back_up_s: float = BACK_UP_TIMEOUT_S,
                 lost: Callable[[str], None] = lambda host: None) -> None:
        self.inventory = inventory
        self.local = local
        self.answers = answers
        self.back_up_s = back_up_s
        self.lost = lost  # told of a host powered off (its shared connection closed)

    def _command(self, host: str, which: str) -> str:
        spec = self.inventory.host(host)
        command = spec.power_off if which == "off" else spec.power_on
        if not command:
            raise LabError(f"{self.inventory.path}: {host} has no xenlab_power_{which} command")
        return command

    def _run(self, host: str, which: str) -> str:
        command = self._command(host, which)
        try:
            self.local.run(["sh", "-c", command], timeout=POWER_COMMAND_TIMEOUT_S)
        except CommandError as exc:
            raise LabError(f"power {which} of {host} failed: {exc}") from None
        return f"`{command}` (xenlab_power_{which} of {host})"

    def off(self, host: str) -> str:
        done = self._run(host, "off")
        self.lost(host)
        return done

    def on(self, host: str) -> str:
        done = self._run(host, "on")
        started = time.monotonic()
        while not self.answers(host):
            if time.monotonic() - started > self.back_up_s:
                raise LabError(f"{host} does not answer {self.back_up_s:.0f} s after {done}")
            time.sleep(5)
        return f"{done}; {host} answers again after {time.monotonic() - started:.0f} s"
