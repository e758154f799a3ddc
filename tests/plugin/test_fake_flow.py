"""The whole flow through the fake lab and fake hypervisor (xenlab/lab/fake.py), with the
real plugin, fixtures and suites under pytester: the plan, each migration observed by the
meter, the certification verdict, the fault judge, keep, and the teardown that saves the
lab's logs. No root, no network: the fake world's outages are what the meter measures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
FIRST = "::test_live_migration[idle-rt1-xen_resource_1->xen_resource_2]"

INSTRUMENTS = '''
import pytest

from xenlab.hypervisor.fake import FakeMigration
from xenlab.lab.fake import FakeGuestData, FakeProber, FakeStream, FakeWitness

SCRIPT = [{script}]


@pytest.fixture(scope="session", autouse=True)
def _fake_script(lab):
    lab.the_world.script[:] = SCRIPT


@pytest.fixture(scope="session")
def make_prober(lab, inventory, lab_options):
    return lambda guest="": FakeProber(lab.the_world, str(inventory.guest.address),
                                       lab_options.interval_ms / 1000.0)


@pytest.fixture(scope="session")
def make_stream(lab, lab_options):
    return lambda guest="": FakeStream(lab.the_world, lab_options.tcp_interval_ms / 1000.0)


@pytest.fixture(scope="session")
def guest_witness(lab):
    return FakeWitness(lab.the_world)


@pytest.fixture
def guest_data(lab):
    return FakeGuestData(lab.the_world)


@pytest.fixture(scope="session")
def host_facts(lab, results):  # no machines to read a kernel from: the hypervisor's word
    for name in lab.the_world.hosts:
        told = lab.hypervisor.host_facts(name)
        results.hosts[name] = {{"hypervisor": told.version, "toolstack": told.toolstack}}
    return results.hosts
'''


def fake_inventory(name: str) -> str:
    text = (REPO / "inventories" / "embedded.yml").read_text()
    text = re.sub(r"lab: embedded ", f"lab: {name} ", text)
    text = text.replace("kind: embedded", "kind: fake").replace("toolstack: qemu", "toolstack: fake")
    return text


class FakeRun:
    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                 name: str) -> None:
        monkeypatch.setenv("PYTHONPATH", str(REPO))
        self.pytester = pytester
        self.name = name
        self.root = pytester.path / "labs"
        self.inventory = pytester.path / "fake.yml"
        self.inventory.write_text(fake_inventory(name))
        self.results = pytester.path / "out" / "results.json"
        pytester.makeconftest((REPO / "conftest.py").read_text())
        (pytester.path / "suites").mkdir()

    def run(self, suite: str, *options: str, script: str = "", test: str = "") -> pytest.RunResult:
        shutil.copy(REPO / "suites" / suite, self.pytester.path / "suites" / suite)
        (self.pytester.path / "suites" / "conftest.py").write_text(
            INSTRUMENTS.format(script=script))
        return self.pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-rA", f"suites/{suite}{test}",
            "--lab-inventory", str(self.inventory), "--lab-root", str(self.root),
            "--lab-results", str(self.results), "--lab-report", "none",
            "--lab-scenarios", "idle", "--lab-roundtrips", "1", *options)

    def migrations(self) -> list[dict[str, object]]:
        data = json.loads(self.results.read_text())
        migrations: list[dict[str, object]] = data["migrations"]
        return migrations

    @property
    def directory(self) -> Path:
        return self.root / self.name


def test_a_certification_through_the_fakes_measures_what_the_fake_did(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeRun(pytester, monkeypatch, "fake-ok")
    result = run.run("test_migration.py",
                     script="FakeMigration(downtime_ms=40, total_ms=1500), "
                            "FakeMigration(downtime_ms=70, total_ms=1500)")
    result.assert_outcomes(passed=2, skipped=1)  # the baseline comparison: none given
    first, second = run.migrations()
    assert (first["source"], first["destination"]) == ("xen_resource_1", "xen_resource_2")
    assert (second["source"], second["destination"]) == ("xen_resource_2", "xen_resource_1")
    for record, pause in ((first, 40), (second, 70)):
        assert record["passed"] and record["status"] == "completed"
        hypervisor, network = record["hypervisor"], record["network"]
        assert isinstance(hypervisor, dict) and isinstance(network, dict)
        assert hypervisor["toolstack"] == "fake"
        reported = hypervisor["downtime_ms"]  # the pause as it was: a late wake-up lengthens it
        assert pause <= reported < pause + 50, hypervisor
        # the meter sees the pause and the network's 5 ms after it, at 1 ms resolution
        assert reported + 3 <= network["downtime_ms"] <= reported + 8, network
        assert record["tcp"]["longest_stall_ms"] >= pause  # type: ignore[index]
    assert not run.directory.exists()  # torn down
    assert not (run.results.parent / "lab-logs").exists()  # nothing failed: no logs kept


def test_a_verdict_that_fails_keeps_the_labs_logs_and_still_tears_down(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeRun(pytester, monkeypatch, "fake-slow")
    result = run.run("test_migration.py", script="FakeMigration(downtime_ms=1300, total_ms=1600)")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    out = result.stdout.str()
    assert re.search(r"network downtime 13\d\d\.\d ms > limit 1000 ms", out), out
    first = run.migrations()[0]
    assert not first["passed"] and first["hypervisor"]["downtime_ms"] >= 1300  # type: ignore[index]
    events = run.results.parent / "lab-logs" / "fake-slow" / "fake-events.log"
    assert "fake migrate vm1 xen_resource_1 -> xen_resource_2" in events.read_text()
    assert (run.results.parent / "lab-logs" / "fake-slow" / "lab.json").is_file()
    assert not run.directory.exists()


def test_a_failed_migration_is_said_and_the_next_step_names_it(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeRun(pytester, monkeypatch, "fake-fail")
    result = run.run("test_migration.py",
                     script='FakeMigration(fail="destination refused the domain")')
    result.assert_outcomes(failed=2, skipped=1)
    out = result.stdout.str()
    assert "status failed: destination refused the domain" in out
    assert ("not run: vm1 is on xen_resource_1, not on xen_resource_2, before "
            "idle-rt1-xen_resource_2->xen_resource_1: the migration "
            "idle-rt1-xen_resource_1->xen_resource_2 failed") in out, out


def test_a_guest_that_never_comes_back_is_an_open_outage_not_a_small_one(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeRun(pytester, monkeypatch, "fake-lost")
    result = run.run("test_migration.py", script="FakeMigration(never_back=True)", test=FIRST)
    result.assert_outcomes(failed=1)
    assert "had not come back when the meter stopped" in result.stdout.str()
    network = run.migrations()[0]["network"]
    assert isinstance(network, dict) and network["gap_open"]
    assert network["downtime_ms"] >= 9000, network  # the whole 10 s after, not 0.2 ms


def test_the_fault_judge_through_the_fakes_and_its_self_test(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeRun(pytester, monkeypatch, "fake-faults")
    result = run.run("test_faults.py", "--lab-fault-suite")
    result.assert_outcomes(passed=3, skipped=1)  # the storage outage: no storage-outage here
    assert "a guest disk that goes through AoE" in result.stdout.str()
    faults = json.loads(run.results.read_text())["faults"]
    assert [f["fault"] for f in faults] == ["link-cut", "destination-killed", "cancel"]
    assert all(f["status"] in ("failed", "cancelled") and not f["problems"] for f in faults)
    lie = run.run("test_faults.py", "--lab-fault-suite", "--lab-fault-selftest",
                  "duplicate-guest", test="::test_migration_fault_survived[link-cut]")
    lie.assert_outcomes(failed=1)
    assert "runs on xen_resource_1, xen_resource_2; it must run on exactly one host" in (
        lie.stdout.str())


def test_a_kept_fake_lab_stays_until_lab_down(pytester: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeRun(pytester, monkeypatch, "fake-kept")
    result = run.run("test_migration.py", "--lab-keep", test=FIRST)
    result.assert_outcomes(passed=1)
    assert "lab 'fake-kept' kept up; remove it with `xenlab lab down --lab fake-kept`" in (
        result.stdout.str() + result.stderr.str())
    journal = json.loads((run.directory / "lab.json").read_text())
    assert journal["kept"] is True
    down = subprocess.run([sys.executable, "-m", "xenlab.cli", "lab", "down", "--lab",
                           "fake-kept", "--root", str(run.root)], capture_output=True,
                          text=True, cwd=REPO, check=False)
    assert down.returncode == 0, down.stderr
    assert not run.directory.exists()


def test_the_report_and_the_certificate_of_a_fake_certification(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """report.html, certificate.pdf, results.json and junit.xml side by side; the page read
    in Chromium at two widths; the certificate's one page read back as text."""
    import hashlib

    from tests.pagecheck import CHROMIUM, pdf_pages, pdf_text, view

    run = FakeRun(pytester, monkeypatch, "fake-paper")
    out = run.results.parent
    result = run.run("test_migration.py", "--lab-report", str(out / "report.html"),
                     "--lab-scenarios", "idle,memory-dirty",
                     # long migrations, short pauses: a loaded machine's late wake-ups
                     # stay far inside the loss limit
                     script="FakeMigration(downtime_ms=20, total_ms=1000), "
                            "FakeMigration(downtime_ms=30, total_ms=1000)")
    result.assert_outcomes(passed=4, skipped=1)
    assert {p.name for p in out.iterdir()} >= {"report.html", "certificate.pdf",
                                               "results.json", "junit.xml"}
    results = json.loads(run.results.read_text())
    assert results["run"]["verdict"] == {"certified": True, "ran": 4, "failed": []}
    assert results["lab"]["inventory_sha256"] == hashlib.sha256(
        run.inventory.read_bytes()).hexdigest()
    assert [c["outcome"] for c in results["checks"]] == ["passed"] * 4 + ["skipped"]
    html = (out / "report.html").read_text()
    assert html.index('id="xenlab-matrix"') < html.index('id="xenlab-latency"')
    assert "No log output captured." not in html
    pdf = out / "certificate.pdf"
    assert pdf_pages(pdf) == 1
    text = pdf_text(pdf)
    assert "CERTIFIED" in text and "fake-paper" in text
    assert hashlib.sha256(run.results.read_bytes()).hexdigest() in text
    assert "Limits: network downtime 1000 ms" in text and "memory-dirty" in text
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: `make setup` installs it")
    for page in view(out / "report.html", pytester.path):
        assert all(page.visible.values()), (page.width, page.visible)
        assert page.broken_images == [] and page.images >= 6  # 4 timelines, split, strip
        assert page.overflow_px == 0, f"{page.width} px: the page scrolls sideways"
        assert not page.blank


