"""From toolstack to driver: the one table that says which driver runs a toolstack on lab
hosts reached over SSH (real labs and the embedded Xen lab), and what the toolstack brings
to a lab. Adding a toolstack is a driver module plus one `register` line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from testinfra.host import Host

from xenlab.errors import LabError
from xenlab.hosts.runner import Runner
from xenlab.hypervisor.base import Hypervisor
from xenlab.inventory.model import Inventory, Role


@dataclass(frozen=True)
class DriverContext:
    """What a driver is built from: the inventory, and testinfra hosts and argument-list
    runners for each resource host."""

    inventory: Inventory
    hosts: Mapping[str, Host]
    runners: Mapping[str, Runner]

    def addresses(self) -> dict[str, str]:
        return {h.name: str(h.address) for h in self.inventory.by_role(Role.RESOURCE)}


@dataclass(frozen=True)
class DriverEntry:
    features: frozenset[str]  # what the toolstack brings to a lab (xenlab/lab/features.py)
    make: Callable[[DriverContext], Hypervisor] | None  # None: built by its lab alone
    tool: tuple[str, str, str] | None = None  # the command it needs: (command, package, why)


DRIVERS: dict[str, DriverEntry] = {}


def register(toolstack: str, features: frozenset[str] | set[str],
             make: Callable[[DriverContext], Hypervisor] | None,
             tool: tuple[str, str, str] | None = None) -> None:
    DRIVERS[toolstack] = DriverEntry(frozenset(features), make, tool)


def driver_features(toolstack: str) -> frozenset[str]:
    entry = DRIVERS.get(toolstack)
    return entry.features if entry else frozenset()


def make_driver(toolstack: str, context: DriverContext) -> Hypervisor:
    entry = DRIVERS.get(toolstack)
    if entry is None or entry.make is None:
        usable = sorted(t for t, e in DRIVERS.items() if e.make is not None)
        raise LabError(f"{context.inventory.path}: toolstack {toolstack} has no driver for "
                       f"hosts reached over SSH ({', '.join(usable)} do)")
    return entry.make(context)


def _xl(context: DriverContext) -> Hypervisor:
    from xenlab.hypervisor.xen import XenCliDriver

    # with runners: `xl -vvv migrate` is streamed, its events timed (xl's downtime)
    return XenCliDriver("xl", context.hosts, runners=context.runners)


def _xm(context: DriverContext) -> Hypervisor:
    from xenlab.hypervisor.xen import XenCliDriver

    # with runners: both xend.logs are followed while `xm migrate` runs (xend's downtime)
    return XenCliDriver("xm", context.hosts, runners=context.runners)


def _libvirt(context: DriverContext) -> Hypervisor:
    from xenlab.hypervisor.virsh import VirshDriver

    # libvirt over its Xen (libxl) driver unless the inventory says qemu
    return VirshDriver(context.hosts, driver=context.inventory.libvirt_driver,
                       addresses=context.addresses())


register("xl", {"xl-ssh-transport", "virt-caps", "in-flight-faults"}, _xl,
         ("xl", "xen-utils", "the Xen 4.x toolstack"))
register("xm", {"xend-relocation", "virt-caps"}, _xm,
         ("xm", "xen-tools (xend)", "the article's toolstack"))
register("libvirt", {"libvirt-remote"}, _libvirt,
         ("virsh", "libvirt-clients", "the libvirt toolstack"))
# QEMU runs on the embedded lab only, which builds its driver itself
register("qemu", {"qemu-incoming", "memory-audit", "qemu-binary", "in-flight-faults"}, None,
         ("qemu-system-x86_64", "qemu-system-x86", "the embedded lab's hypervisor"))
# the fake lab's in-memory hypervisor (xenlab/hypervisor/fake.py), for xenlab's own tests
register("fake", {"in-flight-faults"}, None)
