"""The embedded Xen lab end to end: two Xen 4.17 hosts under QEMU, the real aoe initiator and
LVM in their dom0s, vm1 (PVH) live-migrated there and back with `xl migrate` over SSH, the
whole certification run by the suites with the fault suite, then nothing left behind; and the
same lab driven through libvirt.

The two run at the same time (two embedded Xen labs side by side, four TCG machines on two
cores): each leaves the other alone, and CI waits for the longer one instead of both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from labrun import REPO, leftovers, suites


@dataclass
class Background:
    name: str
    root: Path
    results: Path
    log: Path  # its output goes to a file: a pipe nobody reads would stop it when full
    proc: subprocess.Popen[bytes]

    def finish(self, timeout: float) -> tuple[int, str]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=300)
            raise AssertionError(f"the libvirt certification ran over {timeout:.0f} s:\n"
                                 f"{self.log.read_text(errors='replace')[-4000:]}") from None
        return self.proc.returncode, self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def libvirt_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    """The libvirt certification, started in the background as soon as a test asks for it
    (the xl test does, first), on a lab of its own name and root."""
    if os.geteuid() != 0:
        pytest.skip("the embedded Xen lab needs root")
    tmp = tmp_path_factory.mktemp("libvirt")
    name = f"v{os.getpid() % 10000}"
    inventory = tmp / "lab.yml"
    inventory.write_text((REPO / "inventories/embedded-xen-libvirt.yml").read_text().replace(
        "lab: embedded-virsh", f"lab: {name}"))
    root = tmp / "labs"
    results, log = tmp / "results.json", tmp / "output.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(suites(inventory, root, "--lab-results", str(results),
                                       "--lab-report", str(tmp / "report.html"), "-v"),
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    yield Background(name, root, results, log, proc)
    if proc.poll() is None:  # the libvirt test was deselected or failed early: end it
        proc.terminate()  # pytest's SIGTERM: the lab is taken down as on Ctrl-C
        proc.wait(timeout=300)


@pytest.fixture
def xen_lab_files(tmp_path: Path) -> tuple[Path, Path, str]:
    if os.geteuid() != 0:
        pytest.skip("the embedded Xen lab needs root")
    name = f"x{os.getpid() % 10000}"
    text = (REPO / "inventories/embedded-xen.yml").read_text().replace(
        "lab: embedded-xen", f"lab: {name}")
    inventory = tmp_path / "lab.yml"
    inventory.write_text(text)
    return inventory, tmp_path / "labs", name


def test_certification_of_the_embedded_xen_lab(xen_lab_files: tuple[Path, Path, str],
                                               tmp_path: Path, libvirt_run: Background) -> None:
    inventory, root, name = xen_lab_files
    results_file = tmp_path / "results.json"
    done = subprocess.run(suites(inventory, root, "--lab-results", str(results_file),
                                 "--lab-report", str(tmp_path / "report.html"), "--lab-keep",
                                 "--lab-fault-suite"),
                          cwd=REPO, capture_output=True, text=True, timeout=2400)
    try:
        assert done.returncode == 0, done.stdout[-4000:]
        # provisioning is idempotent: run again on the same dom0s, every step is satisfied
        again = subprocess.run([sys.executable, "-m", "xenlab.cli", "lab", "provision",
                                "--inventory", str(inventory), "--root", str(root)],
                               cwd=REPO, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stdout + again.stderr
        lines = [line for line in again.stdout.splitlines() if ": " in line
                 and line.startswith("xen_resource_")]
        assert len(lines) >= 10 and all(line.endswith("already satisfied") for line in lines), \
            again.stdout
        assert "0 applied" in again.stdout
    finally:
        subprocess.run([sys.executable, "-m", "xenlab.cli", "lab", "down", "--lab", name,
                        "--root", str(root)], capture_output=True, text=True, check=False)
    # the article's steps really ran in the dom0s
    for step in ("xen_resource_1: aoe driver loaded", "xen_resource_2: /dev/etherd/e0.0 "
                 "discovered", "xen_resource_1: PV on /dev/etherd/e0.0",
                 "xen_resource_2: /dev/vg_xen/lv_vm1 active", "xl create /etc/xen/vm1.cfg"):
        assert step in done.stdout + done.stderr, step
    results = json.loads(results_file.read_text())
    # the fault suite on real Xen: every fault survived, the storage outage through AoE too
    faults = {f["fault"]: f for f in results["faults"]}
    assert sorted(faults) == ["cancel", "destination-killed", "link-cut", "storage-outage"]
    for fault in faults.values():
        assert fault["problems"] == [], fault
    assert "drops tcp port 22 from xen_resource_" in faults["link-cut"]["injected"]
    assert "SIGKILL to `xl migrate-receive`" in faults["destination-killed"]["injected"]
    assert faults["cancel"]["status"] == "cancelled"
    assert faults["storage-outage"]["injected"].startswith("vblade (pid ")
    migrations = results["migrations"]
    assert [(m["source"], m["destination"], m["status"]) for m in migrations] == [
        ("xen_resource_1", "xen_resource_2", "completed"),
        ("xen_resource_2", "xen_resource_1", "completed")]
    for m in migrations:
        assert m["hypervisor"]["toolstack"] == "xl"
        assert m["hypervisor"]["downtime_ms"] and m["hypervisor"]["downtime_ms"] > 0
        assert m["network"]["received"] > 0 and m["network"]["downtime_ms"] > 0
        assert not m["problems"], m["problems"]
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert leftovers(name, root) == []


def test_certification_through_libvirt(libvirt_run: Background) -> None:
    """The same lab driven by libvirt (libxl) in the dom0s: `virsh create` from the XML
    xenlab renders, `virsh migrate --live` there and back, the suites pass, nothing left."""
    rc, out = libvirt_run.finish(timeout=2400)
    assert rc == 0, out[-4000:]
    for step in ("xen_resource_1: libvirtd (xen:///system): done",
                 "xen_resource_2: domain config /etc/xen/vm1.xml: done",
                 "xen_resource_1: virsh create /etc/xen/vm1.xml: done",
                 "test_libvirt_reaches_every_other_host[xen_resource_1] PASSED"):
        assert step in out, step
    migrations = json.loads(libvirt_run.results.read_text())["migrations"]
    assert [(m["source"], m["destination"], m["status"]) for m in migrations] == [
        ("xen_resource_1", "xen_resource_2", "completed"),
        ("xen_resource_2", "xen_resource_1", "completed")]
    for m in migrations:
        assert m["hypervisor"]["toolstack"] == "libvirt"
        assert m["hypervisor"]["downtime_ms"] is None  # libxl keeps no job statistics
        assert m["network"]["received"] > 0 and not m["problems"], m["problems"]
    assert leftovers(libvirt_run.name, libvirt_run.root) == []
    # two runs at once: each run's JUnit XML lands beside its own report, not in reports/
    assert (libvirt_run.results.parent / "junit.xml").stat().st_size > 1000
