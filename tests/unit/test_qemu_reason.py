"""A failed migration carries the destination QEMU's own reason: its log, saved from the
embedded lab with the config-memory fault (config 512 MiB, guest running with 256)."""

from __future__ import annotations

from pathlib import Path

from xenlab.hypervisor.qemu import qemu_reason

DATA = Path(__file__).parents[1] / "data" / "qemu"


def test_the_destination_says_why() -> None:
    said = qemu_reason((DATA / "destination-memory-mismatch.log").read_text())
    assert said.startswith("qemu-system-x86_64: Size mismatch: pc.ram: 0x10000000 != 0x20000000")
    assert said.endswith("load of migration failed: Invalid argument")


def test_a_quiet_log_says_nothing() -> None:
    assert qemu_reason("") == ""
    assert qemu_reason("VNC server running on 127.0.0.1:5900\n") == ""
