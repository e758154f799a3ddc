"""End-to-end tests build real embedded labs (root, namespaces, QEMU)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from labrun import REPO


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="the embedded lab needs root")
    if os.geteuid() != 0:
        for item in items:
            if "lab_files" in getattr(item, "fixturenames", ()):
                item.add_marker(skip)


@pytest.fixture
def lab_files(tmp_path: Path) -> tuple[Path, Path, str]:
    """An inventory for a lab of its own name, and a lab root of its own."""
    name = f"e2e{os.getpid() % 10000}"
    text = (REPO / "inventories/embedded.yml").read_text().replace("lab: embedded", f"lab: {name}")
    inventory = tmp_path / "lab.yml"
    inventory.write_text(text)
    return inventory, tmp_path / "labs", name
