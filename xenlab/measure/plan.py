"""The migration plan of a run (pure): scenarios x round trips x hops between the resource
hosts, as a ring or as every ordered pair once."""

from __future__ import annotations

import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    scenario: str
    round_trip: int
    source: str
    destination: str
    guest: str = ""  # which guest moves ("": the first, whose ids name no guest)

    @property
    def id(self) -> str:
        who = f"{self.guest}-" if self.guest else ""
        return f"{self.scenario}-{who}rt{self.round_trip}-{self.source}->{self.destination}"


def ring(hosts: list[str]) -> list[tuple[str, str]]:
    return [(hosts[i], hosts[(i + 1) % len(hosts)]) for i in range(len(hosts))]


def matrix(hosts: list[str]) -> list[tuple[str, str]]:
    """Every ordered pair once, as one chain of migrations (an Eulerian circuit of the
    complete directed graph, Hierholzer's algorithm), starting and ending on hosts[0]."""
    left = {a: [b for b in reversed(hosts) if b != a] for a in hosts}
    stack, circuit = [hosts[0]], []
    while stack:
        if left[stack[-1]]:
            stack.append(left[stack[-1]].pop())
        else:
            circuit.append(stack.pop())
    circuit.reverse()
    return list(itertools.pairwise(circuit))


def plan(hosts: list[str], scenarios: tuple[str, ...], roundtrips: int,
         pattern: str = "ring") -> list[Step]:
    """Every migration of a run, in order: per scenario and round trip, the hops of the
    ring (or, with `matrix` and more than two hosts, every ordered pair once)."""
    hops = matrix(hosts) if pattern == "matrix" and len(hosts) > 2 else ring(hosts)
    return [Step(scenario, rt, a, b) for scenario in scenarios
            for rt in range(1, roundtrips + 1) for a, b in hops]


def storm_levels(guests: int) -> list[int]:
    """A storm's numbers of migrations at once: 1, 2 and N (each once: two guests give 1
    and 2; one guest, 1)."""
    return sorted({level for level in (1, 2, guests) if 1 <= level <= guests})
