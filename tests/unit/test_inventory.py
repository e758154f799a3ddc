"""Inventories: the shipped ones load; malformed ones get one error naming file, key, expectation."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from xenlab.errors import InventoryError
from xenlab.inventory import LabKind, Toolstack, load_inventory, parse_inventory, parse_size
from xenlab.inventory.load import MAX_DEPTH, MAX_INVENTORY_BYTES
from xenlab.names import LAB_NAME_RULE, is_lab_name

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


# --- hostile files: each gets one InventoryError naming the file and what was expected ---

def load_error(path: Path) -> InventoryError:
    """The InventoryError of loading `path`; any other exception fails the test."""
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert str(info.value).startswith(f"{path}: expected "), str(info.value)
    return info.value


def write(tmp_path: Path, data: bytes | str, name: str = "lab.yml") -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def test_binary_file_is_refused(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, EMBEDDED.encode()[:100] + b"\0\x01\x02\x7fELF"))
    assert err.expected == "a text file (YAML)" and "NUL byte at offset 100" in str(err)


def test_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, EMBEDDED.replace("embedded (Debian", "embarqu\u00e9 (Debian")
                           .encode("latin-1")))
    assert err.expected == "UTF-8 text" and "byte 0xe9 at offset" in str(err)


@pytest.mark.parametrize("text", ["", "\n\n", "# only\n# comments\n", "---\n", "~\n"])
def test_empty_or_comment_only_file_is_refused(tmp_path: Path, text: str) -> None:
    err = load_error(write(tmp_path, text))
    assert "an empty file or only comments" in str(err) and "'all'" in err.expected


def test_control_characters_are_refused(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, EMBEDDED.replace("ext4", "ext4\x1b[2J")))
    assert err.expected == "printable text (YAML)" and "U+001B" in str(err)


def test_directory_is_refused(tmp_path: Path) -> None:
    err = load_error(tmp_path)
    assert err.expected == "a regular file" and err.found == "a directory"


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "lab.yml"
    os.mkfifo(fifo)
    err = load_error(fifo)
    assert err.expected == "a regular file" and err.found == "a FIFO"


def test_unreadable_paths_are_refused(tmp_path: Path) -> None:
    # these hold for root too: no permission bit makes them readable
    plain = write(tmp_path, EMBEDDED)
    err = load_error(plain / "lab.yml")  # a path under a regular file
    assert "a readable file (Not a directory)" in str(err)
    (tmp_path / "dangling.yml").symlink_to(tmp_path / "gone.yml")
    assert "no such file" in str(load_error(tmp_path / "dangling.yml"))
    (tmp_path / "loop.yml").symlink_to(tmp_path / "loop.yml")
    assert "a readable file (Too many levels of symbolic links)" in str(
        load_error(tmp_path / "loop.yml"))
    with pytest.raises(InventoryError, match="a usable file name"):
        load_inventory(f"{tmp_path}/lab\0.yml")


def test_file_without_read_permission_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, EMBEDDED)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("this user (root) reads files without read permission")
        assert "a readable file (Permission denied)" in str(load_error(path))
    finally:
        path.chmod(0o600)


def test_huge_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    with path.open("wb") as file:  # sparse: 1 GiB said by stat, nothing written
        file.truncate(1 << 30)
    err = load_error(path)
    assert err.expected == (f"an inventory of at most {MAX_INVENTORY_BYTES >> 10} KiB "
                            f"({MAX_INVENTORY_BYTES} bytes)")
    assert err.found == f"{1 << 30} bytes"
    err = load_error(write(tmp_path, EMBEDDED + "#" * MAX_INVENTORY_BYTES))
    assert err.expected.startswith("an inventory of at most ")
    assert err.found == f"{len(EMBEDDED) + MAX_INVENTORY_BYTES} bytes"


def test_file_of_exactly_the_limit_loads(tmp_path: Path) -> None:
    pad = MAX_INVENTORY_BYTES - len(EMBEDDED.encode())
    text = EMBEDDED + ("#" + "x" * 78 + "\n") * (pad // 80) + "#" * (pad % 80)
    path = write(tmp_path, text)
    assert path.stat().st_size == MAX_INVENTORY_BYTES
    assert load_inventory(path).lab == "embedded"


@pytest.mark.parametrize("text", [
    "[" * 50_000 + "]" * 50_000,  # PyYAML alone: RecursionError
    "{a: " * 5_000 + "1" + "}" * 5_000,
    "".join(f"{' ' * i}k{i}:\n" for i in range(200)) + " " * 200 + "v\n",
    EMBEDDED.replace('extra: "3"', "extra: " + "[" * 100 + "]" * 100),
])
def test_deep_nesting_is_refused(tmp_path: Path, text: str) -> None:
    err = load_error(write(tmp_path, text))
    assert f"at most {MAX_DEPTH} levels of nesting" in err.expected


def test_nesting_within_the_limit_is_only_a_type_error() -> None:
    text = EMBEDDED.replace('extra: "3"', "extra: " + "[" * 20 + "]" * 20)
    err = error_of(text)
    assert err.key == "all.children.guests.hosts.vm1.domain.extra" and err.expected == "str or int"


BILLION_LAUGHS = "lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 10))


@pytest.mark.parametrize("text", [
    BILLION_LAUGHS,
    BILLION_LAUGHS + EMBEDDED,
    EMBEDDED.replace("bridge: xenbr0\n", "bridge: &br xenbr0\n").replace(
        "initiator_interface", "xx"),  # an anchor alone
    EMBEDDED.replace("ansible_host: 198.18.0.12}", "ansible_host: *ip}").replace(
        "ansible_host: 198.18.0.11}", "ansible_host: &ip 198.18.0.11}"),
])
def test_anchors_and_aliases_are_refused(tmp_path: Path, text: str) -> None:
    err = load_error(write(tmp_path, text))
    assert "no anchors or aliases" in err.expected and "line" in err.expected


@pytest.mark.parametrize(("text", "found"), [
    ("1: x\n", "int"),
    ("all:\n  null: x\n", "nothing"),
    ("all:\n  true: x\n", "bool"),
    ("? [a, b]\n: x\n", "list"),
    (EMBEDDED.replace("xen_resource_2:", "12:"), "int"),
    (EMBEDDED.replace("xen_resource_2:", "2024-01-01:"), "date"),
])
def test_mapping_keys_must_be_strings(tmp_path: Path, text: str, found: str) -> None:
    err = load_error(write(tmp_path, text))
    assert f"a mapping key that is a string, found {found} (quote it)" in err.expected


def test_duplicate_keys_are_refused_with_both_lines(tmp_path: Path) -> None:
    text = EMBEDDED.replace("        xen_resource_2: {ansible_host: 198.18.0.12}\n",
                            "        xen_resource_1: {ansible_host: 198.18.0.12}\n")
    first = text.splitlines().index("        xen_resource_1: {ansible_host: 198.18.0.11}") + 1
    err = load_error(write(tmp_path, text))
    assert f"each key once, found 'xen_resource_1' again (first at line {first}) " \
           f"at line {first + 1}" in err.expected
    err = load_error(write(tmp_path, EMBEDDED.replace("      kind: embedded\n",
                                                      "      kind: embedded\n      lab: other\n")))
    assert "found 'lab' again" in err.expected


@pytest.mark.parametrize(("value", "problem"), [
    ("!!python/object/apply:os.system ['touch /tmp/xenlab-pwned']", "could not determine a constructor"),
    ("!!python/name:os.system", "could not determine a constructor"),
    ("!vault '$ANSIBLE_VAULT;1.1;AES256'", "could not determine a constructor"),
    ("!!bool maybe", "a value that can be read as !!bool"),
    ("!!int abc", "a value that can be read as !!int"),
    ("!!timestamp soon", "a value that can be read as !!timestamp"),
    ("2001-13-45", "a value that can be read as !!timestamp"),
    ("0b_", "a value that can be read as !!int"),
])
def test_yaml_tags_and_unreadable_scalars_are_refused(tmp_path: Path, value: str,
                                                      problem: str) -> None:
    err = load_error(write(tmp_path, EMBEDDED.replace("filesystem: ext4", f"filesystem: {value}")))
    assert err.expected.startswith("valid YAML (") and problem in err.expected
    assert not Path("/tmp/xenlab-pwned").exists()


def test_several_documents_are_refused(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, EMBEDDED + "---\n" + EMBEDDED))
    assert "another document" in err.expected


def test_oversized_numbers_are_a_size_error() -> None:
    err = error_of(mutate(lambda d: d["all"]["vars"]["xenlab"]["lvm"].update(size="9" * 400)))
    assert err.key == "all.vars.xenlab.lvm.size"


# --- names: the lab name follows xenlab.names; host names are safe path components ---

@pytest.mark.parametrize("name", ["a", "lab-2", "x" * 16, "0"])
def test_good_lab_names_load(name: str) -> None:
    assert parse_inventory(mutate(lambda d: d["all"]["vars"]["xenlab"].update(lab=name))).lab == name


@pytest.mark.parametrize("name", ["a--b", "-a", "a-", "Lab", "x" * 17, "", "a_b", "a/b", "a.b",
                                  "..", "a b", 7, None, ["a"]])
def test_bad_lab_names_are_refused_by_the_one_rule(name: object) -> None:
    assert not is_lab_name(name)
    err = error_of(mutate(lambda d: d["all"]["vars"]["xenlab"].update(lab=name)))
    assert str(err).startswith("lab.yml: all.vars.xenlab.lab: expected a lab name: ")
    assert LAB_NAME_RULE in err.expected


def rename_host(new: object) -> str:
    def change(d: dict) -> None:
        hosts = d["all"]["children"]["resources"]["hosts"]
        hosts[new] = hosts.pop("xen_resource_2")
    return mutate(change)


@pytest.mark.parametrize("name", ["r2", "xen.resource-2", "R_2", "x" * 32, "1"])
def test_good_host_names_load(name: str) -> None:
    names = [h.name for h in parse_inventory(rename_host(name)).resources]
    assert sorted(names) == sorted(["xen_resource_1", name])


@pytest.mark.parametrize("name", ["a/b", "..", ".", ".hidden", "-x", "_x", "x" * 33, "a b",
                                  "", "a\nb", "a:b", "~root", "x;reboot", "a$(id)"])
def test_bad_host_names_are_refused(name: str) -> None:
    err = error_of(rename_host(name))
    assert err.key == "all.children.resources.hosts" + (f".{name}" if name else "")
    assert err.found == name
    assert "a host name of 1-32 letters, digits, '_', '.' and '-'" in err.expected


def test_a_built_lab_runs_only_the_toolstacks_it_can() -> None:
    """An embedded lab always runs QEMU, the embedded Xen lab xl or libvirt: an inventory
    that says otherwise is refused rather than silently run on something else."""
    with pytest.raises(InventoryError, match=r"toolstack: expected one of \['qemu'\] for a "
                                             r"embedded lab, found 'xl'"):
        parse_inventory(EMBEDDED.replace("toolstack: qemu", "toolstack: xl"))
    xen = (REPO / "inventories/embedded-xen.yml").read_text()
    with pytest.raises(InventoryError, match=r"\['xl', 'libvirt'\] for a embedded-xen lab"):
        parse_inventory(xen.replace("toolstack: xl", "toolstack: xm"))


# --- several guests: each its own LV, config file, MACs; every clash named ---------------

def key_error(path: Path) -> InventoryError:
    """The InventoryError of loading `path`, which names the file and the key."""
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert str(info.value).startswith(f"{path}: all."), str(info.value)
    return info.value


def three_guests(data: dict) -> None:  # type: ignore[type-arg]
    data["all"]["vars"]["xenlab"]["image_size"] = "16g"
    guests = data["all"]["children"]["guests"]["hosts"]
    for n in (2, 3):
        spec = yaml.safe_load(yaml.safe_dump(guests["vm1"]))
        spec["ansible_host"] = f"198.18.0.2{n}"
        domain = spec["domain"]
        domain["config"] = f"/etc/xen/vm/vm{n}"
        domain["vif"] = [f"mac=aa:cc:00:00:00:0{n}, bridge=xenbr0"]
        domain["disk"] = [f"phy:/dev/vg_xen/lv_vm{n},vda,w"]
        guests[f"vm{n}"] = spec


def test_several_guests_each_with_its_own_lv_and_config() -> None:
    inv = parse_inventory(mutate(three_guests), "three.yml")
    assert [(g.name, g.lv, g.domain.config_path, g.domain.vifs[0].mac, str(g.host.address))
            for g in inv.guests] == [
        ("vm1", "lv_vm1", "/etc/xen/vm/vm1", "aa:cc:00:00:00:01", "198.18.0.21"),
        ("vm2", "lv_vm2", "/etc/xen/vm/vm2", "aa:cc:00:00:00:02", "198.18.0.22"),
        ("vm3", "lv_vm3", "/etc/xen/vm/vm3", "aa:cc:00:00:00:03", "198.18.0.23")]
    assert inv.domain.name == "vm1" and inv.guest.name == "vm1"  # the article's guest first
    one = parse_inventory(EMBEDDED, "one.yml")
    assert [(g.name, g.lv) for g in one.guests] == [("vm1", "lv_vm1")]


def _clash(key: str, value: object):  # type: ignore[no-untyped-def]
    def change(data: dict) -> None:  # type: ignore[type-arg]
        three_guests(data)
        domain = data["all"]["children"]["guests"]["hosts"]["vm3"]["domain"]
        if key == "image_size":
            data["all"]["vars"]["xenlab"]["image_size"] = value
        else:
            domain[key] = value
    return change


@pytest.mark.parametrize(("key", "value", "where", "words"), [
    ("name", "vm2", "vm3.domain.name", "a domain name of its own (also vm2's)"),
    ("config", "/etc/xen/vm/vm1", "vm3.domain.config", "a config file of its own (also vm1's)"),
    ("vif", ["mac=AA:CC:00:00:00:02, bridge=xenbr0"], "vm3.domain.vif",
     "a MAC of its own (also vm2's)"),
    ("disk", ["phy:/dev/vg_xen/lv_vm1,vda,w"], "vm3.domain.disk[0]", "an LV of its own"),
    ("disk", ["phy:/dev/sdb1,vda,w"], "vm3.domain.disk[0]", "a disk on an LV of vg_xen"),
    ("disk", ["phy:/dev/vg_xen/../sda,vda,w"], "vm3.domain.disk[0]", "a disk on an LV"),
    ("disk", ["phy:/dev/vg_other/lv_vm3,vda,w"], "vm3.domain.disk[0]", "a disk on an LV"),
    ("image_size", "10g", "all.vars.xenlab.image_size", "room for 3 LVs"),
], ids=["name", "config", "mac", "lv", "not-an-lv", "traversal", "other-vg", "room"])
def test_each_clash_between_guests_is_named(tmp_path: Path, key: str, value: object,
                                            where: str, words: str) -> None:
    err = key_error(write(tmp_path, mutate(_clash(key, value))))
    assert where in str(err) and words in str(err), str(err)


def test_the_first_guest_must_be_on_the_articles_lv(tmp_path: Path) -> None:
    def change(data: dict) -> None:  # type: ignore[type-arg]
        three_guests(data)
        data["all"]["vars"]["xenlab"]["lvm"]["lv"] = "lv_vm2"
    err = key_error(write(tmp_path, mutate(change)))
    assert "vm1.domain.disk[0]" in str(err) and "/dev/vg_xen/lv_vm2" in str(err), str(err)


def test_a_huge_guests_group_is_refused_by_count(tmp_path: Path) -> None:
    def change(data: dict) -> None:  # type: ignore[type-arg]
        guests = data["all"]["children"]["guests"]["hosts"]
        for n in range(2, 70):
            guests[f"g{n}"] = {"ansible_host": f"198.18.0.{100 + n}",
                               "domain": copy.deepcopy(guests["vm1"]["domain"])}
    err = key_error(write(tmp_path, mutate(change)))
    assert str(err).endswith("all.children.guests.hosts: expected at most 64 guests, "
                             "found 69"), str(err)


def test_a_lab_refuses_more_guests_than_it_runs(tmp_path: Path) -> None:
    """A lab kind that runs one guest (here the fake) refuses an inventory of three: one
    clear refusal before anything is built, naming the file and the guests."""
    from xenlab.errors import LabError
    from xenlab.lab.select import make_lab
    from xenlab.progress import Progress

    text = mutate(three_guests).replace("kind: embedded", "kind: fake").replace(
        "toolstack: qemu", "toolstack: fake")
    inv = parse_inventory(text, str(tmp_path / "three.yml"))
    with pytest.raises(LabError) as info:
        make_lab(inv, progress=Progress(), root=tmp_path / "labs", cache=tmp_path / "cache")
    assert "lists 3 guests (vm1, vm2, vm3); a fake lab runs at most 1" in str(info.value)
    assert str(tmp_path / "three.yml") in str(info.value)
    assert not (tmp_path / "labs").exists()  # nothing was built
