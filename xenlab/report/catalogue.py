"""What each check verifies, in one line, and which step of the article's set-up it guards:
the rows of the report's check matrix. Every test in suites/ has an entry (a self-test says
which one lacks it)."""

from __future__ import annotations

# the article's set-up, in its order (xen-live-migration-2006.txt)
STEPS: dict[str, str] = {
    "hosts": "1. three hosts named, in every hosts file",
    "export": "2. vblade exports the partition (vbladed 0 0 eth0 /dev/sda3)",
    "aoe": "3. modprobe aoe; /dev/etherd/e0.0 seen",
    "lvm": "4. pvcreate, vgcreate vg_xen, lvcreate lv_vm1",
    "image": "5. the image unpacked and fixed up (passwd, fstab, inittab)",
    "second": "6. the second host: modprobe aoe; vgchange -a y",
    "config": "7. /etc/xen/vm/vm1 on both resource hosts",
    "relocation": "8. xend-relocation-port 8002",
    "start": "9. xm create vm1; ping vm1",
    "migrate": "10. xm migrate --live vm1 xen_resource_2 while pinging",
    "maintenance": "the promise: a host emptied for maintenance, its power pulled",
    "meter": "the harness itself: the meter",
}

CHECKS: dict[str, tuple[str, str]] = {
    # test_hosts.py, test_smoke.py
    "test_lab_names_resolve": ("every lab name resolves to its inventory address", "hosts"),
    "test_host_answers": ("the host answers over its connection", "hosts"),
    "test_role_tools_present": ("the tools of the host's role are installed", "hosts"),
    "test_every_host_answers": ("every lab host runs a command", "hosts"),
    "test_guest_answers_ping": ("vm1 answers ping from the observer", "start"),
    "test_guest_answers_ssh": ("vm1 answers SSH", "start"),
    "test_guest_runs_on_exactly_one_host": ("vm1 runs on exactly one resource host", "start"),
    # test_aoe.py
    "test_query_config_answered_exactly_once": ("one AoE target answers the Query Config",
                                                "export"),
    "test_no_export_the_inventory_does_not_name": ("no AoE export beyond the inventory's",
                                                   "export"),
    "test_config_answer_header": ("the AoE answer's header is well-formed", "export"),
    "test_answer_comes_from_the_storage_interface": ("AoE answers come from the storage host",
                                                     "export"),
    "test_identify_capacity_is_the_export_size": ("ATA IDENTIFY gives the export's size",
                                                  "export"),
    "test_sector_1_carries_the_pv_label": ("sector 1 of the export holds the LVM PV label",
                                           "lvm"),
    # test_storage.py
    "test_aoe_driver_loaded": ("the aoe driver is loaded", "aoe"),
    "test_etherd_device_has_the_export_size": ("/dev/etherd/eS.N has the export's size", "aoe"),
    "test_pv_vg_lv_visible": ("vg_xen and lv_vm1 are seen with their sizes", "lvm"),
    "test_pv_is_the_aoe_device": ("the PV is the AoE device on each host", "second"),
    "test_lv_active_where_the_guest_runs": ("lv_vm1 is active where vm1 runs", "second"),
    "test_guest_disk_is_the_lv": ("vm1's disk reads lv_vm1's bytes", "config"),
    "test_lv_not_mounted_on_any_host": ("lv_vm1 is not mounted on any host", "image"),
    # test_guest_image.py
    "test_fstab_root_agrees_with_config_and_lv": ("fstab's root agrees with the config and LV",
                                                  "image"),
    "test_inittab_runlevels_2_to_6_commented_out": ("inittab's runlevels 2-6 are commented out",
                                                    "image"),
    "test_passwd_and_shadow": ("passwd and shadow are in the image", "image"),
    "test_no_stray_sed_backup": ("no /etc/inittabe left by `sed -ie`", "image"),
    # test_domain_config.py
    "test_config_parses": ("the domain config parses", "config"),
    "test_config_identical_on_every_resource_host": ("the config is the same on every host",
                                                     "config"),
    "test_config_matches_the_inventory": ("the config is the inventory's", "config"),
    "test_config_matches_the_running_guest": ("the config is what the hypervisor runs",
                                              "config"),
    "test_disk_exists_on_every_resource_host": ("the config's disk exists on the host", "config"),
    "test_vif_bridge_exists": ("the config's bridge exists on the host", "config"),
    "test_mac_unique_on_the_lab": ("vm1's MAC is unique on the lab", "config"),
    "test_memory_fits_the_destination": ("vm1's memory fits the host, as the hypervisor counts",
                                         "config"),
    "test_kernel_and_ramdisk_exist": ("the config's kernel and ramdisk exist", "config"),
    "test_guest_type_can_live_migrate": ("Xen's paging modes let this guest type migrate",
                                         "config"),
    # test_relocation.py
    "test_xend_relocation_server_configured": ("xend's relocation server is on", "relocation"),
    "test_xend_relocation_port_listens": ("port 8002 listens", "relocation"),
    "test_xend_relocation_not_open_to_all": ("relocation is not open to every host",
                                             "relocation"),
    "test_xl_ssh_transport": ("xl reaches every other host over SSH", "relocation"),
    "test_libvirt_reaches_every_other_host": ("libvirtd reaches every other host",
                                              "relocation"),
    "test_incoming_port_reachable_from_the_source": ("the incoming port is reachable",
                                                     "relocation"),
    # test_security.py
    "test_aoe_exported_only_on_the_storage_interface": ("vblade serves only the storage "
                                                        "interface", "export"),
    "test_guest_shadow_is_not_a_hosts": ("the guest's shadow is not a host's", "image"),
    "test_ssh_password_authentication_off": ("SSH password logins are off", "hosts"),
    # test_meter.py, test_migration.py, test_faults.py
    "test_meter_measures_injected_outages": ("the meter measures injected outages to 1 ms",
                                             "meter"),
    "test_live_migration": ("each live migration keeps the guest within the limits", "migrate"),
    "test_no_regression_against_the_baseline": ("no figure regressed against the baseline",
                                                "migrate"),
    "test_migration_fault_survived": ("a fault mid-migration is survived and told", "migrate"),
    "test_storage_outage_survived": ("a storage outage is survived", "export"),
    # test_maintenance.py
    "test_a_host_is_emptied_while_service_goes_on": ("every guest leaves the host, each "
                                                     "outage within the limits", "maintenance"),
    "test_guests_go_on_when_the_emptied_host_loses_power": ("with the host's power pulled the "
                                                            "guests answer and write to disk",
                                                            "maintenance"),
    "test_the_host_comes_back_and_is_checked_before_the_guests_return": (
        "the host comes back: AoE, the LV, relocation", "maintenance"),
    "test_the_guests_return_to_the_host_they_left": ("the guests return to the host",
                                                     "maintenance"),
    # test_storm.py
    "test_downtime_against_concurrency": ("a storm: 1, 2, N guests moved at once, both ways",
                                          "maintenance"),
}


def describe(check: str) -> tuple[str, str]:
    """(what the check verifies, the article step it guards); an unknown check (a suite
    added without an entry) is named after its function."""
    found = CHECKS.get(check)
    if found is None:
        return check.removeprefix("test_").replace("_", " "), ""
    what, step = found
    return what, STEPS[step]
