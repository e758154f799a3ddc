"""Name resolution as a host reports it."""

from __future__ import annotations

import re

_PING = re.compile(r"^PING \S+ \((\d+\.\d+\.\d+\.\d+)\)", re.MULTILINE)
_GETENT = re.compile(r"^(\d+\.\d+\.\d+\.\d+)\s+\S", re.MULTILINE)


def resolved_address(text: str) -> str | None:
    """The address in `getent hosts NAME` output, or in the first line of `ping NAME`."""
    for pattern in (_GETENT, _PING):
        match = pattern.search(text)
        if match:
            return match.group(1)
    return None
