"""The guest's domain config on the resource hosts: it parses, it is the same everywhere, its
disk and bridge exist on every host, its MAC is unique, it fits the destination's memory,
and its kernel and ramdisk are there."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from testinfra.host import Host

from xenlab.checks.domain import against_inventory, against_running, not_reported
from xenlab.errors import ParseError
from xenlab.hypervisor.domconfig import DomainConfig, disk_device, parse_domain_config
from xenlab.hypervisor.xen import facts_blocker
from xenlab.inventory import Inventory
from xenlab.inventory.model import DomainSpec, Guest
from xenlab.lab import Lab
from xenlab.net.iproute import parse_links


def read_config(host: Host, name: str, domain: DomainSpec) -> tuple[str, DomainConfig]:
    __tracebackhide__ = True
    path = domain.config_path
    f = host.file(path)
    if not f.exists:
        pytest.fail(f"on {name}: the domain config {path} is missing", pytrace=False)
    text = f.content_string
    try:
        return text, parse_domain_config(text, f"{name}:{path}")
    except ParseError as exc:
        pytest.fail(f"on {name}: {exc}", pytrace=False)


def test_config_parses(resource_name: str, host_of: Callable[[str], Host],
                       inventory: Inventory, guest: Guest) -> None:
    _, config = read_config(host_of(resource_name), resource_name, guest.domain)
    assert config.name == guest.domain.name, (
        f"on {resource_name}: {guest.domain.config_path} names the domain "
        f"{config.name!r}, not {guest.domain.name!r}")


def test_config_identical_on_every_resource_host(host_of: Callable[[str], Host],
                                                 inventory: Inventory, guest: Guest) -> None:
    configs = {h.name: read_config(host_of(h.name), h.name, guest.domain)[1]
               for h in inventory.resources}
    first_name, first = next(iter(configs.items()))
    for name, config in configs.items():
        differ = sorted(k for k in set(first.values) | set(config.values)
                        if first.values.get(k) != config.values.get(k))
        assert not differ, (f"{guest.domain.config_path} differs between {first_name} and "
                            f"{name} in: " + "; ".join(
                                f"{k} = {first.values.get(k)!r} on {first_name}, "
                                f"{config.values.get(k)!r} on {name}" for k in differ))


def test_config_matches_the_inventory(resource_name: str, host_of: Callable[[str], Host],
                                      inventory: Inventory, guest: Guest) -> None:
    """The config is judged against the inventory, not only against the other hosts' (a
    config wrong identically everywhere passes the comparison between hosts)."""
    _, config = read_config(host_of(resource_name), resource_name, guest.domain)
    differ = against_inventory(config, guest.domain)
    assert not differ, (f"on {resource_name}: {guest.domain.config_path} disagrees with "
                        f"the inventory's domain: " + "; ".join(differ))


def test_config_matches_the_running_guest(resource_name: str, host_of: Callable[[str], Host],
                                          inventory: Inventory, lab: Lab, guest: Guest) -> None:
    """Each host's config against the guest as its hypervisor runs it (memory, vcpus, MACs,
    bridges, disks): a destination whose config differs receives a guest it cannot hold."""
    _, config = read_config(host_of(resource_name), resource_name, guest.domain)
    running = lab.running_guest(guest.name)
    if running is None:
        pytest.fail(f"not checked: {guest.domain.name} does not run on exactly one "
                    f"resource host", pytrace=False)
    differ = against_running(config, running)
    unjudged = not_reported(running)
    assert not differ, (f"on {resource_name}: {guest.domain.config_path} disagrees with "
                        f"{guest.domain.name} as it runs ({running.source}): "
                        + "; ".join(differ)
                        + (f" (not reported, so not judged: {', '.join(unjudged)})"
                           if unjudged else ""))


def test_disk_exists_on_every_resource_host(resource_name: str, host_of: Callable[[str], Host],
                                            inventory: Inventory, lab: Lab, guest: Guest) -> None:
    _, config = read_config(host_of(resource_name), resource_name, guest.domain)
    lv_path = f"/dev/{inventory.lvm.vg}/{guest.lv}"
    for source, target, _mode in config.disk_fields():
        if not source.startswith("phy:"):
            continue
        path = disk_device(source)  # Xen: a relative phy: path is under /dev
        exists = lab.device_ref(resource_name, path) is not None
        hint = f" (the lab's LV is {lv_path})" if path != lv_path else ""
        assert exists, (f"on {resource_name}: disk {source!r} ({target}) of "
                        f"{guest.domain.config_path} is {path}, which does not exist{hint}")


def test_vif_bridge_exists(resource_name: str, host_of: Callable[[str], Host],
                           inventory: Inventory, guest: Guest) -> None:
    host = host_of(resource_name)
    _, config = read_config(host, resource_name, guest.domain)
    for vif in config.vif_fields():
        bridge = vif.get("bridge", "")
        out = host.run("ip -j -d link show %s", bridge)
        links = parse_links(out.stdout) if out.rc == 0 else []
        assert links and links[0].kind == "bridge", (
            f"on {resource_name}: the vif bridge {bridge!r} does not exist"
            + (f" (it is a {links[0].kind or 'plain'} link)" if links else ""))


def test_mac_unique_on_the_lab(lab_hosts: dict[str, Host], inventory: Inventory, guest: Guest) -> None:
    macs = [v.mac.lower() for v in guest.domain.vifs]
    assert len(macs) == len(set(macs)), f"{guest.domain.name} has one MAC twice: {macs}"
    clashes = []
    for name, host in lab_hosts.items():
        for link in parse_links(host.check_output("ip -j link show")):
            if link.mac.lower() in macs:
                clashes.append(f"{name}:{link.name}")
    assert not clashes, f"{guest.domain.name}'s MAC {macs} is also used by {clashes}"


def test_memory_fits_the_destination(resource_name: str, host_of: Callable[[str], Host],
                                     inventory: Inventory, lab: Lab, guest: Guest) -> None:
    if resource_name == lab.guest_location(guest.name):
        pytest.skip(f"{guest.domain.name} runs on {resource_name} already")
    host = host_of(resource_name)
    _, config = read_config(host, resource_name, guest.domain)
    wanted = int(config.get_str("memory") or 0)
    facts = lab.hypervisor.host_facts(resource_name)  # free memory as the hypervisor counts it
    assert facts.free_memory_mib is not None, (
        f"on {resource_name}: {facts.toolstack} reports no free memory")
    assert wanted <= facts.free_memory_mib, (
        f"{guest.domain.name} needs {wanted} MiB; {resource_name} has "
        f"{facts.free_memory_mib} MiB free ({facts.free_memory_source})")


def test_kernel_and_ramdisk_exist(resource_name: str, host_of: Callable[[str], Host],
                                  inventory: Inventory, guest: Guest) -> None:
    host = host_of(resource_name)
    _, config = read_config(host, resource_name, guest.domain)
    missing = [f"{key} {config.get_str(key)}" for key in ("kernel", "ramdisk")
               if config.get_str(key) and not host.file(config.get_str(key)).is_file]
    assert not missing, f"on {resource_name}: missing " + ", ".join(missing)


@pytest.mark.needs("virt-caps")
def test_guest_type_can_live_migrate(resource_name: str, host_of: Callable[[str], Host],
                                     inventory: Inventory, lab: Lab, guest: Guest) -> None:
    """A PV guest on a Xen built without shadow paging (Debian's 4.17) cannot be
    live-migrated: say so before any migration is tried."""
    _, config = read_config(host_of(resource_name), resource_name, guest.domain)
    guest_type = config.get_str("type") or ("hvm" if config.get_str("builder") == "hvm" else "pv")
    blocker = facts_blocker(lab.hypervisor.host_facts(resource_name), guest_type,
                            hap=config.get_str("hap") not in ("0", "False"))
    assert blocker is None, blocker
