"""The seam between suites and labs: host facts from each toolstack's saved outputs, storage
references, lab features and the driver registry (pure logic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xenlab.errors import LabError, ParseError
from xenlab.hypervisor.base import HostFacts
from xenlab.hypervisor.registry import DRIVERS, DriverContext, driver_features, make_driver, register
from xenlab.hypervisor.virsh import parse_virsh_version
from xenlab.hypervisor.xen import facts_blocker, live_migration_blocker, parse_xl_info, xen_host_facts
from xenlab.inventory import load_inventory
from xenlab.lab.features import FEATURES, check_features, missing, skip_reason
from xenlab.lab.select import lab_features
from xenlab.storage.ref import DiskRef

REPO = Path(__file__).parents[2]
DATA = REPO / "tests" / "data"


def test_xl_info_gives_xens_own_figures() -> None:
    info = parse_xl_info((DATA / "xen" / "embedded-xen" / "xl-info.txt").read_text())
    facts = xen_host_facts(info, "xen_resource_1", "xl")
    assert facts.version == "Xen 4.17.5"
    assert facts.free_memory_mib == int(info["free_memory"])
    assert facts.free_memory_source == "xl info free_memory"
    assert facts.virt_caps is not None and {"hvm", "hap", "shadow"} <= facts.virt_caps
    assert facts_blocker(facts, "pvh", hap=False) is None


@pytest.mark.parametrize(("caps", "guest_type", "hap"), [
    ("pv hvm hap", "pv", True), ("pv hvm hap", "pvh", False), ("pv hvm hap shadow", "pv", True),
    ("pv", "hvm", True), (None, "pv", True)])
def test_the_blocker_reads_facts_as_it_reads_xl_info(caps: str | None, guest_type: str,
                                                     hap: bool) -> None:
    info = {"host": "h", "xen_caps": "xen-3.0-x86_64", **({"virt_caps": caps} if caps else {})}
    facts = HostFacts("h", "xl", "Xen 4.17", 100, "x",
                      frozenset(caps.split()) if caps else None, "xen-3.0-x86_64")
    from_facts, from_info = facts_blocker(facts, guest_type, hap), live_migration_blocker(
        info, guest_type, hap)
    assert (from_facts is None) == (from_info is None)
    if from_facts is not None and from_info is not None:  # the caps are listed sorted
        assert from_facts.split("(virt_caps")[0] == from_info.split("(virt_caps")[0]


def test_virsh_version_names_library_and_hypervisor() -> None:
    text = (DATA / "libvirt" / "embedded-xen" / "virsh-version.txt").read_text()
    assert parse_virsh_version(text) == "libvirt 9.0.0 (Xen 4.17.0)"
    with pytest.raises(ParseError):
        parse_virsh_version("error: failed to connect to the hypervisor\n")


def test_virsh_freecell_is_libvirts_own_figure() -> None:
    """Captured on the embedded Xen lab's dom0s: Xen's free memory, not dom0's."""
    from xenlab.hypervisor.virsh import parse_freecell

    data = DATA / "libvirt" / "embedded-xen"
    assert parse_freecell((data / "virsh-freecell-r1.txt").read_text()) == 117876
    assert parse_freecell((data / "virsh-freecell-all-r2.txt").read_text()) == 251212
    for bad in ("", "error: failed to get free memory\n", "Total: many KiB\n"):
        with pytest.raises(ParseError):
            parse_freecell(bad)


def test_disk_references_compare_bytes() -> None:
    lv = DiskRef("s", "/srv/export.img", 1 << 20, 64 << 20)
    assert lv.same_bytes(DiskRef("other host", "/srv/export.img", 1 << 20, 64 << 20))
    assert lv.overlaps(DiskRef("r", "/srv/export.img", 0, 2 << 20))
    assert not lv.overlaps(DiskRef("r", "/srv/export.img", 0, 1 << 20))  # ends where it starts
    assert not lv.overlaps(DiskRef("r", "/srv/other.img", 1 << 20, 64 << 20))
    whole = DiskRef("r", "/dev/dm-0")
    assert whole.overlaps(DiskRef("r", "/dev/dm-0", 4096, 512)) and not whole.same_bytes(lv)
    assert lv.blkid_command() == "blkid -p -O 1048576 -o value -s TYPE /srv/export.img"
    assert whole.blkid_command() == "blkid -p -o value -s TYPE /dev/dm-0"
    assert str(whole) == "/dev/dm-0" and "offset 1048576" in str(lv)


