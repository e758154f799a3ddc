"""Fuzzing (hypothesis): every parser of user input and of lab replies, fed garbage and
near-misses, either parses or raises xenlab's own error with a message; never anything
else. The number of cases each ran is printed at the end of the run."""

from __future__ import annotations

import pytest
from fuzzcount import CASES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CASES:
        terminalreporter.write_sep("-", "fuzz cases run")
        for name, count in sorted(CASES.items()):
            terminalreporter.write_line(f"{name:<40} {count:6d}")
        terminalreporter.write_line(f"{'total':<40} {sum(CASES.values()):6d}")
