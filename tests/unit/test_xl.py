"""xl's outputs, captured from the embedded Xen lab (Debian 12, Xen 4.17.5, PVH vm1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xenlab.errors import ParseError
from xenlab.hypervisor.base import DomainState
from xenlab.hypervisor.xen import (
    listed_state,
    live_migration_blocker,
    parse_xl_info,
    parse_xl_list,
    parse_xl_list_long,
    parse_xl_migrate,
    transfer_started,
)

DATA = Path(__file__).parents[1] / "data" / "xen" / "embedded-xen"


def test_xl_info_of_a_nested_xen() -> None:
    info = parse_xl_info((DATA / "xl-info.txt").read_text())
    assert info["host"] == "xen_resource_1"
    assert info["xen_version"] == "4.17.5"
    assert set(info["virt_caps"].split()) >= {"pv", "hvm", "hap", "shadow"}
    assert "hvm-3.0-x86_64" in info["xen_caps"].split()
    assert int(info["free_memory"]) > 0


def test_xl_info_without_its_identity_is_refused() -> None:
    with pytest.raises(ParseError, match="xen_version"):
        parse_xl_info("host : a\nxen_caps : x\n")


def test_xl_list_with_the_guest_and_without() -> None:
    rows = parse_xl_list((DATA / "xl-list.txt").read_text())
    assert [(d.name, d.domid) for d in rows] == [("Domain-0", 0), ("vm1", 2)]  # migrated back
    assert listed_state(rows[1]) is DomainState.RUNNING
    alone = parse_xl_list((DATA / "xl-list-dom0-only.txt").read_text())
    assert [d.name for d in alone] == ["Domain-0"]


def test_xl_list_long_gives_types_and_disks() -> None:
    domains = parse_xl_list_long((DATA / "xl-list-l.json").read_text())
    by_name = {d.name: d for d in domains}
    assert by_name["Domain-0"].guest_type == "pv"
    vm1 = by_name["vm1"]
    assert (vm1.guest_type, vm1.domid) == ("pvh", 2)
    assert vm1.disks == ("/dev/vg_xen/lv_vm1",)
    assert vm1.memory_kb == 128 * 1024
    assert (vm1.macs, vm1.bridges) == (("00:16:3e:18:01:21",), ("xenbr0",))
    assert by_name["Domain-0"].macs == ()


@pytest.mark.parametrize("text", ["not json", "{}", '[{"domid": 1}]', "[1]"])
def test_xl_list_long_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ParseError):
        parse_xl_list_long(text)


def _stamped(name: str) -> list[tuple[float, str]]:
    """[seconds since the command started, line] pairs, as the driver records them."""
    return [(t, line) for t, line in json.loads((DATA / name).read_text())]


def test_xl_vvv_migrate_events_and_downtime() -> None:
    parsed = parse_xl_migrate(_stamped("xl-vvv-migrate.json"))
    assert parsed.succeeded and parsed.error == ""
    order = ["suspend_requested", "suspended", "started", "successful"]
    assert [parsed.events_s[e] for e in order] == sorted(parsed.events_s[e] for e in order)
    assert parsed.downtime_ms is not None and 0 < parsed.downtime_ms < 60_000


def test_xl_v_migrate_has_no_suspend_line_so_no_downtime() -> None:
    parsed = parse_xl_migrate(_stamped("xl-v-migrate.json"))
    assert parsed.succeeded
    assert parsed.downtime_ms is None  # -v does not print the suspend: never guessed
    assert parsed.events_s["acknowledged"] < parsed.events_s["successful"]


@pytest.mark.parametrize("name", ["xl-vvv-migrate.json", "xl-v-migrate.json"])
def test_the_transfer_is_seen_to_begin_even_when_a_line_comes_broken(name: str) -> None:
    """The fault timer arms on the first sign of the transfer. xl writes a log line in pieces
    and the receiver's lines land between them (the saved run has one such line), so the
    sign must not hang on one line: break each sign in turn, the next one still arms."""
    lines = [line for _, line in json.loads((DATA / name).read_text())]
    signs = [i for i, line in enumerate(lines) if transfer_started(line)]
    assert len(signs) >= 3, signs
    assert not any(transfer_started(line) for line in lines[:signs[0]])
    assert "Ready to receive domain" in lines[signs[0]]  # the receiver is up: before save
    broken = list(lines)
    for i in signs[:-1]:
        middle = len(broken[i]) // 2  # another writer's line lands mid-way
        broken[i] = broken[i][:middle] + "xc: detail: fd 11, dom 2\n" + broken[i][middle:]
        broken[i] = broken[i].replace("domain", "dom" + "\n" + "ain")
        assert any(transfer_started(line) for line in broken[i + 1:])


def test_a_failed_migration_keeps_its_error() -> None:
    lines = [(0.0, "migration target: Ready to receive domain."),
             (1.0, "libxl: error: libxl_dom_save.c:123: Failed to enable logdirty"),
             (1.1, "migration sender: libxl_domain_suspend failed (rc=-3)")]
    parsed = parse_xl_migrate(lines)
    assert not parsed.succeeded
    assert "Failed to enable logdirty" in parsed.error


def test_preflight_blocks_pv_without_shadow_and_pvh_shadow_without_it() -> None:
    info = parse_xl_info((DATA / "xl-info.txt").read_text())
    assert live_migration_blocker(info, "pvh", hap=False) is None
    assert live_migration_blocker(info, "pv") is None  # this Xen has shadow paging
    no_shadow = dict(info, virt_caps="pv hvm hap gnttab-v1 gnttab-v2")
    blocker = live_migration_blocker(no_shadow, "pv")
    assert blocker and "PV" in blocker and "xen_resource_1" in blocker
    assert live_migration_blocker(no_shadow, "pvh") is None  # HAP does it
    assert "hap = 0" in (live_migration_blocker(no_shadow, "pvh", hap=False) or "")
    assert "no HVM" in (live_migration_blocker(dict(info, virt_caps="pv"), "hvm") or "")


class _Result:
    def __init__(self, rc: int, stdout: str = "", stderr: str = "") -> None:
        self.rc, self.stdout, self.stderr = rc, stdout, stderr


class _FakeHost:
    """Pure-logic fake: records commands, returns canned results."""

    def __init__(self, results: dict[str, _Result]) -> None:
        self.results = results
        self.commands: list[str] = []

    def run(self, command: str) -> _Result:
        self.commands.append(command)
        for needle, result in self.results.items():
            if needle in command:
                return result
        return _Result(127, "", f"unexpected: {command}")

    def check_output(self, command: str) -> str:
        return self.run(command).stdout


def test_xm_driver_runs_the_articles_command_and_reads_xm_info() -> None:
    from xenlab.hypervisor.xen import XenCliDriver

    xm_list = (Path(__file__).parents[1] / "data/xen/xm-list.txt").read_text()
    info = (Path(__file__).parents[1] / "data/xen/xm-info-xen3.txt").read_text()
    source = _FakeHost({"xm migrate": _Result(0), "xm list": _Result(0, xm_list),
                        "xm info": _Result(0, info)})
    clock = iter([100.0, 103.5])
    driver = XenCliDriver("xm", {"xen_resource_1": source}, clock=lambda: next(clock))  # type: ignore[dict-item]
    assert driver.migrate_command("vm1", "xen_resource_2") == \
        "xm migrate --live vm1 xen_resource_2"
    result = driver.migrate("vm1", "xen_resource_1", "xen_resource_2", timeout=60)
    assert source.commands[-1] == "timeout 60 xm migrate --live vm1 xen_resource_2"
    assert (result.status, result.toolstack, result.total_time_ms) == ("completed", "xm", 3500.0)
    parsed = driver.info("xen_resource_1")
    assert (parsed["xen_major"], parsed["xen_caps"], parsed["free_memory"]) == (
        "3", "xen-3.0-x86_32", "503")
    # Xen 3 prints no virt_caps; its PV guests live-migrate (the article's): no blocker
    assert live_migration_blocker(parsed, "pv") is None


def test_xm_migration_that_times_out_or_fails_says_so() -> None:
    from xenlab.hypervisor.xen import XenCliDriver

    for rc, status in ((124, "timeout"), (1, "failed")):
        host = _FakeHost({"xm migrate": _Result(rc, "", "Error: can't connect: Connection "
                                                        "refused")})
        driver = XenCliDriver("xm", {"a": host})  # type: ignore[dict-item]
        result = driver.migrate("vm1", "a", "b")
        assert result.status == status and "Connection refused" in result.error


def test_receiver_pids_find_xl_migrate_receive_however_called() -> None:
    from xenlab.hypervisor.xen import receiver_pids

    ps = """    1 /bin/busybox init
  512 sshd: root@notty
  514 xl -vvv migrate-receive
  515 /usr/sbin/xl migrate-receive -e
  600 grep migrate-receive
  601 sh -c echo xl migrate-receive
  700 /usr/lib/xen-4.17/bin/xl