@pytest.mark.parametrize(("inventory", "has", "lacks"), [
    ("embedded", {"qemu-incoming", "fault-injection", "memory-audit"},
     {"aoe-initiator", "device-mapper", "provisioning"}),
    ("embedded-xen", {"aoe-initiator", "device-mapper", "fault-injection", "virt-caps",
                      "storage-outage", "power-control"},
     {"memory-audit", "provisioning", "build-faults"}),
    ("embedded-xen-libvirt", {"libvirt-remote", "aoe-initiator", "power-control"},
     {"fault-injection", "virt-caps"}),  # virsh sets no fault off in flight
    ("xl", {"xl-ssh-transport", "provisioning", "virt-caps"},
     {"fault-injection", "built-here", "power-control"}),  # no power commands in it
    ("article-xm", {"xend-relocation", "virt-caps"}, {"fault-injection", "xl-ssh-transport"}),
    ("libvirt", {"libvirt-remote"}, {"virt-caps", "fault-injection"}),
])
def test_each_lab_declares_what_it_can_do(inventory: str, has: set[str], lacks: set[str]) -> None:
    features = lab_features(load_inventory(str(REPO / "inventories" / f"{inventory}.yml")))
    assert has <= features and not lacks & features, sorted(features)
    assert features <= set(FEATURES)


def test_a_feature_name_must_be_known() -> None:
    check_features(("aoe-initiator",), "here")
    with pytest.raises(ValueError, match="here: unknown lab feature 'aoe-initator'"):
        check_features(("aoe-initator",), "here")
    assert missing(("aoe-initiator", "qemu-incoming"), frozenset({"qemu-incoming"})) == [
        "aoe-initiator"]
    assert skip_reason(["aoe-initiator"], "lab1") == (
        "needs an AoE initiator (the aoe driver) on the resource hosts, which lab 'lab1' does "
        "not have")


class ToyDriver:
    """A toolstack added the way the registry says: a driver and one `register` line."""

    toolstack = "toy"

    def __init__(self, context: DriverContext) -> None:
        self.hosts = dict(context.hosts)


