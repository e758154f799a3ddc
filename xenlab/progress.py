"""One line per step with its elapsed time, so a user never stares at a silent terminal."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

Sink = Callable[[str], None]


def stderr_sink(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Progress:
    """Reports steps to a sink (the pytest terminal, stderr, or a list in unit tests)."""

    def __init__(self, sink: Sink = stderr_sink, prefix: str = "xenlab",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.prefix = prefix
        self.clock = clock
        self.started = clock()

    def say(self, message: str) -> None:
        self.sink(f"[{self.prefix} {self.clock() - self.started:6.1f}s] {message}")

    @contextlib.contextmanager
    def step(self, name: str, announce: bool = False) -> Iterator[None]:
        """Time a step; `announce` also prints a line when a long step starts."""
        if announce:
            self.say(f"{name} ...")
        start = self.clock()
        try:
            yield
        except BaseException as exc:
            self.say(f"{name}: FAILED after {self.clock() - start:.2f} s ({type(exc).__name__})")
            raise
        self.say(f"{name}: done in {self.clock() - start:.2f} s")
