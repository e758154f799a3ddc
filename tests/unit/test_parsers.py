"""Pure parsers against outputs saved from the embedded lab (tests/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xenlab.errors import ParseError
from xenlab.hypervisor.base import DomainState
from xenlab.hypervisor.domconfig import parse_domain_config, render_domain_config
from xenlab.hypervisor.qmp import domain_state, figures_settled, migration_figures
from xenlab.hypervisor.xen import listed_state, parse_xl_list
from xenlab.inventory import load_inventory
from xenlab.net.iproute import link_address, parse_addresses, parse_links
from xenlab.storage.lvm import lv_byte_range, parse_lvs, parse_pvs, parse_vgs

REPO = Path(__file__).parents[2]


def test_lvm_reports(data: Path) -> None:
    pv = parse_pvs((data / "lvm/pvs.json").read_text())[0]
    vg = parse_vgs((data / "lvm/vgs.json").read_text())[0]
    lv = parse_lvs((data / "lvm/lvs.json").read_text())[0]
    assert (pv.vg, vg.name, lv.name, lv.vg) == ("vg_xen", "vg_xen", "lv_vm1", "vg_xen")
    assert lv.size == 5 << 30 and vg.extent_size == 4 << 20 and pv.pe_start == 1 << 20
    assert len(pv.uuid) == 38 and lv.first_extent == 0
    assert not lv.active  # made without device-mapper
    rng = lv_byte_range(lv, pv, vg)
    assert (rng.offset, rng.size) == (1 << 20, 5 << 30)


def test_lv_range_of_a_later_extent(data: Path) -> None:
    text = (data / "lvm/lvs.json").read_text().replace('(0)"', '(256)"')
    lv = parse_lvs(text)[0]
    pv = parse_pvs((data / "lvm/pvs.json").read_text())[0]
    vg = parse_vgs((data / "lvm/vgs.json").read_text())[0]
    assert lv_byte_range(lv, pv, vg).offset == (1 << 20) + 256 * (4 << 20)


def test_lvm_report_needs_bytes(data: Path) -> None:
    text = (data / "lvm/lvs.json").read_text().replace('"5368709120B"', '"5.00g"')
    with pytest.raises(ParseError, match="--units b"):
        parse_lvs(text)


def test_lvm_report_garbage() -> None:
    with pytest.raises(ParseError, match="LVM lv report"):
        parse_lvs("  WARNING: Activation disabled.")


def test_ip_links_and_addresses(data: Path) -> None:
    links = {link.name: link for link in parse_links((data / "ip/link-resource.json").read_text())}
    assert links["xenbr0"].kind == "bridge" and links["eth0"].master == "xenbr0"
    assert links["xenbr0"].mac == links["eth0"].mac  # the pinned bridge MAC
    assert links["vif-vm1.0"].kind == "tun" and links["vif-vm1.0"].master == "xenbr0"
    addrs = parse_addresses((data / "ip/addr-resource.json").read_text())
    assert [(a.ifname, a.address, a.prefixlen) for a in addrs if a.ifname == "xenbr0"] == [
        ("xenbr0", "198.18.0.11", 24)]
    assert link_address((data / "ip/link-eth0.json").read_text()) == links["eth0"].mac


def test_qmp_migration_figures(data: Path) -> None:
    done = migration_figures(json.loads((data / "qmp/query-migrate-completed.json").read_text()))
    assert done["status"] == "completed" and figures_settled(done)
    assert isinstance(done["total_time_ms"], float) and done["total_time_ms"] > 0
    assert isinstance(done["bytes_transferred"], int) and done["bytes_transferred"] > 1 << 20
    # what was left at the switch and the rate: the saved run's 2.6 MB at 1095 Mbit/s
    assert done["switchover_bytes"] == 2595288 and done["bandwidth_mbps"] == 1094.8281293952182
    active = migration_figures(json.loads((data / "qmp/query-migrate-active.json").read_text()))
    assert active["status"] == "active" and active["downtime_ms"] is None
    assert active["switchover_bytes"] == 0  # nothing sent paused yet
    failed = migration_figures(json.loads((data / "qmp/query-migrate-failed.json").read_text()))
    assert failed["status"] == "failed" and "Connection refused" in str(failed["error"])
    assert migration_figures({"status": "completed", "total-time": 0})["total_time_ms"] == 0.0
    assert not figures_settled(migration_figures({"status": "completed", "total-time": 0}))


def test_qmp_status(data: Path) -> None:
    def state(name: str) -> DomainState:
        return domain_state(json.loads((data / f"qmp/query-status-{name}.json").read_text()))

    assert state("running") is DomainState.RUNNING
    assert state("inmigrate") is DomainState.PAUSED
    assert state("postmigrate") is DomainState.STOPPED
    with pytest.raises(ParseError):
        domain_state({"running": True})


def test_domain_config_of_the_article(data: Path) -> None:
    cfg = parse_domain_config((data / "domconfig/article-vm1").read_text())
    assert cfg.name == "vm1" and cfg.values["hostname"] == "vm1"
    assert cfg.values["memory"] == 256 and cfg.get_str("root") == "/dev/hda1"
    assert cfg.vif_fields() == [{"mac": "aa:cc:00:00:00:01", "bridge": "xenbr0"}]
    assert cfg.disk_fields() == [("phy:xen/lv_vm1", "hda1", "w")]


def test_domain_config_rendered_parses_back(data: Path) -> None:
    spec = load_inventory(REPO / "inventories/embedded.yml").domain
    text = render_domain_config(spec)
    assert text == (data / "domconfig/embedded-vm1").read_text()  # what the lab really wrote
    cfg = parse_domain_config(text)
    assert cfg.disk_fields() == [("phy:/dev/vg_xen/lv_vm1", "vda", "w")]
    assert cfg.values["memory"] == spec.memory and cfg.get_str("kernel") == spec.kernel


@pytest.mark.parametrize("text", ["name = ", "import os\n", "memory = 2 ** 8\n",
                                  "hostname = name\n"])
def test_domain_config_errors(text: str) -> None:
    with pytest.raises(ParseError):
        parse_domain_config(text)


def test_xl_and_xm_list(data: Path) -> None:
    xl = parse_xl_list((data / "xen/xl-list.txt").read_text())
    assert [(d.name, d.domid, d.state) for d in xl] == [("Domain-0", 0, "r-----"),
                                                         ("vm1", 3, "-b----")]
    assert listed_state(xl[1]) is DomainState.RUNNING
    xm = parse_xl_list((data / "xen/xm-list.txt").read_text())
    assert xm[1].memory == 256
    assert listed_state(None) is DomainState.ABSENT
    paused = parse_xl_list((data / "xen/xl-list.txt").read_text().replace("-b----", "--p---"))
    assert listed_state(paused[1]) is DomainState.PAUSED
    with pytest.raises(ParseError):
        parse_xl_list("Domain-0 0 384 1 r----- 1.0\n")
