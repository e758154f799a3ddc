"""The running guest as each hypervisor reports it (parsers on saved real outputs), and the
domain config judged against it and against the inventory (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xenlab.checks.domain import against_inventory, against_running, not_reported
from xenlab.errors import ParseError
from xenlab.hypervisor.base import RunningDomain, kib_to_mib, running_copy, sole_host
from xenlab.hypervisor.domconfig import DomainConfig, disk_device, parse_domain_config, render_domain_config
from xenlab.hypervisor.qmp import memory_mib, nic_macs, vcpu_count
from xenlab.hypervisor.virsh import parse_domain_xml
from xenlab.inventory.model import DomainSpec, Vif

DATA = Path(__file__).parents[1] / "data"

SPEC = DomainSpec(name="vm1", config_path="/etc/xen/vm/vm1", memory=256,
                  kernel="/boot/vmlinuz", ramdisk="/boot/initrd", root="/dev/xvda", extra="3",
                  vifs=(Vif(mac="aa:cc:00:00:00:01", bridge="xenbr0"),),
                  disks=("phy:/dev/vg_xen/lv_vm1,xvda,w",))


def config(spec: DomainSpec = SPEC, replace: tuple[str, str] = ("", "")) -> DomainConfig:
    text = render_domain_config(spec, toolstack="xl")
    return parse_domain_config(text.replace(*replace) if replace[0] else text)


def running(**fields: object) -> RunningDomain:
    base: dict[str, object] = dict(memory_mib=256, vcpus=1, macs=("aa:cc:00:00:00:01",),
                                   bridges=("xenbr0",), disks=("/dev/vg_xen/lv_vm1",))
    base.update(fields)
    return RunningDomain("vm1", "xen_resource_1", "test", **base)  # type: ignore[arg-type]


def test_qemu_reports_memory_vcpus_and_macs() -> None:
    """QMP replies saved from the embedded lab's QEMU 7.2 (vm1, 256 MiB, one vCPU)."""
    q = DATA / "qmp"
    assert memory_mib(json.loads((q / "query-memory-size-summary.json").read_text())) == 256
    assert vcpu_count(json.loads((q / "query-cpus-fast.json").read_text())) == 1
    assert nic_macs(json.loads((q / "query-rx-filter.json").read_text())) == ("aa:cc:00:00:00:01",)


def test_libvirt_reports_the_running_guest() -> None:
    """`virsh dumpxml vm1` captured from libvirt 9.0 on the embedded Xen lab's dom0."""
    text = (DATA / "libvirt" / "embedded-xen" / "virsh-dumpxml-vm1-r1.txt").read_text()
    vm1 = parse_domain_xml(text, "xen_resource_1")
    assert (vm1.name, vm1.memory_mib, vm1.vcpus) == ("vm1", 128, 1)
    assert (vm1.macs, vm1.bridges, vm1.disks) == (("00:16:3e:18:01:21",), ("xenbr0",),
                                                   ("/dev/vg_xen/lv_vm1",))
    # the domain XML xenlab writes says the same, so a healthy lab compares equal
    written = (DATA / "libvirt" / "embedded-xen" / "vm1.xml").read_text()
    assert parse_domain_xml(written, "xen_resource_1") == vm1


@pytest.mark.parametrize("text", ["", "<domain>", "<network><name>n</name></network>",
                                  "<domain><name>v</name><memory unit='parsec'>1</memory></domain>",
                                  "<domain><name>v</name><vcpu>many</vcpu></domain>"])
def test_libvirt_xml_refused_in_one_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse_domain_xml(text, "h")


@pytest.mark.parametrize("reply", [None, {}, {"base-memory": "1"}, [1], "x"])
def test_qmp_figures_refuse_what_they_cannot_read(reply: object) -> None:
    for parse in (memory_mib, vcpu_count, nic_macs):
        with pytest.raises(ParseError):
            parse(reply)


def test_kib_to_mib_rounds_xen_overhead_away() -> None:
    assert kib_to_mib(131136) == 128  # virsh dominfo's Used memory of a 128 MiB guest
    assert kib_to_mib(131072) == 128


def test_disk_device_follows_xen_paths() -> None:
    assert disk_device("phy:/dev/vg_xen/lv_vm1") == "/dev/vg_xen/lv_vm1"
    assert disk_device("phy:xen/lv_vm1") == "/dev/xen/lv_vm1"  # relative to /dev
    assert disk_device("file:/srv/vm1.img") == "/srv/vm1.img"


def test_the_healthy_config_agrees_with_both() -> None:
    assert against_inventory(config(), SPEC) == []
    assert against_running(config(), running()) == []


def test_a_config_wrong_everywhere_is_caught_with_its_values() -> None:
    wrong = config(replace=("memory = 256", "memory = 512"))
    assert against_inventory(wrong, SPEC) == [
        "memory: 512 in the config, 256 in the inventory"]
    assert against_running(wrong, running()) == [
        "memory (MiB): 512 in the config, 256 running on xen_resource_1"]


def test_each_running_field_is_judged() -> None:
    differ = against_running(config(), running(vcpus=2, macs=("aa:cc:00:00:00:02",),
                                               bridges=("br1",), disks=("/dev/other",)))
    assert [d.split(":")[0] for d in differ] == ["vcpus", "vif macs", "vif bridges", "disks"]
    assert "vcpus: 1 in the config, 2 running on xen_resource_1" in differ


def test_vcpus_from_the_inventory_reach_the_config() -> None:
    two = DomainSpec(**{**SPEC.__dict__, "vcpus": 2})
    assert "vcpus = 2" in render_domain_config(two, toolstack="xl")
    assert "vcpus" not in render_domain_config(SPEC, toolstack="xl")  # the article's file
    assert against_inventory(config(), two) == ["vcpus: 1 in the config, 2 in the inventory"]
    assert against_running(config(two), running(vcpus=2)) == []


def test_what_the_hypervisor_does_not_report_is_not_judged() -> None:
    xm = RunningDomain("vm1", "h", "xm list", memory_mib=256, vcpus=1)
    assert against_running(config(), xm) == []
    assert not_reported(xm) == ["MACs", "bridges", "disks"]
    assert against_running(config(), RunningDomain("vm1", "h", "xm list", memory_mib=64)) == [
        "memory (MiB): 256 in the config, 64 running on h"]


class Driver:
    def __init__(self, hosts: list[str]) -> None:
        self.hosts = hosts

    def running_on(self, domain: str) -> list[str]:
        return self.hosts

    def running_domain(self, host: str, domain: str) -> RunningDomain | None:
        return RunningDomain(domain, host, "fake")


@pytest.mark.parametrize(("hosts", "expected"), [([], None), (["a"], "a"), (["a", "b"], None)])
def test_one_copy_or_none(hosts: list[str], expected: str | None) -> None:
    assert sole_host(Driver(hosts), "vm1") == expected
    copy = running_copy(Driver(hosts), "vm1")
    assert (copy.host if copy else None) == expected
