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
from xenlab.measure.prober import Prober
from xenlab.measure.results import MigrationRecord
from xenlab.plugin import LabOptions
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
    return [(h, n, s.value) for g in inventory.guests for h, n, s in
            lab.hypervisor.copies(g.name)]


def _downtime(record: MigrationRecord) -> str:
    return f"{(record.network or {}).get('downtime_ms', float('nan')):.1f} ms"


def test_a_host_is_emptied_while_service_goes_on(
        lab: Lab, inventory: Inventory, maintenance: MaintenanceWindow, phase: str,
        lab_options: LabOptions,
        migrate_wave: Callable[..., list[MigrationRecord]]) -> None:
    window = maintenance
    source = lab.guest_location()  # the host to empty: the one the first guest runs on
    assert source is not None, f"{inventory.domain.name} runs on no single host"
    guests = [Guest(g.name, g.domain.memory, where) for g in inventory.guests
              if (where := lab.guest_location(g.name)) is not None]
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
        for record in migrate_wave("evacuation", wave):
            window.migrations.append(record.id)
            window.say(f"{record.guest} on {record.destination}: network downtime "
                       f"{_downtime(record)}")
            problems += [f"{record.id}: {p}" for p in record.problems]
    problems += judge_evacuation(plan, _copies(lab, inventory))
    assert not problems, "; ".join(problems)


NO_POWER = ("pulls no power in this run (a real lab: only with --lab-allow-power-off and "
            "xenlab_power_off/on for each resource host)")


@pytest.mark.needs("power-control")
def test_guests_go_on_when_the_emptied_host_loses_power(
        lab: Lab, inventory: Inventory, maintenance: MaintenanceWindow, phase: str,
        make_prober: Callable[[str], Prober], guest_data_of: Callable[[str], GuestData]
        ) -> None:
    window = maintenance
    _after(window, "a_host_is_emptied_while_service_goes_on")
    power = lab.power_control()
    if power is None:
        pytest.skip(f"lab {inventory.lab} {NO_POWER}")
    source = window.source
    window.say(power.off(source))
    window.powered_off = source
    assert window.evacuation is not None
    moved = [m.guest for m in window.evacuation.moves]
    probers = {guest: make_prober(guest) for guest in moved}
    for prober in probers.values():  # every guest probed at once, each on its own
        prober.start()
    started = time.time()
    time.sleep(ANSWER_S)
    runs = {guest: prober.stop() for guest, prober in probers.items()}
    problems = []
    for guest, run in runs.items():
        net = figures(run, (started, time.time()))
        window.say(f"{guest} answered {net.received} of {net.sent} probes with {source} off")
        if net.sent == 0 or net.received < ANSWERED * net.sent:
            problems.append(f"{guest} answered {net.received} of {net.sent} probes in "
                            f"{ANSWER_S:g} s after {source} lost its power")
    for guest in moved:
        problems += _disk_survives(guest_data_of(guest), guest, source, window)
    assert not problems, "; ".join(problems)


def _disk_survives(data: GuestData, guest: str, source: str,
                   window: MaintenanceWindow) -> list[str]:
    """A write to the guest's disk, synced, then read back from the disk (not the cache);
    the window says both digests."""
    data.answer_s = DISK_ANSWER_S
    try:
        written = data.write("power-off")
    except (XenlabError, RuntimeError) as exc:  # RuntimeError: testinfra's ssh failed
        return [f"{guest} could not write to its disk with {source} off "
                f"({' '.join(str(exc).split())[-200:]}): its disk depends on {source}"]
    read = data.read_back("power-off")
    window.say(f"{guest} wrote sha256 {written[:12]}, read back {(read or 'nothing')[:12]} "
               "from disk")
    if read != written:
        return [f"{guest}'s disk did not give back what it wrote with {source} off (sha256 "
                f"{written[:12]} written, {(read or 'nothing read')[:12]}): its disk depends "
                f"on {source}"]
    return []


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
    for guest in inventory.guests:
        if (inventory.lvm.vg, guest.lv) not in lvs:
            problems.append(f"{inventory.lvm.vg}/{guest.lv} is not visible "
                            f"({view.view if view else 'no LVM view'}) after {source} came "
                            "back")
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
        migrate_wave: Callable[..., list[MigrationRecord]]) -> None:
    window = maintenance
    _after(window, "a_host_is_emptied_while_service_goes_on")
    if lab.power_control() is not None:
        _after(window, "the_host_comes_back_and_is_checked_before_the_guests_return")
    plan = window.evacuation
    assert plan is not None
    problems = []
    for wave in returns(plan):
        for record in migrate_wave("return", wave):
            window.migrations.append(record.id)
            problems += [f"{record.id}: {p}" for p in record.problems]
    for move in plan.moves:
        where = lab.guest_location(move.guest)
        window.say(f"{move.guest} back on {where}")
        if where != window.source:
            problems.append(f"{move.guest} runs on {where or 'no single host'}, not back on "
                            f"{window.source}")
    assert not problems, "; ".join(problems)