def test_a_toolstack_is_one_driver_and_one_registry_line(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """A toy toolstack, registered here (one line), is taken by an inventory, brings its
    features and its tool to the lab, and is the real lab's driver: nothing else changes."""
    from xenlab.checks.tools import required_tools
    from xenlab.inventory import Role
    from xenlab.lab.real import RealLab
    from xenlab.progress import Progress

    monkeypatch.setitem(DRIVERS, "toy", DRIVERS["xl"])  # restored after the test
    register("toy", {"virt-caps"}, ToyDriver, ("toyctl", "toy-tools", "the toy toolstack"))  # type: ignore[arg-type]
    path = tmp_path / "toy.yml"
    path.write_text((REPO / "inventories" / "xl.yml").read_text().replace(
        "toolstack: xl", "toolstack: toy"))
    inventory = load_inventory(str(path))
    assert inventory.toolstack == "toy"
    assert "virt-caps" in lab_features(inventory) and "xl-ssh-transport" not in lab_features(
        inventory)
    assert "toyctl" in [t.command for t in required_tools(Role.RESOURCE, "toy",
                                                           lab_features(inventory))]
    lab = RealLab(inventory, progress=Progress(lambda line: None), cache=tmp_path)
    assert isinstance(lab.hypervisor, ToyDriver)
    assert sorted(lab.hypervisor.hosts) == [h.name for h in inventory.resources]
    assert driver_features("toy") == frozenset({"virt-caps"})
    monkeypatch.delitem(DRIVERS, "toy")
    with pytest.raises(Exception, match="toolstack: expected one of"):
        load_inventory(str(path))  # unregistered: the inventory is refused, by name


def test_a_toolstack_without_a_driver_for_ssh_hosts_is_one_error() -> None:
    inventory = load_inventory(str(REPO / "inventories" / "xl.yml"))
    with pytest.raises(LabError, match="toolstack qemu has no driver for hosts reached over SSH"):
        make_driver("qemu", DriverContext(inventory, {}, {}))


def test_every_driver_lists_the_copies_of_a_domain_on_every_host() -> None:
    """`copies` is one verb of the protocol: xl's half-received `vm1--incoming` is a copy,
    another domain is not (saved `xl list` of the embedded Xen lab, plus a receiving one)."""
    from tests.unit.test_xl import _FakeHost, _Result
    from xenlab.hypervisor.base import DomainState
    from xenlab.hypervisor.xen import XenCliDriver

    listed = (Path(__file__).parents[1] / "data/xen/xl-list.txt").read_text()
    receiving = listed.replace("vm1 ", "vm1--incoming ").replace("-b----", "--p---")
    receiving += "vm2                                          4    96     1     -b----       0.1\n"
    hosts = {"xen_resource_1": _FakeHost({"xl list": _Result(0, listed)}),
             "xen_resource_2": _FakeHost({"xl list": _Result(0, receiving)})}
    driver = XenCliDriver("xl", hosts)  # type: ignore[arg-type]
    assert driver.copies("vm1") == [("xen_resource_1", "vm1", DomainState.RUNNING),
                                    ("xen_resource_2", "vm1--incoming", DomainState.PAUSED)]
    assert driver.running_on("vm1") == ["xen_resource_1"]


def test_every_driver_implements_the_whole_hypervisor_protocol() -> None:
    """No driver promises a verb it lacks: each class has every method of the protocol
    (create, destroy, states, copies, running_on, running_domain, host_facts, diagnostics,
    migrate), and the fake hypervisor is one of them."""
    import inspect

    from xenlab.hypervisor.base import Hypervisor
    from xenlab.hypervisor.fake import FakeHypervisor
    from xenlab.hypervisor.qemu import QemuDriver
    from xenlab.hypervisor.virsh import VirshDriver
    from xenlab.hypervisor.xen import XenCliDriver

    verbs = {name for name, _ in inspect.getmembers(Hypervisor, inspect.isfunction)
             if not name.startswith("_")}
    assert {"create", "destroy", "copies", "migrate", "host_facts"} <= verbs
    for driver in (QemuDriver, XenCliDriver, VirshDriver, FakeHypervisor):
        lacking = sorted(v for v in verbs if not callable(getattr(driver, v, None)))
        assert lacking == [], f"{driver.__name__} lacks {lacking}"
        for verb in verbs:  # the same parameters, by name, as the protocol says
            wanted = list(inspect.signature(getattr(Hypervisor, verb)).parameters)
            have = list(inspect.signature(getattr(driver, verb)).parameters)
            assert have[:len(wanted)] == wanted, (driver.__name__, verb, have)


def test_the_fake_hypervisor_creates_and_destroys_where_asked(tmp_path: Path) -> None:
    from xenlab.hypervisor.base import DomainState
    from xenlab.hypervisor.fake import FakeHypervisor, fake_world

    inventory = load_inventory(str(Path(__file__).parents[2] / "inventories/embedded.yml"))
    said: list[str] = []
    world = fake_world(inventory, said.append)
    driver = FakeHypervisor(world, inventory)
    world.start("xen_resource_1")
    with pytest.raises(LabError, match="runs there already"):
        driver.create("xen_resource_1", "/etc/xen/vm/vm1")
    driver.destroy("xen_resource_1", "vm1")
    assert driver.running_on("vm1") == []
    driver.create("xen_resource_2", "/etc/xen/vm/vm1")
    assert driver.copies("vm1") == [("xen_resource_2", "vm1", DomainState.RUNNING)]
    assert said[-1] == "create vm1 on xen_resource_2 from /etc/xen/vm/vm1"
