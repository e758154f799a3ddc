"""The lab's switch: a namespace holding one bridge, `br0`, that every host's link joins."""

from __future__ import annotations

from collections.abc import Callable

SWITCH_BRIDGE = "br0"


def add_switch(add_namespace: Callable[[str], None], ip: Callable[..., None], namespace: str,
               mtu: int | None = None) -> None:
    """The switch namespace (recorded in the journal by `add_namespace` before it exists)
    and its bridge, up, forwarding at once (no STP, no forward delay)."""
    add_namespace(namespace)
    ip(namespace, "link", "add", SWITCH_BRIDGE, *(("mtu", str(mtu)) if mtu else ()),
       "type", "bridge", "stp_state", "0", "forward_delay", "0")
    ip(namespace, "link", "set", SWITCH_BRIDGE, "up")
