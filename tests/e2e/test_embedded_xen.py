"""The embedded Xen lab end to end: two Xen 4.17 hosts under QEMU, the real aoe initiator and
LVM in their dom0s, vm1 and vm2 (PVH) live-migrated with `xl migrate` over SSH, the whole
certification run by the suites with the fault suite, a host emptied and its power pulled
(its QEMU machine killed) through a real lab's power commands, then nothing left behind;
and the same lab (one guest) driven through libvirt.

Both run at the same time, in the background (`xen_background` in conftest.py: two embedded
Xen labs side by side, four TCG machines on two cores, started once the tests that measure
have run); these tests wait for them and check what they did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from labrun import (
    REPO,
    Background,
    as_real_inventory,
    as_storage_host,
    leftovers,
    results_are_read_back,
)

# in the guest: remove the memory checker, end the echo service (found by its command line:
# this is the lab's own guest), and say so
STRIP_WITNESSES = (
    "rm -f /usr/bin/xenlab-memcheck && for p in /proc/[0-9]*; do "
    "case \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" in 'nc -ll -p 7000'*) "
    "kill ${p#/proc/};; esac; done; sleep 0.5; "
    "command -v xenlab-memcheck || echo stripped")


GUESTS = {"vm1": "198.18.1.21", "vm2": "198.18.1.22"}
TCP_LINE_MS = 100.0  # inventories/embedded-xen.yml's run.tcp_interval_ms
DOM0S = ("xen_resource_1", "xen_resource_2")


def power_switches(inventory: Path, root: Path) -> dict[str, tuple[str, str]]:
    """Each dom0's xenlab_power_off/on for the real pass: `xenlab lab power`, run in this
    test's own namespaces, as an ipmitool line reaches a BMC over the management network
    rather than from the lab's storage network."""
    enter = f"nsenter --target {os.getpid()} --mount --uts --net --wd={REPO} --"
    return {host: (f"{enter} {sys.executable} -m xenlab.cli lab power off {host} "
                   f"--inventory {inventory} --root {root}",
                   f"{enter} {sys.executable} -m xenlab.cli lab power on {host} "
                   f"--inventory {inventory} --root {root}")
            for host in DOM0S}


def run_of(xen_background: dict[str, Background], toolstack: str) -> Background:
    if not xen_background:
        pytest.skip("the embedded Xen lab needs root")
    return xen_background[toolstack]


