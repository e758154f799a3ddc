"""Progress lines and the lab's state machine (pure: a fake clock and a list as sink)."""

from __future__ import annotations

import itertools

import pytest

from xenlab.errors import LabError
from xenlab.lab.state import LabState, Strategy
from xenlab.measure.plan import matrix, ring
from xenlab.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_prints_one_line_per_step_with_elapsed_time() -> None:
    lines: list[str] = []
    clock = Clock()
    progress = Progress(lines.append, clock=clock)
    with progress.step("network"):
        clock.now += 0.25
    assert lines == ["[xenlab    0.2s] network: done in 0.25 s"]
    with pytest.raises(RuntimeError), progress.step("storage", announce=True):
        clock.now += 1.0
        raise RuntimeError("boom")
    assert lines[1:] == ["[xenlab    0.2s] storage ...",
                         "[xenlab    1.2s] storage: FAILED after 1.00 s (RuntimeError)"]


class Recorder(Strategy):
    def __init__(self, fail_at: str | None = None) -> None:
        super().__init__(Progress(lambda line: None))
        self.entered: list[str] = []
        self.fail_at = fail_at

    def _enter(self, name: str) -> None:
        if name == self.fail_at:
            raise OSError(f"{name} failed")
        self.entered.append(name)

    def enter_network(self) -> None:
        self._enter("network")

    def enter_storage(self) -> None:
        self._enter("storage")

    def enter_guest_ready(self) -> None:
        self._enter("guest_ready")

    def enter_vm_running(self) -> None:
        self._enter("vm_running")


def test_transition_walks_every_state_in_order() -> None:
    lab = Recorder()
    lab.transition(LabState.STORAGE)
    assert lab.entered == ["network", "storage"] and lab.state is LabState.STORAGE
    lab.transition(LabState.VM_RUNNING)
    assert lab.entered[2:] == ["guest_ready", "vm_running"]
    with pytest.raises(LabError, match="cannot go back"):
        lab.transition(LabState.NETWORK)


def test_failed_transition_leaves_the_lab_broken() -> None:
    lab = Recorder(fail_at="storage")
    with pytest.raises(OSError):
        lab.transition(LabState.VM_RUNNING)
    assert lab.state is LabState.BROKEN and lab.entered == ["network"]
    with pytest.raises(LabError, match=r"broken .*storage failed"):
        lab.transition(LabState.VM_RUNNING)
    lab.force(LabState.ABSENT)
    lab.fail_at = None
    lab.transition(LabState.VM_RUNNING)
    assert lab.state is LabState.VM_RUNNING


def test_ring_visits_every_resource_host() -> None:
    assert ring(["r1", "r2"]) == [("r1", "r2"), ("r2", "r1")]
    assert ring(["r1", "r2", "r3"]) == [("r1", "r2"), ("r2", "r3"), ("r3", "r1")]


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_matrix_is_one_chain_over_every_ordered_pair(n: int) -> None:
    hosts = [f"r{i}" for i in range(1, n + 1)]
    tour = matrix(hosts)
    assert sorted(tour) == sorted((a, b) for a in hosts for b in hosts if a != b)
    assert tour[0][0] == "r1" and tour[-1][1] == "r1"
    assert all(a[1] == b[0] for a, b in itertools.pairwise(tour))  # a chain
