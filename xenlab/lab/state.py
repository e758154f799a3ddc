"""The lab's lifecycle as an explicit state machine (after labgrid's Strategy).

absent -> network -> storage -> guest_ready -> vm_running (the embedded Xen lab boots its
hosts between network and storage); a failed transition leaves the lab 'broken', and a broken
lab refuses further transitions with the original error.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from xenlab.errors import LabError
from xenlab.progress import Progress


class LabState(enum.Enum):
    ABSENT = 0
    NETWORK = 1
    HOSTS = 2  # machines booted and reachable (the embedded Xen lab's dom0s)
    STORAGE = 3
    GUEST_READY = 4
    VM_RUNNING = 5
    BROKEN = -1

    @property
    def label(self) -> str:
        return self.name.lower()


class Strategy:
    """Walks the states in order; subclasses provide `enter_<state>` methods."""

    STATES: tuple[LabState, ...] = (LabState.NETWORK, LabState.STORAGE, LabState.GUEST_READY,
                                    LabState.VM_RUNNING)

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.state = LabState.ABSENT
        self.broken_by: BaseException | None = None

    def _step(self, state: LabState) -> Callable[[], None]:
        step: Callable[[], None] = getattr(self, f"enter_{state.label}")
        return step

    def transition(self, target: LabState) -> None:
        if self.state is LabState.BROKEN:
            raise LabError(f"the lab is broken ({self.broken_by}); tear it down first")
        if target.value < self.state.value:
            raise LabError(f"cannot go back from {self.state.label} to {target.label}; tear down")
        for state in self.STATES:
            if not self.state.value < state.value <= target.value:
                continue
            try:
                with self.progress.step(f"lab {state.label}", announce=True):
                    self._step(state)()
            except BaseException as exc:
                self.broken_by = exc
                self.state = LabState.BROKEN
                raise
            self.state = state

    def force(self, state: LabState) -> None:
        """Set the state without running steps (after tearing down, or to recover)."""
        self.state = state
        self.broken_by = None
