"""The one rule for lab names, checked wherever a name becomes a path, a namespace prefix,
a lock file or a socket directory.

A lab name is 1-16 characters of lower-case letters, digits and '-', starting and ending with
a letter or digit and holding no '--'. The last two conditions make the namespace prefix
`xenlab-<name>--` name exactly one lab: lab `a` never owns the namespaces of lab `a-b`.
"""

from __future__ import annotations

import re

from xenlab.errors import BadNameError

LAB_NAME_RULE = ("1-16 lower-case letters, digits and '-', starting and ending with a letter "
                 "or digit, without '--'")
_LAB_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,14}[a-z0-9])?$")


def is_lab_name(name: object) -> bool:
    """True if `name` is a valid lab name."""
    return isinstance(name, str) and bool(_LAB_NAME.fullmatch(name)) and "--" not in name


def check_lab_name(name: object, where: str = "lab name") -> str:
    """`name` if it is a valid lab name, else BadNameError naming `where` and the rule."""
    if not is_lab_name(name):
        shown = name if not isinstance(name, str) or len(name) <= 40 else name[:40] + "..."
        raise BadNameError(f"{where}: expected {LAB_NAME_RULE}, found {shown!r}")
    assert isinstance(name, str)
    return name
