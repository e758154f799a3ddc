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
