"""Which tools each role of the lab needs, and from which package."""

from __future__ import annotations

from dataclasses import dataclass

from xenlab.inventory.model import LabKind, Role, Toolstack


@dataclass(frozen=True)
class Tool:
    command: str
    package: str
    why: str


TOOLSTACK_TOOLS = {
    Toolstack.XM: Tool("xm", "xen-tools (xend)", "the article's toolstack"),
    Toolstack.XL: Tool("xl", "xen-utils", "the Xen 4.x toolstack"),
    Toolstack.LIBVIRT: Tool("virsh", "libvirt-clients", "the libvirt toolstack"),
    Toolstack.QEMU: Tool("qemu-system-x86_64", "qemu-system-x86", "the embedded lab's hypervisor"),
}


def required_tools(role: Role, toolstack: Toolstack, kind: LabKind) -> list[Tool]:
    if role is Role.STORAGE:
        return [Tool("vblade", "vblade", "exports the shared partition over AoE")]
    if role is not Role.RESOURCE:
        return []
    tools = [Tool("pvs", "lvm2", "reads the shared volume group"),
             Tool("ip", "iproute2", "the xenbr0 bridge")]
    if kind is not LabKind.EMBEDDED:  # dom0s of real labs and of the embedded Xen lab
        tools += [Tool("aoe-discover", "aoetools", "finds the AoE target"),
                  Tool("aoe-stat", "aoetools", "lists AoE devices"),
                  Tool("modprobe", "kmod", "loads the aoe driver")]
    tools.append(TOOLSTACK_TOOLS[toolstack])
    return tools
