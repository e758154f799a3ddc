"""Xen domain configuration files (xm and xl share this Python-like syntax): parse and render."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from xenlab.errors import ParseError
from xenlab.inventory.model import DomainSpec


@dataclass(frozen=True)
class DomainConfig:
    values: dict[str, object]

    def get_str(self, key: str) -> str:
        value = self.values.get(key)
        return "" if value is None else str(value)

    def get_list(self, key: str) -> list[str]:
        value = self.values.get(key, [])
        return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]

    @property
    def name(self) -> str:
        return self.get_str("name")

    def vif_fields(self) -> list[dict[str, str]]:
        return [
            {k.strip(): v.strip() for k, v in (p.split("=", 1) for p in vif.split(",") if "=" in p)}
            for vif in self.get_list("vif")
        ]

    def disk_fields(self) -> list[tuple[str, str, str]]:
        """[(source, target, mode)], e.g. ('phy:/dev/vg_xen/lv_vm1', 'hda1', 'w')."""
        out = []
        for disk in self.get_list("disk"):
            parts = [p.strip() for p in disk.split(",")]
            if len(parts) != 3:
                raise ParseError("domain config disk", f"expected 'phy:DEV,TARGET,MODE', found {disk!r}")
            out.append((parts[0], parts[1], parts[2]))
        return out


def disk_device(source: str) -> str:
    """A config disk's device or file: 'phy:xen/lv' -> '/dev/xen/lv' (Xen takes a relative
    phy: path from /dev), 'file:/img' -> '/img'."""
    kind, sep, device = source.partition(":")
    if not sep:
        return source
    if kind == "phy" and not device.startswith("/"):
        return f"/dev/{device}"
    return device


def parse_domain_config(text: str, source: str = "domain config") -> DomainConfig:
    """Parse `key = value` lines (values are Python literals); comments allowed."""
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as exc:
        raise ParseError(source, f"line {exc.lineno}: {exc.msg}", text) from None
    values: dict[str, object] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise ParseError(source, f"line {node.lineno}: expected 'key = value'", text)
        key = node.targets[0].id
        if isinstance(node.value, ast.Name):  # the article's `hostname = name`
            if node.value.id not in values:
                raise ParseError(source, f"line {node.lineno}: {node.value.id} is not defined yet")
            values[key] = values[node.value.id]
            continue
        try:
            values[key] = ast.literal_eval(node.value)
        except ValueError:
            raise ParseError(source, f"line {node.lineno}: value of {key} is not a literal") from None
    return DomainConfig(values)


def render_domain_config(spec: DomainSpec, extra: dict[str, str] | None = None,
                         toolstack: str = "xm") -> str:
    """The article's file layout, filled in from the inventory. xl's parser takes values
    only, so its file leaves out the article's `hostname = name` (xend's Python)."""
    vifs = ", ".join(repr(f"mac={v.mac}, bridge={v.bridge}") for v in spec.vifs)
    disks = ", ".join(repr(d) for d in spec.disks)
    lines = [
        "# -*- mode: python; -*-",
        "# written by xenlab from the lab inventory",
        "# configuration name:",
        f'name = "{spec.name}"',
        *([f'type = "{spec.guest_type}"'] if spec.guest_type else []),
        "# usable ram:",
        f"memory = {spec.memory}",
        *([f"vcpus = {spec.vcpus}"] if spec.vcpus != 1 else []),
        "# kernel and initrd:",
        f'kernel = "{spec.kernel}"',
        f'ramdisk = "{spec.ramdisk}"',
        "# boot device:",
        f'root = "{spec.root}"',
        "# boot to run level:",
        f'extra = "{spec.extra}"',
        "# network interface:",
        f"vif = [ {vifs} ]",
        *(["hostname = name"] if toolstack != "xl" else []),
        "# storage devices:",
        f"disk = [ {disks} ]",
    ]
    for key, option in spec.options:
        lines.append(f"{key} = {option!r}" if isinstance(option, str) else f"{key} = {option}")
    for key, value in (extra or {}).items():
        lines.append(f"{key} = {value!r}")
    return "\n".join(lines) + "\n"


LIBVIRT_OS_TYPES = {"pvh": ("xenpvh", "xenpvh"), "pv": ("linux", None), "hvm": ("hvm", None)}


def render_libvirt_xml(config: DomainConfig, source: str = "domain config") -> str:
    """The libvirt domain XML (libxl driver) of an xl domain config. `virsh domxml-from-native
    xen-xl` drops `hap = 0` and turns `phy:` disks into QEMU-backed files; this keeps both."""
    import xml.etree.ElementTree as ET

    name = config.name
    if not name:
        raise ParseError(source, "no name")
    guest_type = config.get_str("type") or "pv"
    if guest_type not in LIBVIRT_OS_TYPES:
        raise ParseError(source, f"type {guest_type!r}: expected one of "
                                 f"{', '.join(LIBVIRT_OS_TYPES)}")
    try:
        memory_kib = int(config.get_str("memory") or 0) * 1024
        vcpus = int(config.get_str("vcpus") or 1)
    except ValueError:
        raise ParseError(source, "memory and vcpus must be whole numbers") from None
    if memory_kib <= 0:
        raise ParseError(source, "no memory")
    domain = ET.Element("domain", type="xen")
    ET.SubElement(domain, "name").text = name
    ET.SubElement(domain, "memory", unit="KiB").text = str(memory_kib)
    ET.SubElement(domain, "currentMemory", unit="KiB").text = str(memory_kib)
    ET.SubElement(domain, "vcpu", placement="static").text = str(vcpus)
    os_type, machine = LIBVIRT_OS_TYPES[guest_type]
    os_el = ET.SubElement(domain, "os")
    type_el = ET.SubElement(os_el, "type", arch="x86_64")
    if machine:
        type_el.set("machine", machine)
    type_el.text = os_type
    for key, tag in (("kernel", "kernel"), ("ramdisk", "initrd")):
        if config.get_str(key):
            ET.SubElement(os_el, tag).text = config.get_str(key)
    cmdline = " ".join(p for p in (f"root={config.get_str('root')}" if config.get_str("root")
                                   else "", config.get_str("extra")) if p)
    if cmdline:
        ET.SubElement(os_el, "cmdline").text = cmdline
    if "hap" in config.values:
        features = ET.SubElement(domain, "features")
        ET.SubElement(features, "hap", state="on" if config.values["hap"] else "off")
    ET.SubElement(domain, "clock", offset="utc", adjustment="reset")
    for event, action in (("on_poweroff", "destroy"), ("on_reboot", "restart"),
                          ("on_crash", "restart")):
        ET.SubElement(domain, event).text = action
    devices = ET.SubElement(domain, "devices")
    for disk_source, target, mode in config.disk_fields():
        kind, _, device = disk_source.partition(":")
        if kind != "phy" or not device:
            raise ParseError(source, f"disk {disk_source!r}: only phy: devices are rendered")
        disk = ET.SubElement(devices, "disk", type="block", device="disk")
        ET.SubElement(disk, "driver", name="phy")
        ET.SubElement(disk, "source", dev=device)
        ET.SubElement(disk, "target", dev=target, bus="xen")
        if mode == "r":
            ET.SubElement(disk, "readonly")
    for vif in config.vif_fields():
        interface = ET.SubElement(devices, "interface", type="bridge")
        if vif.get("mac"):
            ET.SubElement(interface, "mac", address=vif["mac"])
        ET.SubElement(interface, "source", bridge=vif.get("bridge", "xenbr0"))
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="xen", port="0")
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode") + "\n"
