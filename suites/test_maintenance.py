"""What the lab is for (the article): "hardware can be replaced or upgraded without
interruptions in service", and "you could pull the power on xen_resource_1 and the ping
would keep going". The phases run in order, each only after the one it builds on: the host
the guests run on is emptied (room checked before anything moves, each guest's outage
measured by the meter), its power is pulled while the guests go on (they answer, and their
disks take a write read back from the shared storage after a sync), it comes back and is
checked (it answers, sees the AoE export and the LV, accepts migrations), and the guests
return. Destructive; on a real lab the power pull needs --lab-allow-power-off."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from xenlab.aoe.session import AoeSession
from xenlab.checks.xen import classify_connect, migration_port
from xenlab.errors import XenlabError
from xenlab.inventory import Inventory
from xenlab.lab import Lab
from xenlab.measure.evacuation import (
    Guest,
    MaintenanceWindow,
    judge_evacuation,
    plan_evacuation,
    returns,
)
from xenlab.measure.guestdata import GuestData
from xenlab.measure.ping import figures
from xenlab.measure.plan import Step
from xenlab.measure.prober import Prober
from xenlab.measure.results import MigrationRecord
from xenlab.measure.verdict import judge_record
from xenlab.plugin import LabOptions
from xenlab.report.extras import Attach
from xenlab.storage.lvm import parse_lvs

pytestmark = pytest.mark.destructive

ANSWER_S = 3.0  # how long each guest is pinged while the emptied host has no power
ANSWERED = 0.9  # the share of probes that must come back meanwhile
DISK_ANSWER_S = 30.0  # a write and its read-back with the host off: stuck longer is a loss


def _after(window: MaintenanceWindow, phase: str) -> None:
    reason = window.blocked(phase)
    if reason:
        pytest.fail(reason, pytrace=False)


def _copies(lab: Lab, inventory: Inventory) -> list[tuple[str, str, str]]:
    return [(h, n, s.value) for h, n, s in lab.hypervisor.copies(inventory.domain.name)]


def _move(observed_migration: Callable[[Step], MigrationRecord], lab: Lab,
          inventory: Inventory, attach: Attach, scenario: str, source: str,
          destination: str) -> MigrationRecord:
    record = observed_migration(Step(scenario, 1, source, destination))
    record.problems = judge_record(record, inventory, lab.guest_location())
    record.passed = not record.problems
    attach.migration(record)
    return record


def test_a_host_is_emptied_while_service_goes_on(
        lab: Lab, inventory: Inventory, maintenance: MaintenanceWindow, phase: str,
        lab_options: LabOptions, observed_migration: Callable[[Step], MigrationRecord],
        attach: Attach) -> None:
    window = maintenance
    source = lab.guest_location()
    assert source is not None, f"{inventory.domain.name} runs on no single host"
    guests = [Guest(inventory.domain.name, inventory.domain.memory, source)]
    facts = {h.name: lab.hypervisor.host_facts(h.name) for h in inventory.resources}
    plan = plan_evacuation(source, guests, {h: f.free_memory_mib for h, f in facts.items()},
                           lab_options.evacuation,
                           counted_by=next(iter(facts.values())).free_memory_source)
    window.source, window.evacuation = source, plan
    window.say(f"emptying {source}: " + (", ".join(
        f"{m.guest} -> {m.destination}" for m in plan.moves) or "nothing to move"))
    assert not plan.problems, "nothing moved: " + "; ".join(plan.problems)
    problems = []
    for wave in plan.waves:
        for move in wave:
            record = _move(observed_migration, lab, inventory, attach, "evacuation",
                           move.source, move.destination)
            window.migrations.append(record.id)
            window.say(f"{move.guest} on {move.destination}: network downtime "
                       f"{(record.network or {}).get('downtime_ms', float('nan')):.1f} ms")
            problems += [f"{record.id}: {p}" for p in record.problems]
    problems += judge_evacuation(plan, _copies(lab, inventory))
    assert not problems, "; ".join(problems)


NO_POWER = ("pulls no power in this run (a real lab: only with --lab-allow-power-off and "
            "xenlab_power_off/on for each resource host)")


@pytest.mark.needs("power-control")
def test_guests_go_on_when_the_emptied_host_loses_power(
        lab: Lab, inventory: Inventory, maintenance: MaintenanceWindow, phase: str,
        make_prober: Callable[[], Prober], guest_data: GuestData) -> None:
    window = maintenance
    _after(window, "a_host_is_emptied_while_service_goes_on")
    power = lab.power_control()
    if power is None:
        pytest.skip(f"lab {inventory.lab} {NO_POWER}")
    source = window.source
    window.say(power.off(source))
    window.powered_off = source
    prober = make_prober()
    prober.start()
    started = time.time()
    time.sleep(ANSWER_S)
    run = prober.stop()
    net = figures(run, (started, time.time()))
    window.say(f"{inventory.domain.name} answered {net.received} of {net.sent} probes with "
               f"{source} off")
    problems = []
    if net.sent == 0 or net.received < ANSWERED * net.sent:
        problems.append(f"{inventory.domain.name} answered {net.received} of {net.sent} probes "
                        f"in {ANSWER_S:g} s after {source} lost its power")
    guest_data.answer_s = DISK_ANSWER_S
    try:
        written = guest_data.write("power-off")
    except (XenlabError, RuntimeError) as exc:  # RuntimeError: testinfra's ssh failed
        written = ""
        problems.append(f"{inventory.domain.name} could not write to its disk with {source} "
                        f"off ({' '.join(str(exc).split())[-200:]}): its disk depends on "
                        f"{source}")
    read = guest_data.read_back("power-off") if written else None
    window.say(f"{inventory.domain.name} wrote sha256 {(written or 'nothing')[:12]}, read "
               f"back {(read or 'nothing')[:12]} from disk")
    if written and read != written:
        problems.append(f"{inventory.domain.name}'s disk did not give back what it wrote with "
                        f"{source} off (sha256 {written[:12]} written, "
                        f"{(read or 'nothing read')[:12]}): its disk depends on {source}")
    assert not problems, "; ".join(problems)


@pytest.mark.needs("power-control")
def test_the_host_comes_back_and_is_checked_before_the_guests_return(
        lab: Lab, inventory: Inventory, maintenance: MaintenanceWindow, phase: str) -> None:
    window = maintenance
    power = lab.power_control()
    if power is None:
        pytest.skip(f"lab {inventory.lab} {NO_POWER}")
    _after(window, "guests_go_on_when_the_emptied_host_loses_power")
    source = window.source
    window.say(power.on(source))
    window.powered_off = ""
    problems = []
    host = lab.host(source)  # its shell again: the host rebooted
    if host.run("true").rc != 0:
        problems.append(f"{source} runs no command after power on")
    aoe = inventory.aoe
    session = AoeSession(host, source, aoe.initiator_interface, lab.probe_python)
    answers = [f for f in session.query_config(window=1.0) if (f.shelf, f.slot) ==
               (aoe.shelf, aoe.slot)]
    if len(answers) != 1:
        problems.append(f"{source} sees {len(answers)} answers of AoE target "
                        f"{aoe.shelf}.{aoe.slot} after power on, not one")
    views = lab.lvm_views()
    view = next((v for v in views if v.view == source), views[0] if views else None)
    lvs = {(lv.vg, lv.name) for lv in parse_lvs(view.lvs)} if view else set()
    if (inventory.lvm.vg, inventory.lvm.lv) not in lvs:
        problems.append(f"{inventory.lvm.vg}/{inventory.lvm.lv} is not visible "
                        f"({view.view if view else 'no LVM view'}) after {source} came back")
    others = [h.name for h in inventory.resources if h.name != source]
    port = migration_port(lab.features, inventory.relocation_port)
    with lab.relocation_listener(source):
        result = lab.host(others[0]).run("timeout 3 bash -c %s",
                                         f"</dev/tcp/{inventory.host(source).address}/{port}")
    state = classify_connect(result.rc, result.stderr)
    if state != "open":
        problems.append(f"migration port {port} of {source} is {state} from {others[0]}")
    window.say(f"{source} checked: " + ("; ".join(problems) or "answers, sees the AoE "
                                        "target and the LV, accepts migrations"))
    assert not problems, "; ".join(problems)


def test_the_guests_return_to_the_host_they_left(
        lab: Lab, inventory: Inventory, maintenance: MaintenanceWindow, phase: str,
        observed_migration: Callable[[Step], MigrationRecord], attach: Attach) -> None:
    window = maintenance
    _after(window, "a_host_is_emptied_while_service_goes_on")
    if lab.power_control() is not None:
        _after(window, "the_host_comes_back_and_is_checked_before_the_guests_return")
    plan = window.evacuation
    assert plan is not None
    problems = []
    for wave in returns(plan):
        for move in wave:
            record = _move(observed_migration, lab, inventory, attach, "return", move.source,
                           move.destination)
            window.migrations.append(record.id)
            problems += [f"{record.id}: {p}" for p in record.problems]
    where = lab.guest_location()
    window.say(f"{inventory.domain.name} back on {where}")
    if where != window.source:
        problems.append(f"{inventory.domain.name} runs on {where or 'no single host'}, not "
                        f"back on {window.source}")
    assert not problems, "; ".join(problems)
