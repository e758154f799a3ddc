"""The maintenance window's pure parts: where the guests go (room first), the waves, the
way back, the judgement after the moves; the real lab's power commands (real `sh`, decoy
files in a temporary directory) and their inventory fields."""

from __future__ import annotations

from pathlib import Path

import pytest

from xenlab.errors import InventoryError, LabError
from xenlab.hosts.runner import Runner
from xenlab.inventory import load_inventory
from xenlab.lab.power import CommandPower
from xenlab.measure.evacuation import (
    Guest,
    MaintenanceWindow,
    Move,
    judge_evacuation,
    plan_evacuation,
    returns,
)

REPO = Path(__file__).parents[2]
GUESTS = [Guest("vm1", 256, "r1"), Guest("vm2", 512, "r1"), Guest("vm3", 128, "r1"),
          Guest("other", 64, "r2")]


def test_the_largest_guest_goes_first_to_the_first_host_with_room() -> None:
    plan = plan_evacuation("r1", GUESTS, {"r1": 0, "r2": 600, "r3": 400})
    assert plan.problems == ()
    assert plan.moves == [Move("vm2", "r1", "r2"), Move("vm1", "r1", "r3"),
                          Move("vm3", "r1", "r3")]
    assert [len(w) for w in plan.waves] == [1, 1, 1]  # sequential
    assert [len(w) for w in plan_evacuation("r1", GUESTS, {"r2": 600, "r3": 400},
                                            at_a_time=2).waves] == [2, 1]
    assert returns(plan)[0] == (Move("vm2", "r2", "r1"),)


def test_no_room_moves_nothing_and_says_what_is_free() -> None:
    plan = plan_evacuation("r1", GUESTS, {"r2": 600, "r3": None}, counted_by="xl info")
    assert plan.waves == ()
    assert plan.problems == (
        "vm1 needs 256 MiB and no other host has room for it (free, as xl info counts it: "
        "r2 88 MiB, r3 unknown MiB)",
        "vm3 needs 128 MiB and no other host has room for it (free, as xl info counts it: "
        "r2 88 MiB, r3 unknown MiB)")
    assert plan_evacuation("r1", GUESTS, {"r1": 4096}).problems[0] == \
        "no host besides r1 to move its guests to"
    with pytest.raises(ValueError):
        plan_evacuation("r1", GUESTS, {"r2": 600}, at_a_time=0)


def test_after_the_moves_the_host_is_empty_and_each_guest_runs_once_where_planned() -> None:
    plan = plan_evacuation("r1", GUESTS[:1], {"r2": 600})
    assert judge_evacuation(plan, [("r2", "vm1", "running")]) == []
    left = judge_evacuation(plan, [("r1", "vm1", "paused"), ("r2", "vm1", "running")])
    assert left == ["r1 still holds vm1: it is not empty"]
    twice = judge_evacuation(plan, [("r2", "vm1", "running"), ("r3", "vm1", "running")])
    assert twice == ["vm1 runs on r2, r3; it must run exactly once, on r2"]
    gone = judge_evacuation(plan, [])
    assert gone == ["vm1 runs on no host; it must run exactly once, on r2"]


def test_a_phase_builds_on_the_one_before() -> None:
    window = MaintenanceWindow()
    assert window.blocked("evacuate") == "not run: 'evacuate' did not run"
    window.failed = "evacuate"
    assert window.blocked("evacuate") == "not run: the phase 'evacuate' failed"
    window.done.append("evacuate")
    assert window.blocked("evacuate") is None


def _real(tmp_path: Path, off: str, on: str, hosts: tuple[str, ...] = ("xen_resource_1",
                                                                          "xen_resource_2")) -> Path:
    """inventories/xl.yml with power commands for `hosts` (`{host}` in them is the name)."""
    import json

    text = (REPO / "inventories/xl.yml").read_text()
    for host in hosts:
        text = text.replace(f"{host}: {{", f"{host}: {{xenlab_power_off: "
                            f"{json.dumps(off.format(host=host))}, xenlab_power_on: "
                            f"{json.dumps(on.format(host=host))}, ")
    inventory = tmp_path / "real.yml"
    inventory.write_text(text)
    return inventory


