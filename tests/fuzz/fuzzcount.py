"""How many cases each fuzzed parser ran (printed by conftest at the end of the run)."""

from __future__ import annotations

from collections import Counter

CASES: Counter[str] = Counter()
