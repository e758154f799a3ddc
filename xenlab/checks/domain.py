"""The guest's domain config judged against the truth (pure): the inventory's domain, and
the guest as its hypervisor runs it. A config wrong identically on every host passes the
comparison between hosts; it fails these."""

from __future__ import annotations

from xenlab.hypervisor.base import RunningDomain
from xenlab.hypervisor.domconfig import DomainConfig, disk_device
from xenlab.inventory.model import DomainSpec


def _config_vcpus(config: DomainConfig) -> int | str:
    text = config.get_str("vcpus") or "1"  # absent: one, as xm and xl take it
    return int(text) if text.isdigit() else text


def _config_memory(config: DomainConfig) -> int | str:
    text = config.get_str("memory")
    return int(text) if text.isdigit() else text


def against_inventory(config: DomainConfig, spec: DomainSpec) -> list[str]:
    """Each key where the config and the inventory's domain differ, with both values."""
    wanted: dict[str, object] = {
        "memory": spec.memory, "vcpus": spec.vcpus, "kernel": spec.kernel,
        "ramdisk": spec.ramdisk, "vif macs": [v.mac for v in spec.vifs],
        "vif bridges": [v.bridge for v in spec.vifs],
        "disks": [d.replace(" ", "") for d in spec.disks]}
    found: dict[str, object] = {
        "memory": _config_memory(config), "vcpus": _config_vcpus(config),
        "kernel": config.get_str("kernel"), "ramdisk": config.get_str("ramdisk"),
        "vif macs": [v.get("mac", "").lower() for v in config.vif_fields()],
        "vif bridges": [v.get("bridge", "") for v in config.vif_fields()],
        "disks": [d.replace(" ", "") for d in config.get_list("disk")]}
    return [f"{k}: {found[k]!r} in the config, {wanted[k]!r} in the inventory"
            for k in wanted if found[k] != wanted[k]]


def against_running(config: DomainConfig, running: RunningDomain) -> list[str]:
    """Each key where the config and the running guest differ, with both values. What the
    hypervisor does not report (None) is not judged."""
    found: dict[str, object] = {
        "memory (MiB)": _config_memory(config), "vcpus": _config_vcpus(config),
        "vif macs": tuple(v.get("mac", "").lower() for v in config.vif_fields()),
        "vif bridges": tuple(v.get("bridge", "") for v in config.vif_fields()),
        "disks": tuple(disk_device(source) for source, _t, _m in config.disk_fields())}
    reported: dict[str, object] = {
        "memory (MiB)": running.memory_mib, "vcpus": running.vcpus, "vif macs": running.macs,
        "vif bridges": running.bridges, "disks": running.disks}
    return [f"{k}: {found[k]!r} in the config, {reported[k]!r} running on {running.host}"
            for k in found if reported[k] is not None and found[k] != reported[k]]


def not_reported(running: RunningDomain) -> list[str]:
    """What the hypervisor does not say of the running guest (so it goes unjudged)."""
    return [k for k, v in (("memory", running.memory_mib), ("vcpus", running.vcpus),
                           ("MACs", running.macs), ("bridges", running.bridges),
                           ("disks", running.disks)) if v is None]