def test_certification_of_the_embedded_xen_lab(xen_background: dict[str, Background],
                                               tmp_path: Path) -> None:
    """Built by the embedded path (which also runs the fault suite, and keeps the lab), then
    certified as a real lab: a `kind: real` inventory, pytest on the storage host (`local`),
    the dom0s and the guest over SSH: the path every user of a real lab takes."""
    run = run_of(xen_background, "xl")
    inventory, root, name = run.inventory, run.root, run.name
    rc, out = run.finish(timeout=3600)
    real_name = "r" + name[1:]
    try:
        assert rc == 0, out[-4000:]
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
        real = as_real_inventory(inventory, root / name, real_name, tmp_path / "real.yml",
                                 power=power_switches(inventory, root))
        results = tmp_path / "real" / "results.json"
        # an administrator's guests have none of xenlab's witnesses: take them out of these
        # (their memory checker and echo service), so the real path has to bring them
        ssh = [*as_storage_host(root, name), "ssh", "-i", str(root / name / "ssh" /
               "id_ed25519"), "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=" +
               str(root / name / "ssh" / "known_hosts")]
        for address in GUESTS.values():
            stripped = subprocess.run([*ssh, f"root@{address}", STRIP_WITNESSES], cwd=REPO,
                                      capture_output=True, text=True, timeout=60)
            assert stripped.returncode == 0 and "stripped" in stripped.stdout, stripped
        # its round trips are the maintenance window's (the host emptied of both guests, its
        # power pulled through the inventory's power commands, the guests back): they replace
        # the plan's own round trip here, as CI's time asks; the storm is the three-guest
        # QEMU lab's to show (ten more TCG migrations here)
        certified = subprocess.run(
            [*as_storage_host(root, name), sys.executable, "-m", "pytest", "suites", "-p",
             "no:cacheprovider", "--lab-inventory", str(real), "--lab-results", str(results),
             "--lab-report", str(tmp_path / "real" / "report.html"), "-v",
             "--lab-allow-power-off", "-k", "not test_live_migration and not storm"],
            cwd=REPO, capture_output=True, text=True, timeout=2400)
        assert certified.returncode == 0, certified.stdout[-5000:] + certified.stderr[-2000:]
        for address in GUESTS.values():  # what xenlab copied went with the run
            left = subprocess.run([*ssh, f"root@{address}",
                                   "ls -d /tmp/xenlab-witness-* 2>/dev/null; true"],
                                  cwd=REPO, capture_output=True, text=True, timeout=60)
            assert left.stdout.strip() == "", left.stdout
        # the same lab read-only over paramiko: its host keys verified too (an empty
        # known_hosts is refused once, in one line), then every read-only check passes
        paramiko = as_real_inventory(inventory, root / name, "p" + name[1:],
                                     tmp_path / "paramiko.yml", connection="paramiko")
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        refused = paramiko.with_name("refused.yml")
        refused.write_text(paramiko.read_text().replace(
            str(root / name / "ssh" / "known_hosts"), str(empty)))
        for path, expected in ((refused, 1), (paramiko, 0)):
            read_only = subprocess.run(
                [*as_storage_host(root, name), sys.executable, "-m", "pytest", "suites", "-p",
                 "no:cacheprovider", "--lab-inventory", str(path), "--lab-report", "none",
                 "--lab-results", str(tmp_path / "paramiko.json"), "-m", "not destructive",
                 "-rN"],  # no short summary: its lines are cut to the terminal's width
                cwd=REPO, capture_output=True, text=True, timeout=900)
            assert (read_only.returncode != 0) == bool(expected), read_only.stdout[-4000:]
            if expected:
                assert "is not in known_hosts" in read_only.stdout and \
                    read_only.stdout.count(str(empty)) == 1, read_only.stdout[-4000:]
        assert read_only.returncode == 0 and " passed" in read_only.stdout
    finally:
        subprocess.run([sys.executable, "-m", "xenlab.cli", "lab", "down", "--lab", name,
                        "--root", str(root)], capture_output=True, text=True, check=False)
    # the article's steps really ran in the dom0s
    for step in ("xen_resource_1: aoe driver loaded", "xen_resource_2: /dev/etherd/e0.0 "
                 "discovered", "xen_resource_1: PV on /dev/etherd/e0.0",
                 "xen_resource_2: /dev/vg_xen/lv_vm1 active", "xl create /etc/xen/vm1.cfg"):
        assert step in out, step
    # the fault suite on real Xen (embedded path): every fault survived, storage through AoE
    faults = {f["fault"]: f for f in json.loads(run.results.read_text())["faults"]}
    assert sorted(faults) == ["cancel", "destination-killed", "link-cut", "storage-outage"]
    for fault in faults.values():
        assert fault["problems"] == [], fault
    assert "drops tcp port 22 from xen_resource_" in faults["link-cut"]["injected"]
    assert "SIGKILL to `xl migrate-receive`" in faults["destination-killed"]["injected"]
    assert faults["cancel"]["status"] == "cancelled"
    assert faults["storage-outage"]["injected"].startswith("vblade (pid ")
    # the real path: both migrations with xl's own downtime beside the network's, and the
    # TCP connection's stall at least the network's gap less one probe interval
    real_results = json.loads(results.read_text())
    assert real_results["lab"]["kind"] == "real"
    assert real_results["run"]["guest_witnesses_copied"] == ["xenlab-memcheck", "xenlab-echo"]
    assert real_results["lab"]["guests"] == list(GUESTS), real_results["lab"]
    assert planned_and_maintenance(real_results) == []  # the window's moves, no other
    migrations = [m for m in real_results["migrations"] if m["scenario"] in ("evacuation",
                                                                          "return")]
    assert [(m["guest"], m["source"], m["destination"], m["status"]) for m in migrations] == [
        ("vm1", "xen_resource_1", "xen_resource_2", "completed"),
        ("vm2", "xen_resource_1", "xen_resource_2", "completed"),
        ("vm1", "xen_resource_2", "xen_resource_1", "completed"),
        ("vm2", "xen_resource_2", "xen_resource_1", "completed")]
    for m in migrations:
        net, tcp = m["network"], m["tcp"]
        assert m["hypervisor"]["toolstack"] == "xl" and m["hypervisor"]["error"] == ""
        assert m["hypervisor"]["downtime_ms"] and m["hypervisor"]["downtime_ms"] > 0, m
        assert net["received"] > 0 and net["downtime_ms"] > 0 and not net["gap_open"], net
        # the network's gap overstates the pause by up to one probe interval at each edge
        # (the last reply up to one before it, the first up to one after), and the stream's
        # reader stamps a line when it reads it, up to one of its line intervals late on a
        # loaded machine (seen in CI: 8599 ms against a gap of 8625, 8028 against 8087, at
        # 25 ms probes and 100 ms lines)
        slack = 2 * net["interval_ms"] + TCP_LINE_MS
        assert tcp["longest_stall_ms"] >= net["longest_gap_ms"] - slack, m
        assert not m["problems"], m["problems"]
    assert (results.parent / "report.html").stat().st_size > 10_000
    results_are_read_back(run.results, results)  # faults, xl's own figures: read back
    assert leftovers(name, root) == [] and leftovers(real_name, root) == []
    assert leftovers("p" + name[1:], root) == []  # the paramiko run's SSH sockets too