def test_the_power_commands_run_here_and_on_waits_until_the_host_answers(tmp_path: Path) -> None:
    from xenlab.lab.select import lab_features

    marks = tmp_path / "marks"
    marks.mkdir()
    inventory = load_inventory(str(_real(tmp_path, f"touch {marks}/{{host}}.off",
                                         f"touch {marks}/{{host}}.on")))
    assert "power-control" in lab_features(inventory)
    asked = []

    def answers(host: str) -> bool:
        asked.append(host)
        return len(asked) > 1  # it comes back at the second look

    power = CommandPower(inventory, Runner("controller"), answers, back_up_s=30)
    said = power.off("xen_resource_1")
    assert (marks / "xen_resource_1.off").is_file() and not (marks / "xen_resource_2.off").exists()
    assert said == f"`touch {marks}/xen_resource_1.off` (xenlab_power_off of xen_resource_1)"
    assert "xen_resource_1 answers again after" in power.on("xen_resource_1")
    assert (marks / "xen_resource_1.on").is_file() and asked == ["xen_resource_1"] * 2
    failing = CommandPower(load_inventory(str(_real(tmp_path, "exit 3", "true"))),
                           Runner("controller"), answers)
    with pytest.raises(LabError, match="power off of xen_resource_2 failed"):
        failing.off("xen_resource_2")


def test_power_commands_are_refused_where_they_do_not_belong(tmp_path: Path) -> None:
    from xenlab.lab.select import lab_features

    one = load_inventory(str(_real(tmp_path, "true", "true", hosts=("xen_resource_1",))))
    assert "power-control" not in lab_features(one)  # every resource host needs them
    half = (REPO / "inventories/xl.yml").read_text().replace(
        "xen_resource_1: {", 'xen_resource_1: {xenlab_power_off: "ipmitool power off", ')
    (tmp_path / "half.yml").write_text(half)
    with pytest.raises(InventoryError, match="xenlab_power_on: expected a command"):
        load_inventory(str(tmp_path / "half.yml"))
    built = (REPO / "inventories/embedded.yml").read_text().replace(
        "xen_resource_1: {ansible_host: 198.18.0.11}",
        'xen_resource_1: {ansible_host: 198.18.0.11, xenlab_power_off: "x", '
        'xenlab_power_on: "y"}')
    (tmp_path / "built.yml").write_text(built)
    with pytest.raises(InventoryError, match="a lab built here powers its hosts itself"):
        load_inventory(str(tmp_path / "built.yml"))


def test_the_migration_port_is_the_labs_own() -> None:
    from xenlab.checks.xen import migration_port

    assert migration_port(frozenset({"qemu-incoming"}), 8002) == 8002
    assert migration_port(frozenset({"xend-relocation"}), 8002) == 8002
    assert migration_port(frozenset({"xl-ssh-transport"}), 8002) == 22
    assert migration_port(frozenset({"libvirt-remote"}), 8002) == 22


def test_the_power_pull_ends_nothing_outside_the_labs_namespaces(tmp_path: Path) -> None:
    """A host whose namespace lacks the lab's prefix (a decoy): refused before any PID is
    listed or signalled."""
    from types import SimpleNamespace

    from xenlab.inventory.model import Role
    from xenlab.lab.embedded import NamespacePower

    runs: list[list[str]] = []
    host = SimpleNamespace(namespace="decoy--xen_resource_1", anchor_pid=1, port="p1",
                           spec=SimpleNamespace(role=Role.RESOURCE))
    lab = SimpleNamespace(hosts={"xen_resource_1": host},
                          inventory=SimpleNamespace(lab="mine"),
                          local=SimpleNamespace(run=lambda argv: runs.append(argv)))
    with pytest.raises(LabError, match="is not a namespace of lab mine"):
        NamespacePower(lab).off("xen_resource_1")  # type: ignore[arg-type]
    assert runs == []


def test_the_certificate_never_writes_through_a_symlink_or_over_a_directory(
        tmp_path: Path) -> None:
    from xenlab.errors import ReportError
    from xenlab.report.certificate import write_certificate

    precious = tmp_path / "precious"
    precious.write_text("not a certificate")
    link = tmp_path / "certificate.pdf"
    link.symlink_to(precious)
    results = REPO / "tests/data/results/embedded-run.json"
    with pytest.raises(ReportError, match="is a symlink; it is left as it is"):
        write_certificate(results, link)
    (tmp_path / "dir.pdf").mkdir()
    with pytest.raises(ReportError, match="is not a file"):
        write_certificate(results, tmp_path / "dir.pdf")
    assert precious.read_text() == "not a certificate" and link.is_symlink()
