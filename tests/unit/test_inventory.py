"""Inventories: the shipped ones load; malformed ones get one error naming file, key, expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xenlab.errors import InventoryError
from xenlab.inventory import LabKind, Toolstack, load_inventory, parse_inventory, parse_size

REPO = Path(__file__).parents[2]
EMBEDDED = (REPO / "inventories/embedded.yml").read_text()


def test_shipped_inventories_load() -> None:
    embedded = load_inventory(REPO / "inventories/embedded.yml")
    assert embedded.kind is LabKind.EMBEDDED and embedded.toolstack is Toolstack.QEMU
    assert [h.name for h in embedded.resources] == ["xen_resource_1", "xen_resource_2"]
    assert embedded.lvm.path == "/dev/vg_xen/lv_vm1" and embedded.lvm.size == 5 << 30
    assert embedded.relocation_port == 8002 and embedded.observer == "xen_storage"
    article = load_inventory(REPO / "inventories/article-xm.yml")
    assert article.toolstack is Toolstack.XM and article.filesystem == "reiserfs"
    assert article.domain.root == "/dev/hda1" and article.domain.vifs[0].bridge == "xenbr0"
    assert article.aoe.device == "/dev/sda3"
    xl = load_inventory(REPO / "inventories/xl.yml")
    assert xl.toolstack is Toolstack.XL and xl.kind is LabKind.REAL
    libvirt = load_inventory(REPO / "inventories/libvirt.yml")
    assert libvirt.toolstack is Toolstack.LIBVIRT and libvirt.libvirt_driver == "xen"
    xen = load_inventory(REPO / "inventories/embedded-xen.yml")
    assert xen.kind is LabKind.EMBEDDED_XEN and xen.toolstack is Toolstack.XL
    assert xen.domain.guest_type == "pvh" and dict(xen.domain.options) == {"hap": 0}
    assert (xen.run.interval_ms, xen.run.roundtrips, xen.run.scenarios) == (25, 1, ("idle",))
    from xenlab.inventory.model import Connection

    assert xen.storage.connection is Connection.EMBEDDED
    assert all(h.connection is Connection.SSH for h in xen.resources)


def test_run_defaults_and_options_are_validated() -> None:

    text = (REPO / "inventories/embedded-xen.yml").read_text()
    with pytest.raises(InventoryError, match=r"run\.scenarios"):
        parse_inventory(text.replace("scenarios: [idle]", "scenarios: [busy]"))
    with pytest.raises(InventoryError, match=r"options\.HAP"):
        parse_inventory(text.replace("options: {hap: 0}", "options: {HAP: 0}"))
    with pytest.raises(InventoryError, match="type"):
        parse_inventory(text.replace("type: pvh ", "type: pvm "))


def mutate(change) -> str:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(EMBEDDED)
    change(data)
    return yaml.safe_dump(data)


def error_of(text: str) -> InventoryError:
    with pytest.raises(InventoryError) as info:
        parse_inventory(text, "lab.yml")
    return info.value


def test_unknown_key_is_named() -> None:
    err = error_of(mutate(lambda d: d["all"]["vars"]["xenlab"].update(relocaton_port=8002)))
    assert str(err).startswith("lab.yml: all.vars.xenlab.relocaton_port: expected one of")
    assert "unknown key" in str(err)


def test_missing_role_is_named() -> None:
    err = error_of(mutate(lambda d: d["all"]["children"].pop("storage")))
    assert err.key == "all.children.storage"
    assert "required key is missing" in str(err)


def test_one_resource_host_is_refused() -> None:
    err = error_of(mutate(
        lambda d: d["all"]["children"]["resources"]["hosts"].pop("xen_resource_2")))
    assert err.key == "all.children.resources.hosts"
    assert "at least two resource hosts" in str(err)


def test_bad_address_is_named() -> None:
    err = error_of(mutate(lambda d: d["all"]["children"]["resources"]["hosts"]["xen_resource_1"]
                          .update(ansible_host="198.18.0.300")))
    assert err.key == "all.children.resources.hosts.xen_resource_1.ansible_host"
    assert "an IPv4 address" in str(err) and "198.18.0.300" in str(err)


def test_wrong_type_is_named() -> None:
    err = error_of(mutate(lambda d: d["all"]["children"]["guests"]["hosts"]["vm1"]["domain"]
                          .update(memory="lots")))
    assert err.key == "all.children.guests.hosts.vm1.domain.memory"
    assert "an integer" in str(err) and "'lots'" in str(err)


def test_embedded_lab_stays_in_the_benchmarking_range() -> None:
    err = error_of(mutate(lambda d: d["all"]["vars"]["xenlab"].update(network="10.0.0.0/24")))
    assert err.key == "all.vars.xenlab.network" and "198.18.0.0/15" in str(err)


def test_duplicate_address_is_refused() -> None:
    err = error_of(mutate(lambda d: d["all"]["children"]["resources"]["hosts"]["xen_resource_2"]
                          .update(ansible_host="198.18.0.11")))
    assert "also used by xen_resource_1" in str(err)


def test_observer_must_be_a_lab_host() -> None:
    err = error_of(mutate(lambda d: d["all"]["vars"]["xenlab"].update(observer="nowhere")))
    assert err.key == "all.vars.xenlab.observer"


def test_bad_vif_and_disk_lines() -> None:
    err = error_of(mutate(lambda d: d["all"]["children"]["guests"]["hosts"]["vm1"]["domain"]
                          .update(vif=["mac=zz, bridge=xenbr0"])))
    assert err.key.endswith("domain.vif[0]")
    err = error_of(mutate(lambda d: d["all"]["children"]["guests"]["hosts"]["vm1"]["domain"]
                          .update(disk=["phy:/dev/vg_xen/lv_vm1"])))
    assert err.key.endswith("domain.disk[0]")


def test_yaml_syntax_error_names_line() -> None:
    err = error_of("all:\n  vars: [unclosed\n")
    assert "valid YAML" in str(err) and "line" in str(err)


def test_not_a_mapping() -> None:
    err = error_of("- just\n- a list\n")
    assert "(top level)" in str(err) and "a mapping" in str(err)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such file"):
        load_inventory(tmp_path / "absent.yml")


@pytest.mark.parametrize(("text", "size"), [
    ("5g", 5 << 30), ("512m", 512 << 20), ("6GiB", 6 << 30), ("1.5g", 3 << 29), (4096, 4096)])
def test_parse_size(text: object, size: int) -> None:
    assert parse_size(text) == size


def test_parse_size_rejects_words() -> None:
    with pytest.raises(ValueError):
        parse_size("five gigs")


def test_controller_observes_real_labs_only() -> None:
    err = error_of(mutate(lambda d: d["all"]["vars"]["xenlab"].update(observer="controller")))
    assert err.key == "all.vars.xenlab.observer" and "controller" not in err.expected
    real = (REPO / "inventories/xl.yml").read_text().replace("observer: xen_storage",
                                                              "observer: controller")
    assert parse_inventory(real, "xl.yml").observer == "controller"