MAINTENANCE_DONE = ["a_host_is_emptied_while_service_goes_on",
                    "guests_go_on_when_the_emptied_host_loses_power",
                    "the_host_comes_back_and_is_checked_before_the_guests_return",
                    "the_guests_return_to_the_host_they_left"]


def planned_and_maintenance(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's migrations; the maintenance window's, checked here: the host emptied of
    both guests, its power pulled by the inventory's command (its QEMU machine killed) while
    both guests answered and their disks took a write read back, the host booted and checked,
    the guests back, every migration measured and passed."""
    window = results["maintenance"][0]
    assert window["done"] == MAINTENANCE_DONE and window["failed"] == "", window
    assert window["moves"] == [{"guest": g, "source": "xen_resource_1",
                                "destination": "xen_resource_2"} for g in GUESTS], window
    said = [e["what"] for e in window["events"]]
    assert any("`nsenter " in e and "lab power off xen_resource_1" in e for e in said), said
    for guest in GUESTS:
        answered = [e for e in said if e.startswith(f"{guest} answered ")]
        assert len(answered) == 1 and "with xen_resource_1 off" in answered[0], said
        sent, got = (int(n) for n in answered[0].split()[4:1:-2])
        assert sent > 0 and got >= 0.9 * sent, answered
        wrote = [e for e in said if e.startswith(f"{guest} wrote sha256 ")]
        assert len(wrote) == 1 and wrote[0].split()[3].rstrip(",") == wrote[0].split()[6], wrote
    assert any(e.startswith("xen_resource_1 checked: answers, sees the AoE target") for e in
               said), said
    kept = [m for m in results["migrations"] if m["scenario"] in ("evacuation", "return")]
    assert [(m["scenario"], m["source"], m["status"], m["passed"]) for m in kept] == [
        ("evacuation", "xen_resource_1", "completed", True),
        ("evacuation", "xen_resource_1", "completed", True),
        ("return", "xen_resource_2", "completed", True),
        ("return", "xen_resource_2", "completed", True)], kept
    assert window["migrations"] == [m["id"] for m in kept]
    return [m for m in results["migrations"] if m not in kept]


def test_certification_through_libvirt(xen_background: dict[str, Background]) -> None:
    """The same lab driven by libvirt (libxl) in the dom0s: `virsh create` from the XML
    xenlab renders, `virsh migrate --live` there and back, the suites pass, nothing left."""
    libvirt_run = run_of(xen_background, "libvirt")
    rc, out = libvirt_run.finish(timeout=3600)
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
    results_are_read_back(libvirt_run.results)  # libvirt's downtime is null: still read
    assert leftovers(libvirt_run.name, libvirt_run.root) == []
    # two runs at once: each run's JUnit XML lands beside its own report, not in reports/
    assert (libvirt_run.results.parent / "junit.xml").stat().st_size > 1000
