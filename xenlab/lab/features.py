"""What a lab can do, by name. A lab declares its features; a check that needs one says so
with `@pytest.mark.needs("feature")` and is skipped, with the reason, on a lab without it.
No suite or fixture asks which kind of lab or toolstack it runs on."""

from __future__ import annotations

FEATURES: dict[str, str] = {
    "aoe-initiator": "an AoE initiator (the aoe driver) on the resource hosts",
    "device-mapper": "device-mapper on the resource hosts (LVs active as devices)",
    "xend-relocation": "xend's relocation server (the xm toolstack)",
    "xl-ssh-transport": "xl's migration over SSH between the resource hosts",
    "libvirt-remote": "libvirtd on each resource host reached from the others",
    "qemu-incoming": "QEMU's incoming migration port on the destination",
    "virt-caps": "the hypervisor's paging capabilities (virt_caps of xl or xm info)",
    "fault-injection": "faults set off by the lab itself (the fault suite: it kills "
                       "processes and cuts links, so only on a lab built here)",
    "storage-outage": "a guest disk that goes through AoE, so the target can be stopped",
    "memory-audit": "the guest's memory compared on both sides (QMP pmemsave)",
    "qemu-binary": "a QEMU of the lab's choosing (--lab-qemu)",
    "build-faults": "a lab built broken on purpose (--lab-fault)",
    "fault-selftest": "the fault suite's self-test, in which the harness lies on purpose",
    "in-flight-faults": "a toolstack driver that sets a fault off in a migration in flight",
    "built-here": "a lab built on this machine, which xenlab may break and remove",
    "provisioning": "the article's set-up performed on the lab's hosts (--lab-provision)",
    "power-control": "a resource host's power pulled and restored (built here: its processes "
                     "killed; a real lab: the inventory's xenlab_power_off/on commands)",
}


def check_features(names: frozenset[str] | set[str] | tuple[str, ...], where: str) -> None:
    """A typo in a marker or a lab's declaration is a bug: say which name, where."""
    unknown = sorted(set(names) - set(FEATURES))
    if unknown:
        raise ValueError(f"{where}: unknown lab feature {unknown[0]!r} (known: "
                         f"{', '.join(sorted(FEATURES))})")


def missing(needed: tuple[str, ...], features: frozenset[str]) -> list[str]:
    """The needed features a lab lacks, in the order they were asked for."""
    return [n for n in needed if n not in features]


def skip_reason(lacking: list[str], lab: str) -> str:
    return (f"needs {' and '.join(FEATURES[n] for n in lacking)}, which lab {lab!r} does "
            f"not have")
