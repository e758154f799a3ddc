"""Which tools each role of the lab needs, and from which package."""

from __future__ import annotations

from dataclasses import dataclass

from xenlab.inventory.model import Role


@dataclass(frozen=True)
class Tool:
    command: str
    package: str
    why: str


def toolstack_tool(toolstack: str) -> Tool | None:
    """The command a toolstack needs on the resource hosts, as its registry entry says."""
    from xenlab.hypervisor.registry import DRIVERS

    entry = DRIVERS.get(toolstack)
    return Tool(*entry.tool) if entry is not None and entry.tool else None


def required_tools(role: Role, toolstack: str, features: frozenset[str]) -> list[Tool]:
    if role is Role.STORAGE:
        return [Tool("vblade", "vblade", "exports the shared partition over AoE")]
    if role is not Role.RESOURCE:
        return []
    tools = [Tool("pvs", "lvm2", "reads the shared volume group"),
             Tool("ip", "iproute2", "the xenbr0 bridge")]
    if "aoe-initiator" in features:  # dom0s of real labs and of the embedded Xen lab
        tools += [Tool("aoe-discover", "aoetools", "finds the AoE target"),
                  Tool("aoe-stat", "aoetools", "lists AoE devices"),
                  Tool("modprobe", "kmod", "loads the aoe driver")]
    tool = toolstack_tool(toolstack)
    return [*tools, tool] if tool else tools