"""
    assert receiver_pids(ps) == [514, 515]
    assert receiver_pids("") == []


# xm (xend, Xen 3): written in the layout of Xen 3's XendLogging (LOGFILE_FORMAT) with the
# messages XendCheckpoint and XendDomainInfo log; no xend runs on this machine (Xen 4.17 has
# none), so these lines are not captured.
XEND_SOURCE = [
    "[2006-09-12 14:22:30 3210] DEBUG (XendCheckpoint:89) [xc_save]: /usr/lib/xen/bin/xc_save 17 3 0 0 1",
    "[2006-09-12 14:22:33 3210] DEBUG (XendCheckpoint:98) Suspending 3 ...",
    "[2006-09-12 14:22:33 3210] INFO (XendCheckpoint:104) Domain 3 suspended.",
]
XEND_DESTINATION = [
    "[2006-09-12 14:22:30 2901] DEBUG (XendCheckpoint:159) [xc_restore]: "
    "/usr/lib/xen/bin/xc_restore 17 5 4 65536 1 2",
    "[2006-09-12 14:22:33 2901] DEBUG (XendDomainInfo:1421) XendDomainInfo.completeRestore",
    "[2006-09-12 14:22:33 2901] DEBUG (XendDomainInfo:1432) XendDomainInfo.completeRestore done",
]


def test_xend_events_give_the_hypervisor_downtime() -> None:
    from xenlab.hypervisor.xen import parse_xend_migration

    stamped = [(0.5, "source", XEND_SOURCE[0]), (0.6, "destination", XEND_DESTINATION[0]),
               (3.1, "source", XEND_SOURCE[1]), (3.25, "source", XEND_SOURCE[2]),
               (3.30, "destination", XEND_DESTINATION[1]),
               (3.42, "destination", XEND_DESTINATION[2])]
    parsed = parse_xend_migration(stamped, 0)
    assert parsed.succeeded and parsed.error == ""
    assert parsed.downtime_ms == pytest.approx(170.0)
    assert set(parsed.events_s) == {"suspend_requested", "suspended", "restore_started",
                                    "started"}
    # the destination's line on the source's log is not the destination's start
    assert parse_xend_migration([(1.0, "source", XEND_SOURCE[2]),
                                 (2.0, "source", XEND_DESTINATION[2])], 0).downtime_ms is None


def test_xend_failure_carries_both_hosts_reasons() -> None:
    from xenlab.hypervisor.xen import parse_xend_migration

    parsed = parse_xend_migration([
        (0.2, "destination", "[2006-09-12 14:22:30 2901] ERROR (XendCheckpoint:178) "
                             "Restore failed"),
        (0.4, "xm", "Error: /usr/lib/xen/bin/xc_save 17 3 0 0 1 failed")], 1)
    assert not parsed.succeeded
    assert parsed.error == ("destination xend: Restore failed; "
                            "Error: /usr/lib/xen/bin/xc_save 17 3 0 0 1 failed")


def test_xm_migration_is_streamed_with_both_logs_followed(tmp_path: Path) -> None:
    """The driver's plumbing, run here: local runners stand for the two dom0s (each in a
    directory of its own, holding its xend.log) and a stand-in `xm` appends the lines xend
    would log on each side, with pauses, as a live migration does."""
    import os

    from xenlab.hosts.runner import Runner
    from xenlab.hypervisor.xen import XenCliDriver

    src, dst, bin_dir = tmp_path / "src", tmp_path / "dst", tmp_path / "bin"
    for d in (src, dst, bin_dir):
        d.mkdir()
        (d / "xend.log").write_text("[2006-09-12 14:20:00 3210] INFO (SrvDaemon:1) old line\n")
    lines = [("src", XEND_SOURCE[0]), ("dst", XEND_DESTINATION[0]), ("sleep", "0.4"),
             ("src", XEND_SOURCE[1]), ("src", XEND_SOURCE[2]), ("sleep", "0.25"),
             ("dst", XEND_DESTINATION[1]), ("dst", XEND_DESTINATION[2])]
    script = ["#!/bin/sh", '[ "$*" = "migrate --live vm1 xen_resource_2" ] || exit 3']
    for where, text in lines:
        script.append(f"sleep {text}" if where == "sleep" else
                      f"echo '{text}' >> {tmp_path / where / 'xend.log'}")
    (bin_dir / "xm").write_text("\n".join(script) + "\n")
    (bin_dir / "xm").chmod(0o755)
    path = f"PATH={bin_dir}:{os.environ['PATH']}"
    runners = {"xen_resource_1": Runner("xen_resource_1", ["env", "-C", str(src), path]),
               "xen_resource_2": Runner("xen_resource_2", ["env", "-C", str(dst), path])}
    driver = XenCliDriver("xm", {}, runners=runners)
    driver.xend_log = "xend.log"  # relative: each runner's own directory
    result = driver.migrate("vm1", "xen_resource_1", "xen_resource_2", timeout=30)
    assert result.status == "completed" and result.error == "", result
    assert result.toolstack == "xm"
    assert result.downtime_ms is not None and 200 <= result.downtime_ms <= 1500, result
    assert "old line" not in result.output  # only what was logged during it
    assert "Domain 3 suspended." in result.output
    assert result.events_s["suspended"] < result.events_s["started"]
