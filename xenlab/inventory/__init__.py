"""Inventories: YAML in the shape of an Ansible inventory, loaded into typed models."""

from xenlab.inventory.load import load_inventory, parse_inventory, parse_size
from xenlab.inventory.model import HostSpec, Inventory, LabKind, Role, Toolstack

__all__ = [
    "HostSpec", "Inventory", "LabKind", "Role", "Toolstack",
    "load_inventory", "parse_inventory", "parse_size",
]