MAINTENANCE = "test_maintenance.py"
EVACUATE_AND_PULL = ("-k", "emptied_while_service or loses_power")


def test_the_emptied_hosts_power_is_pulled_while_the_guest_goes_on(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeRun(pytester, monkeypatch, "fake-power")
    result = run.run(MAINTENANCE, *EVACUATE_AND_PULL, script="FakeMigration(downtime_ms=30)")
    result.assert_outcomes(passed=2, deselected=2)
    data = json.loads(run.results.read_text())
    window = data["maintenance"][0]
    assert window["source"] == "xen_resource_1" and window["done"] == [
        "a_host_is_emptied_while_service_goes_on",
        "guests_go_on_when_the_emptied_host_loses_power"]
    assert window["moves"] == [{"guest": "vm1", "source": "xen_resource_1",
                                "destination": "xen_resource_2"}]
    assert any("xen_resource_1 powered off" in e["what"] for e in window["events"])
    # the session gave the emptied host its power back (the phase that would was not run)
    assert any("xen_resource_1 powered on" in e["what"] for e in window["events"])
    evacuation = data["migrations"][0]
    assert evacuation["scenario"] == "evacuation" and evacuation["passed"]


def test_a_guest_whose_disk_is_on_the_host_it_left_fails_the_power_pull(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The self-test: the guest's disk is secretly local to the source, so with the source's
    power off its write cannot be read back, and the check must say so."""
    run = FakeRun(pytester, monkeypatch, "fake-local")
    result = run.run(MAINTENANCE, *EVACUATE_AND_PULL, script=(
        "FakeMigration()]\n\n\n@pytest.fixture(scope='session', autouse=True)\n"
        "def _local_disk(lab):\n    lab.the_world.disk_on = 'xen_resource_1'\n_ = ["))
    result.assert_outcomes(passed=1, failed=1, deselected=2)
    assert "vm1's disk did not give back what it wrote with xen_resource_1 off" in (
        result.stdout.str())
    assert "its disk depends on xen_resource_1" in result.stdout.str()


def test_no_room_on_any_other_host_moves_nothing(pytester: pytest.Pytester,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeRun(pytester, monkeypatch, "fake-full")
    result = run.run(MAINTENANCE, *EVACUATE_AND_PULL, script=(
        "]\n\n\n@pytest.fixture(scope='session', autouse=True)\n"
        "def _full(lab):\n    lab.the_world.free_memory_mib['xen_resource_2'] = 100\n_ = ["))
    result.assert_outcomes(failed=2, deselected=2)
    out = result.stdout.str()
    assert ("nothing moved: vm1 needs 256 MiB and no other host has room for it (free, as "
            "the fake hypervisor's count counts it: xen_resource_2 100 MiB)") in out, out
    assert "not run: the phase 'a_host_is_emptied_while_service_goes_on' failed" in out
    assert json.loads(run.results.read_text())["migrations"] == []
