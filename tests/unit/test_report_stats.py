"""The report's figures over repeats, the downtime split, the transfer bound and the check
matrix, on saved results (tests/data/results, tests/data/qmp)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from xenlab.hypervisor.qmp import migration_figures
from xenlab.measure.results import MigrationRecord, load_results
from xenlab.report.catalogue import CHECKS, STEPS
from xenlab.report.matrix import LAB, CheckOutcome, build_matrix, matrix_html
from xenlab.report.stats import Summary, groups, percentile, plausibility, split, summarize

DATA = Path(__file__).parents[1] / "data"
REPO = Path(__file__).parents[2]


def test_summary_statistics_are_nearest_rank() -> None:
    values = [float(v) for v in range(20, 0, -1)]  # 20 .. 1, unordered on purpose
    s = summarize(values)
    assert (s.n, s.median, s.p95, s.max) == (20, 10.5, 19.0, 20.0)
    assert summarize([7.0]) == Summary(1, 7.0, 7.0, 7.0)  # one value: every statistic
    assert summarize([]).median is None and percentile([], 95) is None
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0


def test_groups_of_a_saved_run_hold_every_completed_figure() -> None:
    run = load_results(DATA / "results/embedded-xen-xl-run.json")
    found = groups(run.migrations)
    assert [(g.scenario, g.direction) for g in found] == [
        ("idle", "xen_resource_1->xen_resource_2"), ("idle", "xen_resource_2->xen_resource_1")]
    first = found[0]
    assert first.summary("network downtime").median == pytest.approx(4011.857, abs=0.001)
    assert first.summary("hypervisor downtime").max == pytest.approx(3181.824, abs=0.001)
    assert first.summary("TCP stall").n == 1
    failed = dataclasses.replace(run.migrations[0], status="failed")
    assert groups([failed]) == []  # a failure's figures time a failure, not a downtime


def test_the_split_is_the_meters_gap_minus_the_hypervisors_pause() -> None:
    run = load_results(DATA / "results/embedded-run.json")
    first = split(run.migrations[0])
    assert first is not None and first.pause_ms == 8.0
    assert first.reconverge_ms == pytest.approx(65.516 - 8.0, abs=0.001)
    libvirt = load_results(DATA / "results/embedded-xen-libvirt-run.json")
    assert split(libvirt.migrations[0]) is None  # libvirt's libxl reports no pause


def _with_qmp_figures(record: MigrationRecord, **changes: float) -> MigrationRecord:
    done = migration_figures(json.loads((DATA / "qmp/query-migrate-completed.json").read_text()))
    hv = {**record.hypervisor, "downtime_ms": done["downtime_ms"],
          "switchover_bytes": done["switchover_bytes"], "bandwidth_mbps": done["bandwidth_mbps"]}
    net = dict(record.network or {})
    for key, value in changes.items():
        (net if key == "network" else hv)["downtime_ms" if key in ("network", "pause") else key] = value
    return dataclasses.replace(record, hypervisor=hv, network=net)


def test_the_transfer_bound_flags_what_the_transfer_cannot_allow() -> None:
    record = load_results(DATA / "results/embedded-run.json").migrations[0]
    plain = _with_qmp_figures(record, network=30.0)
    ok = plausibility(plain)
    assert ok.bound_ms == pytest.approx(2595288 * 8 / 1094.8281293952182e6 * 1000)  # 18.96 ms
    assert ok.flags == ()  # QEMU's 11 ms pause: the final round ran faster than the mean rate
    short = plausibility(_with_qmp_figures(record, pause=3.0, network=30.0))
    assert any("hypervisor downtime 3.0 ms is below the transfer's bound" in f
               for f in short.flags)
    far = plausibility(_with_qmp_figures(record, network=900.0))
    assert any("far above the transfer's bound" in f for f in far.flags)
    gap = plausibility(_with_qmp_figures(record, pause=40.0, network=20.0))
    assert any("shorter than the hypervisor's pause" in f for f in gap.flags)
    unknown = plausibility(record)
    assert unknown.bound_ms is None and unknown.flags == ()  # the saved run has no bytes


def test_the_matrix_puts_failures_first_and_folds_what_was_skipped_everywhere() -> None:
    hosts = ("xen_storage", "xen_resource_1", "xen_resource_2")
    outcomes = [
        CheckOutcome("test_aoe_driver_loaded", "xen_resource_1", "", "passed"),
        CheckOutcome("test_aoe_driver_loaded", "xen_resource_2", "", "passed"),
        CheckOutcome("test_xend_relocation_port_listens", "xen_resource_1", "", "skipped",
                     "needs xend's relocation server, which lab 'x' does not have"),
        CheckOutcome("test_xend_relocation_port_listens", "xen_resource_2", "", "skipped",
                     "needs xend's relocation server, which lab 'x' does not have"),
        CheckOutcome("test_live_migration", LAB, "idle-rt1-a", "passed"),
        CheckOutcome("test_live_migration", LAB, "idle-rt1-b", "failed", "downtime 1500 ms"),
        CheckOutcome("test_host_answers", "xen_storage", "", "error", "ssh: refused"),
    ]
    m = build_matrix(outcomes, hosts)
    assert m.columns == ("xen_storage", "xen_resource_1", "xen_resource_2", LAB)
    assert [r.check for r in m.rows] == ["test_live_migration", "test_host_answers",
                                         "test_aoe_driver_loaded"]
    assert m.rows[0].cells[LAB].label == "FAIL 1/2"
    assert m.rows[0].failures == ["idle-rt1-b: downtime 1500 ms"]
    assert m.rows[2].cells["xen_resource_2"].label == "pass"
    assert m.not_applicable == (("needs xend's relocation server, which lab 'x' does not have",
                                 2, ("test_xend_relocation_port_listens",)),)
    html = matrix_html(m)
    assert "3 applicable here, 2 failing" in html and "Not applicable here (2 skipped)" in html
    assert "2. vblade exports" not in html and STEPS["aoe"] in html


def test_every_check_in_the_suites_has_its_line_and_step() -> None:
    import ast

    names = {node.name for path in (REPO / "suites").glob("test_*.py")
             for node in ast.parse(path.read_text()).body
             if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    assert names - set(CHECKS) == set(), "checks without a line in xenlab/report/catalogue.py"
    assert set(CHECKS) - names == set(), "catalogue lines for checks that no longer exist"
    assert all(step in STEPS for _, step in CHECKS.values())


def test_with_a_baseline_the_figures_show_both_runs_and_the_changed_facts() -> None:
    from xenlab.report.summary import summary_html

    base = load_results(DATA / "results/embedded-run.json")
    now = load_results(DATA / "results/embedded-run.json")
    now.hosts = {h: dict(f) for h, f in base.hosts.items()}
    now.hosts["xen_resource_1"]["kernel"] = "6.1.0-99-amd64"
    html = summary_html(now, [], "inv.yml", None, ran=3, baseline_results=base)
    changes = html[html.index("id='xenlab-changes'"):]
    changes = changes[:changes.index("</table>")]
    assert "xen_resource_1" in changes and "<b>6.1.0-99-amd64</b>" in changes
    assert html.index("id='xenlab-changes'") < html.index("id='xenlab-distributions'")
    distributions = html[html.index("id='xenlab-distributions'"):]
    distributions = distributions[:distributions.index("</table>")]
    assert distributions.count("baseline 1 · ") == 4 * len(groups(base.migrations))
    same = summary_html(base, [], "inv.yml", None, ran=3, baseline_results=base)
    assert "No host fact changed since the baseline." in same


def test_the_maintenance_window_of_a_saved_qemu_run() -> None:
    """A real window (the QEMU lab: emptied, powered off and on, checked, back): its length,
    one lane per guest with its two outages, and every event in order."""
    from xenlab.report.latency import maintenance_html

    run = load_results(DATA / "results/embedded-maintenance-run.json")
    window = run.maintenance[0]
    assert window["failed"] == "" and len(window["done"]) == 4
    html = maintenance_html(run)
    assert f"Maintenance of xen_resource_1: {window['window_s']:.1f} s, every phase done" in html
    assert html.count("<tr>") == 1 + len(window["events"])
    assert "powered off: SIGKILL to" in html and 'id="xenlab-maintenance-plot"' in html
    assert maintenance_html(load_results(DATA / "results/embedded-run.json")) == ""


def test_the_three_guest_run_has_a_lane_per_guest_and_a_storm() -> None:
    """A saved run of inventories/embedded-guests.yml: the window's lanes are vm1..vm3 (each
    with its two outages), and the storm's table holds every storm migration with how many
    ran at once, its plot beside it."""
    from xenlab.report.latency import _against_limit, maintenance_html, storm_html
    from xenlab.report.plots import maintenance_png

    run = load_results(DATA / "results/embedded-guests-run.json")
    html = maintenance_html(run)
    assert "every phase done" in html and html.count("answered") == 3
    storm = [m for m in run.migrations if m.scenario.startswith("storm-")]
    table = storm_html(run)
    assert table.count("<tr>") == 1 + len(storm) and 'id="xenlab-storm-plot"' in table
    for level in (1, 2, 3):
        assert f"<td>{level}</td>" in table
    over = [m for m in storm if (m.network or {})["downtime_ms"] > 1000]
    assert table.count("over (1000 ms)") == len(over)
    assert _against_limit(storm[0], None) == "–"
    assert storm_html(load_results(DATA / "results/embedded-run.json")) == ""
    lanes = {m.guest for m in run.migrations if m.id in run.maintenance[0]["migrations"]}
    assert lanes == {"vm1", "vm2", "vm3"}
    assert maintenance_png(sorted(lanes), [[(1.0, 1.1)]] * 3, [], 20.0)[:4] == b"\x89PNG"
