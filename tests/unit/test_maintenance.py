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


def test_a_dom0_back_from_a_power_pull_is_set_up_again_without_touching_storage() -> None:
    """After its power comes back a dom0 needs what its boot would bring on a server: the
    aoe driver, the export, every guest's LV active, the domain configs; nothing that
    creates or writes storage, which the guests run on meanwhile."""
    from xenlab.provision.steps import restore_steps

    inventory = load_inventory(REPO / "inventories/embedded-xen.yml")
    steps = restore_steps(inventory, "/dev/etherd/e0.0", "xen_resource_1", "xl")
    assert [s.name for s in steps] == [
        "aoe driver loaded", "/dev/etherd/e0.0 discovered", "/dev/vg_xen/lv_vm1 active",
        "/dev/vg_xen/lv_vm2 active", "domain config /etc/xen/vm1.cfg",
        "domain config /etc/xen/vm2.cfg"]
    assert {s.host for s in steps} == {"xen_resource_1"}
    assert all(s.wipes is None for s in steps)
    actions = " ".join(s.act for s in steps)
    for writes in ("pvcreate", "vgcreate", "lvcreate", "mkfs", "tar "):
        assert writes not in actions, writes


def test_the_embedded_xen_lab_refuses_guests_that_do_not_fit_on_one_host(
        tmp_path: Path) -> None:
    from xenlab.inventory.load import parse_inventory
    from xenlab.lab.embedded_xen import EmbeddedXenLab
    from xenlab.progress import Progress

    text = (REPO / "inventories/embedded-xen.yml").read_text()
    first = text.index("memory: 128") + 1  # vm2's is the second
    for memory, said in (
            ("256", "the guests ask for 384 MiB together (vm1 128, vm2 256); an embedded Xen "
                    "host has room for 360 MiB"),
            ("96", "vm2 has 96 MiB; a guest of the embedded Xen lab needs at least 128 MiB")):
        second = text.index("memory: 128", first)
        changed = text[:second] + f"memory: {memory}" + text[second + len("memory: 128"):]
        inventory = parse_inventory(changed, str(tmp_path / "big.yml"))
        with pytest.raises(LabError) as info:
            EmbeddedXenLab(inventory, progress=Progress(), root=tmp_path / "labs",
                           cache=tmp_path / "cache")
        assert str(info.value).startswith(f"{tmp_path / 'big.yml'}: {said}"), str(info.value)
    assert not (tmp_path / "labs").exists()  # nothing was built


def test_the_dom0_power_pull_kills_only_the_machine_its_journal_recorded(
        tmp_path: Path) -> None:
    """Decoys: a process recorded as another host's, one whose record's start time is not
    its own (a reused PID), and a host that is not a resource host: none is signalled."""
    import subprocess

    from xenlab.lab import journal as jr
    from xenlab.lab.embedded_xen import XEN_HOST, EmbeddedXenLab
    from xenlab.progress import Progress

    inventory = load_inventory(REPO / "inventories/embedded-xen.yml")
    lab = EmbeddedXenLab(inventory, progress=Progress(), root=tmp_path / "labs",
                         cache=tmp_path / "cache")
    lab.journal = jr.Journal.create(inventory.lab, lab.directory)
    machine, other, reused = (subprocess.Popen(["sleep", "60"]) for _ in range(3))
    try:
        lab.journal.add_process(machine.pid, "xen_resource_1", XEN_HOST)
        lab.journal.add_process(other.pid, "xen_resource_2", "host namespaces")
        lab.journal.processes.append(jr.ProcessRecord(reused.pid, 1, "xen_resource_2",
                                                      XEN_HOST))
        power = lab.power_control()
        said = power.off("xen_resource_1")
        assert machine.wait(timeout=10) == -9, said  # SIGKILL: no shutdown
        assert said == (f"xen_resource_1 powered off: SIGKILL to its QEMU machine (pid "
                        f"{machine.pid}), no shutdown")
        with pytest.raises(LabError, match=r"has 0 running machines .* it is not on"):
            power.off("xen_resource_1")
        with pytest.raises(LabError, match="xen_resource_2 has 0 running machines"):
            power.off("xen_resource_2")  # its one record is not the process of that PID
        with pytest.raises(LabError, match="xen_storage is not a resource host"):
            power.off("xen_storage")
        assert other.poll() is None and reused.poll() is None
    finally:
        for proc in (machine, other, reused):
            proc.kill()
            proc.wait()
