"""Each certification check catches the fault it is for: the embedded lab is built broken on
purpose (--lab-fault) and exactly the right test must fail, with a message naming the fault."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from labrun import REPO, leftovers, suites

CASES = [
    # fault, suite, the tests that must fail (and no other), words the message must carry
    ("fstab-type", "test_guest_image.py", ["test_fstab_root_agrees_with_config_and_lv"],
     "vm1:/etc/fstab says / is reiserfs; /dev/vg_xen/lv_vm1 holds ext4"),
    ("inittab-unedited", "test_guest_image.py", ["test_inittab_runlevels_2_to_6_commented_out"],
     "vm1:/etc/inittab still runs gettys line 14 (2:2345:respawn)"),
    ("config-disk", "test_domain_config.py",
     ["test_config_matches_the_inventory[xen_resource_1]",
      "test_config_matches_the_inventory[xen_resource_2]",
      "test_config_matches_the_running_guest[xen_resource_1]",
      "test_config_matches_the_running_guest[xen_resource_2]",
      "test_disk_exists_on_every_resource_host[xen_resource_1]",
      "test_disk_exists_on_every_resource_host[xen_resource_2]"],
     "disk 'phy:xen/lv_vm1' (vda) of /etc/xen/vm/vm1 is /dev/xen/lv_vm1, which does not exist"),
    ("config-memory", "test_domain_config.py",
     [f"{t}[xen_resource_{n}]" for n in (1, 2) for t in (
         "test_config_matches_the_inventory", "test_config_matches_the_running_guest")],
     "memory (MiB): 512 in the config, 256 running on xen_resource_1"),
    ("lv-mounted", "test_storage.py", ["test_lv_not_mounted_on_any_host[xen_resource_2]"],
     "on xen_resource_2: /dev/vg_xen/lv_vm1 is mounted"),
    ("relocation-closed", "test_relocation.py",
     ["test_incoming_port_reachable_from_the_source[xen_resource_2]"],
     "relocation port 8002 of xen_resource_2 is filtered from xen_resource_1"),
    ("second-vblade", "test_aoe.py",
     ["test_query_config_answered_exactly_once[xen_resource_1]",
      "test_answer_comes_from_the_storage_interface[xen_resource_1]"],
     "e0.0 answered 2 times"),
    ("other-export", "test_aoe.py",
     ["test_no_export_the_inventory_does_not_name[xen_resource_1]",
      "test_no_export_the_inventory_does_not_name[xen_resource_2]"],
     "the storage network also exports e0.1"),
    # the maintenance suite's self-test: the guest's disk secretly on the host it leaves
    ("local-disk", "test_maintenance.py",
     ["test_guests_go_on_when_the_emptied_host_loses_power",
      "test_the_host_comes_back_and_is_checked_before_the_guests_return",
      "test_the_guests_return_to_the_host_they_left"],
     "with xen_resource_1 off"),
    # the cause fails in full; every check that depends on it says so in one line
    ("no-vblade", "test_aoe.py",
     [f"{t}[xen_resource_{n}]" for n in (1, 2) for t in (
         "test_query_config_answered_exactly_once", "test_no_export_the_inventory_does_not_name",
         "test_config_answer_header", "test_answer_comes_from_the_storage_interface",
         "test_identify_capacity_is_the_export_size", "test_sector_1_carries_the_pv_label")],
     "not checked: e0.0 answered no Query Config from xen_resource_2:"),
]


def failed_tests(output: str) -> list[str]:
    return sorted(re.findall(r"^FAILED suites/\S+?::(\S+)", output, re.MULTILINE))


@pytest.mark.parametrize(("fault", "suite", "must_fail", "message"), CASES,
                         ids=[c[0] for c in CASES])
def test_the_right_check_catches_the_fault(lab_files: tuple[Path, Path, str], fault: str,
                                           suite: str, must_fail: list[str],
                                           message: str) -> None:
    inventory, root, name = lab_files
    argv = suites(inventory, root, "--lab-fault", fault, "-rf", "--tb=short")
    argv[argv.index("suites")] = f"suites/{suite}"
    try:
        result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    finally:
        import shutil

        shutil.rmtree(REPO / "reports" / "lab-logs" / name, ignore_errors=True)
    out = result.stdout
    assert f"fault injected: {fault}" in out
    assert failed_tests(out) == sorted(must_fail), out[-4000:]
    assert message in out, out[-4000:]
    assert "AoeProbe(" not in out, out[-4000:]  # a failure names its cause, not a repr
    assert leftovers(name, root) == []


def test_sed_backup_is_a_warning_not_a_failure(lab_files: tuple[Path, Path, str]) -> None:
    inventory, root, name = lab_files
    argv = suites(inventory, root, "--lab-fault", "inittabe")
    argv[argv.index("suites")] = "suites/test_guest_image.py"
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "ImageWarning: vm1:/etc/inittabe exists" in result.stdout
    assert leftovers(name, root) == []


def test_the_healthy_lab_passes_the_same_suites(lab_files: tuple[Path, Path, str]) -> None:
    """The same checks, no fault: none fails (so the failures above are the faults' doing)."""
    inventory, root, _name = lab_files
    files = sorted({f"suites/{c[1]}" for c in CASES})
    argv = suites(inventory, root, "-rf")
    argv[argv.index("suites"):argv.index("suites") + 1] = files
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and failed_tests(result.stdout) == [], result.stdout[-3000:]
    assert "ImageWarning" not in result.stdout
