"""Load an Ansible-shaped YAML inventory into a validated `Inventory`, before any I/O on a lab.

Every problem raises `InventoryError` naming the file, the dotted key and what was expected;
a hostile or broken file (binary, not UTF-8, huge, deeply nested, an alias bomb, duplicate
keys, unknown YAML tags, a directory or a FIFO) gets the same error and never a traceback.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node
from yaml.reader import ReaderError

from xenlab.errors import InventoryError
from xenlab.inventory.model import (
    AoeSpec,
    Connection,
    DomainSpec,
    HostSpec,
    Inventory,
    LabKind,
    Limits,
    LoadSpec,
    LvmSpec,
    Role,
    RunDefaults,
    Toolstack,
    Vif,
    disk_lv,
)
from xenlab.names import LAB_NAME_RULE, is_lab_name

EMBEDDED_RANGE = IPv4Network("198.18.0.0/15")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_HOST_NAME_RULE = ("a host name of 1-32 letters, digits, '_', '.' and '-', starting with a "
                   "letter or digit")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")

T = TypeVar("T")

# The shipped inventories are 1-3 KiB and at most 8 levels deep; these bounds are about a
# hundred times that. The size bound is what keeps a refusal quick: the pure-Python parser
# (the only one whose composer can be made to refuse aliases and depth) reads dense YAML at
# about 40 KB/s, plain mappings at about 200 KB/s, so 256 KiB is refused within seconds
# where 1 MiB of `[[...]]` took half a minute.
MAX_INVENTORY_BYTES = 256 << 10
MAX_DEPTH = 64


class _InventoryLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` made strict for inventories.

    Anchors and aliases are refused outright rather than bounded: an inventory has no need
    for them (each host is a few lines), and refusing them is the one rule that makes an
    alias bomb ("billion laughs") impossible, not just expensive. PyYAML builds aliased
    nodes by reference, so the danger is not the load itself but whatever walks, prints or
    dumps the result afterwards (an error message showing the value, for one); a bound on
    expansion would have to be enforced by each such walker.

    Nesting deeper than MAX_DEPTH is refused while composing (PyYAML composes recursively
    and would otherwise end in a RecursionError). Mapping keys must be strings and appear
    once: `safe_load` silently keeps the last of two equal keys, which hides a typo in a
    careful admin's file. A value a scalar constructor cannot build (`2001-13-45`,
    `!!bool maybe`, `!!int abc`) becomes a ConstructorError at its line instead of the
    ValueError, KeyError or AttributeError PyYAML lets through.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise ComposerError(None, None, "no anchors or aliases ('&name', '*name'): an "
                                "inventory spells every value out", event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"at most {MAX_DEPTH} levels of nesting",
                                event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            raise ConstructorError(None, None, f"a value that can be read as {tag}",
                                   node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # merge keys ('<<') first, as SafeLoader does
        first: dict[str, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise ConstructorError(None, None, f"a mapping key that is a string, found "
                                       f"{_kind(key)} (quote it)", key_node.start_mark)
            if key in first:
                raise ConstructorError(None, None, f"each key once, found {key!r} again "
                                       f"(first at line {first[key]})", key_node.start_mark)
            first[key] = line
        return super().construct_mapping(node, deep)


class _Reader:
    """Reads one mapping of the inventory, remembering the dotted path for error messages."""

    def __init__(self, path: str, data: object, key: str) -> None:
        self.file = path
        self.key = key
        if not isinstance(data, Mapping):
            raise InventoryError(path, key or "(top level)", "a mapping", _kind(data))
        self.data: Mapping[str, Any] = data
        self.seen: set[str] = set()

    def where(self, name: str) -> str:
        if not name:
            return self.key
        return f"{self.key}.{name}" if self.key else name

    def fail(self, name: str, expected: str, found: object = None) -> InventoryError:
        return InventoryError(self.file, self.where(name), expected, found)

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, kind: type[T], default: T | None = None, what: str = "") -> T:
        self.seen.add(name)
        # `kind` may be a tuple of types (callers silence mypy for that)
        what = what or " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        if name not in self.data:
            if default is None:
                raise self.fail(name, f"{what} (required key is missing)")
            return default
        value = self.data[name]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise self.fail(name, what, value)
        return value

    def sub(self, name: str, required: bool = True) -> _Reader:
        self.seen.add(name)
        if name not in self.data:
            if required:
                raise self.fail(name, "a mapping (required key is missing)")
            return _Reader(self.file, {}, self.where(name))
        return _Reader(self.file, self.data[name], self.where(name))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise self.fail(unknown[0], f"one of {sorted(self.seen)} (unknown key)")


def _kind(value: object) -> str:
    return type(value).__name__ if value is not None else "nothing"


def parse_size(text: object) -> int:
    """'5g' -> 5 GiB in bytes; plain integers are bytes. Raises ValueError."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(text)
    number, unit = match.groups()
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit.lower()]
    try:
        return int(float(number) * scale)
    except OverflowError:  # a number too long for a float: inf
        raise ValueError(text) from None


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory file: a regular file of at most MAX_INVENTORY_BYTES
    of UTF-8 text. Every failure, of the file or of its content, is one InventoryError."""
    return parse_inventory(_read_text(path), str(path))


def _read_text(path: str | Path) -> str:
    name = str(path)
    limit = f"at most {MAX_INVENTORY_BYTES >> 10} KiB ({MAX_INVENTORY_BYTES} bytes)"
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (fstat refuses it below)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise InventoryError(name, "", "a regular file", _file_kind(info.st_mode))
            if info.st_size > MAX_INVENTORY_BYTES:
                raise InventoryError(name, "", f"an inventory of {limit}",
                                     f"{info.st_size} bytes")
            data = _read_at_most(fd, MAX_INVENTORY_BYTES + 1)  # the file may have grown
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise InventoryError(name, "", "an existing inventory file (no such file)") from None
    except OSError as exc:
        raise InventoryError(name, "", f"a readable file ({exc.strerror or exc})") from None
    except ValueError as exc:  # a NUL in the path
        raise InventoryError(name, "", f"a usable file name ({exc})") from None
    if len(data) > MAX_INVENTORY_BYTES:
        raise InventoryError(name, "", f"an inventory of {limit}",
                             f"more than {MAX_INVENTORY_BYTES} bytes")
    if b"\0" in data:
        raise InventoryError(name, "", "a text file (YAML)",
                             f"a NUL byte at offset {data.index(0)}: binary data")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InventoryError(name, "", "UTF-8 text",
                             f"byte 0x{data[exc.start]:02x} at offset {exc.start}") from None


def _read_at_most(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        chunk = os.read(fd, min(size, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def _load_yaml(text: str, path: str) -> object:
    """The YAML document of `text` (see `_InventoryLoader`), or an InventoryError naming the
    line and the problem."""
    try:
        loader = _InventoryLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except ReaderError as exc:
        raise InventoryError(path, "", "printable text (YAML)",
                             f"character U+{exc.character:04X} at position {exc.position}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise InventoryError(path, "", f"valid YAML ({problem}{where})") from None
    except RecursionError:  # MAX_DEPTH stops this first; kept as a last line of defence
        raise InventoryError(path, "", f"at most {MAX_DEPTH} levels of nesting") from None


def parse_inventory(text: str, path: str = "<inventory>") -> Inventory:
    data = _load_yaml(text, path)
    if data is None:
        raise InventoryError(path, "", "an inventory (a mapping with key 'all')",
                             "an empty file or only comments")
    top = _Reader(path, data, "")
    root = top.sub("all")
    top.done()
    vars_r = root.sub("vars")
    lab = vars_r.sub("xenlab")
    vars_r.done()
    children = root.sub("children")
    root.done()

    kind = _enum(lab, "kind", LabKind)
    toolstack = _toolstack(lab)
    runs = BUILT_TOOLSTACKS.get(kind)
    if runs is not None and toolstack not in runs:  # what a built lab runs is what it says
        raise lab.fail("toolstack", f"one of {list(runs)} for a {kind.value} lab", str(toolstack))
    lab_name = lab.get("lab", str, what=f"a lab name: {LAB_NAME_RULE}")
    if not is_lab_name(lab_name):  # the one rule of xenlab.names
        raise lab.fail("lab", f"a lab name: {LAB_NAME_RULE}", lab_name)
    network = _network(lab, "network")
    if kind.built_here and not network.subnet_of(EMBEDDED_RANGE):
        raise lab.fail("network", f"a subnet of {EMBEDDED_RANGE} for the embedded lab", str(network))
    bridge = _ifname(lab, "bridge", "xenbr0")
    port = _port(lab, "relocation_port", 8002)
    filesystem = lab.get("filesystem", str, "ext4")
    distribution = lab.get("distribution", str, "unspecified")
    observer = lab.get("observer", str, what="the name of the host that sends the probes")
    known_hosts = lab.get("known_hosts", str, "") or None

    aoe_r = lab.sub("aoe")
    aoe = AoeSpec(
        shelf=_int(aoe_r, "shelf", 0, 65534),
        slot=_int(aoe_r, "slot", 0, 254),
        interface=_ifname(aoe_r, "interface", None),
        device=aoe_r.get("device", str) if (kind is LabKind.REAL or aoe_r.has("device")) else None,
        initiator_interface=_ifname(aoe_r, "initiator_interface", bridge),
        require_mac_allowlist=aoe_r.get("require_mac_allowlist", bool, False,
                                        what="true or false"),
    )
    aoe_r.done()
    lvm_r = lab.sub("lvm")
    lvm = LvmSpec(
        vg=_name(lvm_r, "vg"), lv=_name(lvm_r, "lv"), size=_size(lvm_r, "size")
    )
    lvm_r.done()
    image_size = _size(lab, "image_size", lvm.size + (1 << 30)) if kind.built_here else 0
    if kind.built_here and image_size < lvm.size + (8 << 20):
        raise lab.fail("image_size", f"at least the LV size plus 8 MiB ({lvm.size + (8 << 20)} bytes)",
                       image_size)
    lim_r = lab.sub("limits", required=False)
    limits = Limits(
        downtime_ms=_number(lim_r, "downtime_ms", Limits.downtime_ms),
        loss_pct=_number(lim_r, "loss_pct", Limits.loss_pct),
        migration_timeout_s=_number(lim_r, "migration_timeout_s", Limits.migration_timeout_s),
    )
    lim_r.done()
    load_r = lab.sub("load", required=False)
    load = LoadSpec(
        size_mib=_size(load_r, "size", LoadSpec.size_mib << 20) >> 20,
        rate_mib_s=_number(load_r, "rate_mib_s", LoadSpec.rate_mib_s),
        idle_rate_mib_s=_number(load_r, "idle_rate_mib_s", LoadSpec.idle_rate_mib_s),
    )
    load_r.done()
    image = lab.get("image", str, "", what="the path of the guest image tarball") or None
    libvirt_driver = _choice(lab, "libvirt_driver", ("xen", "qemu")) or "xen"
    security_r = lab.get("security", dict, {}, what="a mapping of finding names to warn or fail")
    for finding, severity in security_r.items():
        if finding not in SECURITY_FINDINGS or severity not in ("warn", "fail"):
            raise lab.fail(f"security.{finding}", f"one of {list(SECURITY_FINDINGS)} mapped to "
                           "warn or fail", severity)
    run_r = lab.sub("run", required=False)
    scenarios = run_r.get("scenarios", list, list(RunDefaults.scenarios),
                          what="a list of scenarios: idle, memory-dirty")
    if not scenarios or any(s not in ("idle", "memory-dirty") for s in scenarios):
        raise run_r.fail("scenarios", "a non-empty list of: idle, memory-dirty", scenarios)
    run = RunDefaults(
        interval_ms=_number(run_r, "interval_ms", RunDefaults.interval_ms),
        roundtrips=_int(run_r, "roundtrips", 1, 1000, RunDefaults.roundtrips),
        scenarios=tuple(scenarios),
        tcp_interval_ms=_number(run_r, "tcp_interval_ms", RunDefaults.tcp_interval_ms),
        evacuation=_evacuation_policy(run_r),
        storm=run_r.get("storm", bool, True, what="true or false"),
    )
    run_r.done()
    lab.done()

    hosts: list[HostSpec] = []
    domains: list[DomainSpec] = []
    for role in Role:
        group_r = children.sub(role.value)
        group = group_r.sub("hosts")
        group_r.done()
        if not group.data:
            raise group.fail("", f"at least one host in group {role.value}")
        for host_name in group.data:
            # a host name becomes a namespace suffix, a file name and an SSH alias
            if not isinstance(host_name, str) or not _NAME.match(host_name):
                raise group.fail(str(host_name), _HOST_NAME_RULE, host_name)
            hv = group.sub(host_name)
            hosts.append(_host(hv, host_name, role, kind, known_hosts))
            if role is Role.GUEST:
                domains.append(_domain(hv.sub("domain"), host_name))
            hv.done()
        group.done()
    children.done()

    where = "all.children"
    if len([h for h in hosts if h.role is Role.STORAGE]) != 1:
        raise InventoryError(path, f"{where}.storage.hosts", "exactly one storage host")
    if len([h for h in hosts if h.role is Role.RESOURCE]) < 2:
        raise InventoryError(path, f"{where}.resources.hosts", "at least two resource hosts")
    guest_hosts = [h for h in hosts if h.role is Role.GUEST]
    if len(guest_hosts) > MAX_GUESTS:
        raise InventoryError(path, f"{where}.guests.hosts", f"at most {MAX_GUESTS} guests",
                             len(guest_hosts))
    names = [h.name for h in hosts]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InventoryError(path, where, "each host in one group only", sorted(dup)[0])
    seen: dict[IPv4Address, str] = {}
    for h in hosts:
        if h.address in seen:
            raise InventoryError(
                path, f"{where}.{h.role.value}.hosts.{h.name}.ansible_host",
                f"an address of its own (also used by {seen[h.address]})", str(h.address))
        seen[h.address] = h.name
        if kind.built_here and h.address not in network:
            raise InventoryError(
                path, f"{where}.{h.role.value}.hosts.{h.name}.ansible_host",
                f"an address in the lab network {network}", str(h.address))
    allowed_observers = [h.name for h in hosts if h.role is not Role.GUEST]
    if kind is LabKind.REAL:  # the embedded lab's network has no route from this machine
        allowed_observers.append("controller")
    if observer not in allowed_observers:
        raise InventoryError(path, "all.vars.xenlab.observer", f"one of {allowed_observers}", observer)
    for host, domain in zip(guest_hosts, domains, strict=True):
        if kind.built_here and not domain.config_path.startswith("/etc/"):
            raise InventoryError(path, f"{where}.guests.hosts.{host.name}.domain.config",
                                 "a path under /etc/ (each embedded host has its own /etc)",
                                 domain.config_path)
    if len(domains) > 1:
        _check_guests(path, guest_hosts, domains, lvm, image_size if kind.built_here else None)
    return Inventory(
        path=path, lab=lab_name, kind=kind, toolstack=toolstack, distribution=distribution,
        network=network, bridge=bridge, relocation_port=port, filesystem=filesystem,
        observer=observer, aoe=aoe, lvm=lvm, image_size=image_size, limits=limits, load=load,
        hosts=tuple(hosts), domains=tuple(domains), run=run,
        image=os.path.expanduser(image) if image else None, libvirt_driver=libvirt_driver,
        security=tuple(sorted(security_r.items())),
    )


def _host(hv: _Reader, name: str, role: Role, kind: LabKind,
          known_hosts: str | None = None) -> HostSpec:
    address = _address(hv, "ansible_host")
    # the embedded Xen lab: the storage host a namespace, the dom0s machines reached over SSH
    in_namespace = kind in (LabKind.EMBEDDED, LabKind.FAKE) or (kind is LabKind.EMBEDDED_XEN
                                                and role is Role.STORAGE)
    default_conn = Connection.EMBEDDED if in_namespace else Connection.SSH
    conn = _enum(hv, "ansible_connection", Connection, default_conn)
    if in_namespace and conn is not Connection.EMBEDDED and role is not Role.GUEST:
        raise hv.fail("ansible_connection", f"'embedded' (or nothing) for this host of a "
                      f"{kind.value} lab", conn.value)
    if kind is LabKind.EMBEDDED_XEN and not in_namespace and conn is not Connection.SSH:
        raise hv.fail("ansible_connection", "ssh (or nothing): the embedded Xen lab's dom0s "
                      "and guest are reached over SSH", conn.value)
    if kind is LabKind.REAL and conn is Connection.EMBEDDED:
        raise hv.fail("ansible_connection", "ssh, paramiko or local on a real lab", conn.value)
    power = {which: hv.get(f"xenlab_power_{which}", str, "") or None for which in ("off", "on")}
    if any(power.values()):
        if kind is not LabKind.REAL or role is not Role.RESOURCE:
            raise hv.fail("xenlab_power_off", "no power command: only a real lab's resource "
                          "hosts have them (a lab built here powers its hosts itself)",
                          power["off"] or power["on"])
        if not all(power.values()):
            missing = "off" if not power["off"] else "on"
            raise hv.fail(f"xenlab_power_{missing}", "a command, as xenlab_power_"
                          f"{'on' if missing == 'off' else 'off'} is given", "nothing")
        for which, command in power.items():
            if command is not None and (len(command) > 1024 or not command.isprintable()):
                raise hv.fail(f"xenlab_power_{which}", "a one-line command of at most 1024 "
                              "printable characters", command[:60])
    return HostSpec(
        name=name, role=role, address=address, connection=conn,
        power_off=power["off"], power_on=power["on"],
        user=hv.get("ansible_user", str, "root"),
        port=_port(hv, "ansible_port", 22),
        key_file=_expand(hv.get("ansible_ssh_private_key_file", str, "") or None),
        ssh_config=_expand(hv.get("xenlab_ssh_config", str, "") or None),
        known_hosts=_expand(hv.get("xenlab_known_hosts", str, "") or known_hosts),
    )


def _expand(path: str | None) -> str | None:
    return os.path.expanduser(path) if path else None


MAX_GUESTS = 64  # guests per lab: far more than two resource hosts hold


def _check_guests(path: str, hosts: list[HostSpec], domains: list[DomainSpec], lvm: LvmSpec,
                  image_size: int | None) -> None:
    """Several guests: each its own domain name, config file, MACs and LV of the lab's VG
    (the first guest's is `lvm.lv`), and room for every LV in a built lab's image."""
    seen: dict[tuple[str, str], str] = {}
    for i, (host, domain) in enumerate(zip(hosts, domains, strict=True)):
        where = f"all.children.guests.hosts.{host.name}.domain"
        lv = disk_lv(domain, lvm.vg)
        if lv is None:
            raise InventoryError(path, f"{where}.disk[0]", f"with several guests, a disk on "
                                 f"an LV of {lvm.vg} of its own ('phy:/dev/{lvm.vg}/LV,...')",
                                 domain.disks[0] if domain.disks else "")
        if i == 0 and lv != lvm.lv:
            raise InventoryError(path, f"{where}.disk[0]", f"the first guest on lvm.lv "
                                 f"({lvm.path})", domain.disks[0])
        keys = [("domain name", domain.name), ("config file", domain.config_path),
                ("LV", lv), *(("MAC", vif.mac) for vif in domain.vifs)]
        for what, value in keys:
            other = seen.get((what, value))
            if other is not None:
                field = {"domain name": "name", "config file": "config", "LV": "disk[0]",
                         "MAC": "vif"}[what]
                article = "an" if what == "LV" else "a"
                raise InventoryError(path, f"{where}.{field}",
                                     f"{article} {what} of its own (also {other}'s)", value)
            seen[(what, value)] = host.name
    if image_size is not None and image_size < len(domains) * lvm.size + (8 << 20):
        need = len(domains) * lvm.size + (8 << 20)
        raise InventoryError(path, "all.vars.xenlab.image_size", f"room for {len(domains)} "
                             f"LVs of {lvm.size} bytes plus 8 MiB ({need} bytes)", image_size)


def _domain(dr: _Reader, host_name: str) -> DomainSpec:
    vifs = []
    for i, text in enumerate(_str_list(dr, "vif")):
        fields = dict(p.strip().split("=", 1) for p in text.split(",") if "=" in p)
        mac, bridge = fields.get("mac", ""), fields.get("bridge", "")
        if not _MAC.match(mac) or not _IFNAME.match(bridge):
            raise dr.fail(f"vif[{i}]", "'mac=XX:XX:XX:XX:XX:XX, bridge=NAME' (NAME an "
                          "interface name of 1-15 letters, digits and '_.-')", text)
        vifs.append(Vif(mac=mac.lower(), bridge=bridge))
    disks = _str_list(dr, "disk")
    for i, text in enumerate(disks):
        if len(text.split(",")) != 3 or ":" not in text.split(",")[0]:
            raise dr.fail(f"disk[{i}]",
                          "'phy:DEVICE,TARGET,MODE' (e.g. 'phy:/dev/vg_xen/lv_vm1,hda1,w')", text)
    spec = DomainSpec(
        name=_domain_name(dr, host_name),
        config_path=dr.get("config", str, what="the path of the domain config on the resource hosts"),
        memory=_int(dr, "memory", 16, 1 << 20),
        kernel=dr.get("kernel", str),
        ramdisk=dr.get("ramdisk", str),
        root=dr.get("root", str),
        extra=str(dr.get("extra", (str, int), "")),  # type: ignore[arg-type]
        vifs=tuple(vifs), disks=tuple(disks),
        guest_type=_choice(dr, "type", ("pv", "pvh", "hvm")),
        vcpus=_int(dr, "vcpus", 1, 128, 1),
        options=_options(dr, "options"),
    )
    dr.done()
    return spec


# the security findings a certification reports (suites/test_security.py, test_relocation)
SECURITY_FINDINGS = ("relocation-open", "aoe-interface", "aoe-no-mac-allowlist",
                     "guest-shadow-copied", "ssh-password-auth")

_OPTION = re.compile(r"^[a-z][a-z0-9_]*$")


def _options(r: _Reader, name: str) -> tuple[tuple[str, int | str], ...]:
    """Further domain config keys (`options: {hap: 0}`), written into the config as given."""
    value = r.get(name, dict, {}, what="a mapping of config keys to numbers or strings")
    out: list[tuple[str, int | str]] = []
    for key, item in value.items():
        if not isinstance(key, str) or not _OPTION.match(key):
            raise r.fail(f"{name}.{key}", "a config key of lower-case letters, digits and '_'",
                         key)
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise r.fail(f"{name}.{key}", "a number or a string", item)
        out.append((key, item))
    return tuple(out)


def _choice(r: _Reader, name: str, choices: tuple[str, ...]) -> str:
    value = r.get(name, str, "", what=f"one of {list(choices)}")
    if value and value not in choices:
        raise r.fail(name, f"one of {list(choices)}", value)
    return value


def _str_list(r: _Reader, name: str) -> tuple[str, ...]:
    value = r.get(name, list, what="a list of strings")
    if not value or not all(isinstance(v, str) for v in value):
        raise r.fail(name, "a non-empty list of strings", value)
    return tuple(value)


# the toolstacks each kind of lab built here can run (a real lab runs any registered one)
BUILT_TOOLSTACKS = {LabKind.EMBEDDED: ("qemu",), LabKind.EMBEDDED_XEN: ("xl", "libvirt"),
                    LabKind.FAKE: ("fake",)}


def _evacuation_policy(r: _Reader) -> str:
    value = r.get("evacuation", (str, int), "sequential",  # type: ignore[arg-type]
                  what="sequential or a number of guests at a time")
    text = str(value)
    if text != "sequential" and not (text.isdigit() and 1 <= int(text) <= 64):
        raise r.fail("evacuation", "sequential or a number of guests at a time, 1 to 64", text)
    return text


def _toolstack(r: _Reader) -> str:
    """One of the toolstacks xenlab has a driver for (xenlab/hypervisor/registry.py); the
    known ones come back as Toolstack members."""
    from xenlab.hypervisor.registry import DRIVERS

    choices = sorted(DRIVERS)
    value = r.get("toolstack", str, what=f"one of {choices}")
    if value not in DRIVERS:
        raise r.fail("toolstack", f"one of {choices}", value)
    return Toolstack(value) if value in {t.value for t in Toolstack} else value


def _enum(r: _Reader, name: str, kind: type[Any], default: Any = None) -> Any:
    choices = [m.value for m in kind]
    value = r.get(name, str, default.value if default is not None else None, what=f"one of {choices}")
    try:
        return kind(value)
    except ValueError:
        raise r.fail(name, f"one of {choices}", value) from None


def _int(r: _Reader, name: str, low: int, high: int, default: int | None = None) -> int:
    value = r.get(name, int, default, what=f"an integer from {low} to {high}")
    if not low <= value <= high:
        raise r.fail(name, f"an integer from {low} to {high}", value)
    return value


def _number(r: _Reader, name: str, default: float) -> float:
    value = r.get(name, (int, float), default, what="a positive number")  # type: ignore[arg-type]
    if isinstance(value, bool) or value <= 0:
        raise r.fail(name, "a positive number", value)
    return float(value)


def _port(r: _Reader, name: str, default: int) -> int:
    return _int(r, name, 1, 65535, default)


def _size(r: _Reader, name: str, default: int | None = None) -> int:
    r.seen.add(name)
    if name not in r.data:
        if default is None:
            raise r.fail(name, "a size such as 5g or 512m (required key is missing)")
        return default
    try:
        size = parse_size(r.data[name])
    except ValueError:
        raise r.fail(name, "a size such as 5g or 512m", r.data[name]) from None
    if size <= 0:
        raise r.fail(name, "a positive size", r.data[name])
    return size


def _domain_name(dr: _Reader, default: str) -> str:
    """The guest's name: also a file name (its QMP socket, console log) on the hosts."""
    value = dr.get("name", str, default)
    if not _NAME.match(value):
        raise dr.fail("name", "a domain name: 1-32 letters, digits and '_.-', starting with a "
                      "letter or digit", value)
    return value


def _name(r: _Reader, name: str) -> str:
    value = r.get(name, str)
    if value in (".", "..") or not re.match(r"^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$", value):
        raise r.fail(name, "an LVM name (letters, digits, '+_.-')", value)
    return value


def _ifname(r: _Reader, name: str, default: str | None) -> str:
    value = r.get(name, str, default, what="an interface name")
    if not _IFNAME.match(value):
        raise r.fail(name, "an interface name of at most 15 characters", value)
    return value


def _address(r: _Reader, name: str) -> IPv4Address:
    value = r.get(name, str, what="an IPv4 address")
    try:
        address = ip_address(value)
    except ValueError:
        raise r.fail(name, "an IPv4 address", value) from None
    if not isinstance(address, IPv4Address):
        raise r.fail(name, "an IPv4 address", value)
    return address


def _network(r: _Reader, name: str) -> IPv4Network:
    value = r.get(name, str, what="an IPv4 network such as 198.18.0.0/24")
    try:
        net = ip_network(value)
    except ValueError:
        raise r.fail(name, "an IPv4 network such as 198.18.0.0/24", value) from None
    if not isinstance(net, IPv4Network):
        raise r.fail(name, "an IPv4 network", value)
    return net
