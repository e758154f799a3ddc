"""virsh's outputs, in libvirt's own layouts (tests/data/libvirt/README.md says which file
comes from where), and the libvirt driver's commands and migration record."""

from __future__ import annotations

import dataclasses
import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
from testinfra.host import Host

from xenlab.errors import LabError, ParseError
from xenlab.hypervisor.base import DomainState
from xenlab.hypervisor.domconfig import parse_domain_config, render_domain_config, render_libvirt_xml
from xenlab.hypervisor.virsh import (
    VirshDomain,
    VirshDriver,
    destination_uri,
    domjobinfo_argv,
    listed_state,
    migrate_argv,
    parse_domjobinfo,
    parse_virsh_list,
    shell_command,
    size_to_bytes,
    virsh_state,
)
from xenlab.inventory import load_inventory

DATA = Path(__file__).parents[1] / "data" / "libvirt"


def _read(name: str) -> str:
    return (DATA / name).read_text()


# -- virsh list --all --------------------------------------------------------------------------


def test_list_all_reads_every_state_and_inactive_ids() -> None:
    rows = parse_virsh_list(_read("virsh-list-all.txt"))
    assert [(d.domid, d.name, d.state) for d in rows] == [
        (0, "Domain-0", "running"),
        (3, "vm1", "running"),
        (4, "web-frontend", "idle"),
        (7, "db", "paused"),
        (9, "batch", "in shutdown"),
        (12, "sleepy", "pmsuspended"),
        (15, "broken", "crashed"),
        (None, "vm2", "shut off"),
    ]
    assert not rows[-1].active and rows[1].active


def test_list_all_states_map_to_domain_states() -> None:
    by_name = {d.name: listed_state(d) for d in parse_virsh_list(_read("virsh-list-all.txt"))}
    assert by_name == {
        "Domain-0": DomainState.RUNNING,
        "vm1": DomainState.RUNNING,
        "web-frontend": DomainState.RUNNING,  # idle: blocked on I/O or asleep, alive
        "db": DomainState.PAUSED,
        "batch": DomainState.STOPPED,
        "sleepy": DomainState.PAUSED,
        "broken": DomainState.STOPPED,
        "vm2": DomainState.STOPPED,
    }
    assert listed_state(None) is DomainState.ABSENT


@pytest.mark.parametrize(("word", "state"), [
    ("running", DomainState.RUNNING), ("blocked", DomainState.RUNNING),
    ("idle", DomainState.RUNNING), ("paused", DomainState.PAUSED),
    ("shut off", DomainState.STOPPED), ("crashed", DomainState.STOPPED),
    ("in shutdown", DomainState.STOPPED),
])
def test_virsh_state_words(word: str, state: DomainState) -> None:
    assert virsh_state(word) is state


def test_unknown_state_word_is_named() -> None:
    with pytest.raises(ParseError, match="'hibernating'"):
        virsh_state("hibernating")


def test_list_captured_from_virsh_9_test_driver() -> None:
    rows = parse_virsh_list(_read("virsh-list-all-testdriver.txt"))
    assert rows == [VirshDomain("test", 1, "running"),
                    VirshDomain("xen-guest-paused", 2, "paused"),
                    VirshDomain("vm2", None, "shut off")]


def test_list_in_the_older_fixed_width_layout() -> None:
    rows = parse_virsh_list(_read("virsh-list-all-legacy.txt"))
    assert [(d.name, d.domid, listed_state(d)) for d in rows] == [
        ("Domain-0", 0, DomainState.RUNNING), ("vm1", 2, DomainState.PAUSED),
        ("vm2", None, DomainState.STOPPED)]


def test_list_without_domains_is_empty() -> None:
    assert parse_virsh_list(_read("virsh-list-all-empty.txt")) == []


def test_list_keeps_names_with_spaces() -> None:
    text = " Id   Name         State\n---------------------------\n 4    my guest 1   shut off\n"
    assert parse_virsh_list(text) == [VirshDomain("my guest 1", 4, "shut off")]


@pytest.mark.parametrize(("text", "problem"), [
    ("", "header"),
    ("Name ID Mem VCPUs State Time(s)\nDomain-0 0 1024 1 r----- 1.0\n", "header"),
    (" Id   Name   State\n 1    vm1    running\n", "dashed line"),
    (" Id   Name   State\n------------------\n 1    vm1    hibernating\n",
     "'1    vm1    hibernating'"),
    (" Id   Name   State\n------------------\n x    vm1    running\n", "unexpected row"),
])
def test_malformed_list_is_refused_with_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ParseError, match=problem) as caught:
        parse_virsh_list(text)
    assert caught.value.what == "virsh list"


# -- virsh domjobinfo --completed ----------------------------------------------------------------


def test_completed_outgoing_migration_figures() -> None:
    job = parse_domjobinfo(_read("domjobinfo-completed-outgoing.txt"))
    assert job.completed and job.has_job
    assert job.operation == "Outgoing migration"
    assert (job.time_elapsed_ms, job.time_elapsed_net_ms) == (2417, 2410)
    assert (job.total_downtime_ms, job.downtime_net_ms, job.setup_time_ms) == (16, 9, 11)
    assert job.expected_downtime_ms is None
    # sizes: the printed digits times the unit, exactly (279.566 * 2**20 = 293146198.016)
    assert job.data_processed == 293_146_198
    assert job.data_remaining == 0
    assert job.data_total == 1_090_921_693  # 1.016 GiB
    assert job.memory_processed == 293_146_198
    assert job.memory_total == 1_090_921_693
    assert job.memory_bandwidth == 123_104_920  # 117.402 MiB/s in bytes/s
    assert job.normal_data == 290_700_919  # 277.234 MiB
    assert (job.dirty_rate, job.page_size, job.iteration, job.postcopy_requests) == (0, 4096, 3, 0)
    assert (job.constant_pages, job.normal_pages) == (195234, 70972)
    assert job.raw == {"Auto converge throttle": "20"}  # not known here: kept as text


def test_completed_job_of_an_older_libvirt_without_operation() -> None:
    job = parse_domjobinfo(_read("domjobinfo-completed-no-operation.txt"))
    assert job.completed and job.operation is None
    assert job.data_processed == 4_429_185_024  # 4.125 GiB: exactly 4.125 * 2**30
    assert (job.time_elapsed_ms, job.total_downtime_ms, job.setup_time_ms) == (65004, 302, 4)
    assert job.time_elapsed_net_ms is None and job.raw == {}


def test_job_type_none_means_no_completed_job() -> None:
    job = parse_domjobinfo(_read("domjobinfo-none.txt"))
    assert job.job_type == "None" and not job.has_job and not job.completed
    assert job.time_elapsed_ms is None and job.data_processed is None


@pytest.mark.parametrize(("number", "unit", "expected"), [
    ("0.000", "B", 0), ("1023.000", "B", 1023), ("0.500", "KiB", 512), ("1.000", "MiB", 2**20),
    ("1.234", "GiB", 1_324_997_411), ("2.000", "TiB", 2 * 2**40),
])
def test_sizes_convert_with_their_units(number: str, unit: str, expected: int) -> None:
    assert size_to_bytes(number, unit) == expected


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty output"),
    ("Operation:        Outgoing migration\n", "not 'Job type"),
    ("Job type:         Sideways\n", "unknown job type 'Sideways'"),
    ("Job type: 3\n\noperation: 5\n", "--rawstats"),
    ("Job type:         Completed\nData processed:   1.2 XB\n", "'Data processed' is '1.2 XB'"),
    ("Job type:         Completed\nTime elapsed:     12 s\n", "'Time elapsed' is '12 s'"),
    ("Job type:         Completed\nTotal downtime:   16 ms\n", "without 'Time elapsed"),
    ("Job type:         Completed\nTime elapsed:     5 ms\nthe rest was cut\n",
     "'the rest was cut' is not"),
    ("Job type:         Completed\nTime elapsed:     5 ms\nTime elapsed:     6 ms\n", "twice"),
])
def test_malformed_domjobinfo_is_refused_with_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ParseError, match=problem) as caught:
        parse_domjobinfo(text)
    assert caught.value.what == "virsh domjobinfo"


def test_bad_size_unit_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="not a size"):
        size_to_bytes("1.0", "XB")


# -- command lines -------------------------------------------------------------------------------


def test_destination_uris_as_libvirt_documents_them() -> None:
    assert destination_uri("qemu", "xen-resource-2") == "qemu+ssh://root@xen-resource-2/system"
    assert destination_uri("xen", "10.0.0.2") == "xen+ssh://root@10.0.0.2/system"
    assert destination_uri("xen", "node2.lab.example", user="admin") == \
        "xen+ssh://admin@node2.lab.example/system"
    assert destination_uri("qemu", "fd00::2") == "qemu+ssh://root@[fd00::2]/system"
    assert destination_uri("qemu", "xen_resource_1") == "qemu+ssh://root@xen_resource_1/system"


@pytest.mark.parametrize("host", ["bad host", "host;reboot", "$(id)", "a/b", "-oProxyCommand=x",
                                  "", "a..b", "user@host", "host:22", "h`x`"])
def test_bad_host_names_are_refused(host: str) -> None:
    with pytest.raises(LabError, match="cannot be used in a libvirt URI"):
        destination_uri("qemu", host)


def test_unknown_driver_and_bad_user_are_refused() -> None:
    with pytest.raises(LabError, match="'lxc'"):
        destination_uri("lxc", "host")
    with pytest.raises(LabError, match="user name"):
        destination_uri("qemu", "host", user="root;x")


def test_migrate_argv() -> None:
    uri = "qemu+ssh://root@dst/system"
    assert migrate_argv("vm1", uri) == ["virsh", "migrate", "--live", "--verbose", "vm1", uri]
    assert migrate_argv("vm1", uri, live=False, verbose=False) == ["virsh", "migrate", "vm1", uri]
    assert migrate_argv("vm1", uri, persistent=True, undefine_source=True,
                        connect="qemu:///system") == [
        "virsh", "--connect", "qemu:///system", "migrate", "--live", "--persistent",
        "--undefinesource", "--verbose", "vm1", uri]


def test_migrate_argv_refuses_option_like_domains_and_bad_uris() -> None:
    with pytest.raises(LabError, match="starting with '-'"):
        migrate_argv("--all", "qemu+ssh://root@dst/system")
    with pytest.raises(LabError, match="destination URI"):
        migrate_argv("vm1", "dst host")


def test_shell_command_is_quoted_in_the_c_locale_under_timeout() -> None:
    command = shell_command(migrate_argv("my vm", "qemu+ssh://root@dst/system"), timeout=300)
    assert shlex.split(command) == ["env", "LC_ALL=C", "timeout", "300", "virsh", "migrate",
                                    "--live", "--verbose", "my vm", "qemu+ssh://root@dst/system"]
    assert domjobinfo_argv("vm1") == ["virsh", "domjobinfo", "--completed", "vm1"]


# -- the driver, over a fake Host (pure logic only) ----------------------------------------------


@dataclass
class Result:
    rc: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class FakeHost:
    """Answers `run()` by the virsh subcommand in the command line; records every call."""

    answers: dict[str, Result]
    calls: list[str] = field(default_factory=list)

    def run(self, command: str) -> Result:
        self.calls.append(command)
        argv = shlex.split(command)
        for sub in ("migrate", "domjobinfo", "list"):
            if sub in argv:
                return self.answers[sub]
        raise AssertionError(f"unexpected command {command!r}")


class Clock:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def _driver(source: FakeHost, destination: FakeHost, clock: Clock,
            driver: str = "qemu") -> VirshDriver:
    hosts = {"xen1": cast(Host, source), "xen2": cast(Host, destination)}
    return VirshDriver(hosts, driver=driver, clock=clock, addresses={"xen2": "10.0.0.2"})


def test_migrate_reads_the_hypervisor_figures_after_the_migration() -> None:
    source = FakeHost({"migrate": Result(0, "", "Migration: [100 %]\n"),
                       "domjobinfo": Result(0, _read("domjobinfo-completed-outgoing.txt"))})
    result = _driver(source, FakeHost({}), Clock(1000.0, 1003.5)).migrate("vm1", "xen1", "xen2",
                                                                          timeout=120)
    assert result.status == "completed" and result.completed
    assert (result.source, result.destination, result.domain) == ("xen1", "xen2", "vm1")
    assert result.total_time_ms == 2417.0  # "Time elapsed", not the 3500 ms wall time
    assert result.wall_time_ms == 3500.0
    assert result.downtime_ms == 16.0
    assert result.setup_time_ms == 11.0
    assert result.bytes_transferred == 293_146_198
    assert result.toolstack == "libvirt" and result.error == ""
    assert result.total_time_source == "domjobinfo"
    migrate, jobinfo = (shlex.split(c) for c in source.calls)
    assert migrate == ["env", "LC_ALL=C", "timeout", "120", "virsh", "--connect",
                       "qemu:///system", "migrate", "--live", "--verbose", "vm1",
                       "qemu+ssh://root@10.0.0.2/system"]
    assert jobinfo[2:] == ["virsh", "--connect", "qemu:///system", "domjobinfo", "--completed",
                           "vm1"]


def test_migrate_timeout_and_failure_read_no_figures() -> None:
    for rc, status in ((124, "timeout"), (1, "failed")):
        source = FakeHost({"migrate": Result(rc, "", "error: operation failed: migration out "
                                                     "job: unexpectedly failed\n")})
        result = _driver(source, FakeHost({}), Clock(10.0, 12.0)).migrate("vm1", "xen1", "xen2")
        assert result.status == status and not result.completed
        assert "unexpectedly failed" in result.error
        assert result.total_time_ms == 2000.0 and result.total_time_source == "wall clock"
        assert result.downtime_ms is None and result.bytes_transferred is None
        assert len(source.calls) == 1  # no domjobinfo after a failed migration


def test_migrate_without_completed_stats_keeps_the_migration() -> None:
    """The libxl driver refuses `domjobinfo --completed`: the result stays completed, with
    the wall time and no hypervisor figures, and says why."""
    refused = Result(1, "", _read("domjobinfo-completed-unsupported.stderr"))
    source = FakeHost({"migrate": Result(0), "domjobinfo": refused})
    result = _driver(source, FakeHost({}), Clock(0.0, 1.25), driver="xen").migrate(
        "vm1", "xen1", "xen2")
    assert result.status == "completed"
    assert result.total_time_ms == 1250.0 and result.downtime_ms is None
    assert "not supported" in result.note
    assert "xen+ssh://root@10.0.0.2/system" in source.calls[0]

    none = FakeHost({"migrate": Result(0), "domjobinfo": Result(0, _read("domjobinfo-none.txt"))})
    result = _driver(none, FakeHost({}), Clock(0.0, 1.0)).migrate("vm1", "xen1", "xen2")
    assert result.completed and result.setup_time_ms is None
    assert "Job type: None" in result.note


def test_states_and_running_on() -> None:
    source = FakeHost({"list": Result(0, " Id   Name   State\n----------------------\n"
                                         " -    vm1    shut off\n\n")})
    destination = FakeHost({"list": Result(0, _read("virsh-list-all.txt"))})
    driver = _driver(source, destination, Clock())
    assert driver.states("vm1") == {"xen1": DomainState.STOPPED, "xen2": DomainState.RUNNING}
    assert driver.running_on("vm1") == ["xen2"]
    assert driver.state("xen1", "nowhere") is DomainState.ABSENT


def test_a_failing_virsh_list_names_host_and_command() -> None:
    source = FakeHost({"list": Result(1, "", "error: failed to connect to the hypervisor\n")})
    with pytest.raises(LabError, match=r"on xen1: .*virsh --connect qemu:///system list --all"):
        _driver(source, FakeHost({}), Clock()).state("xen1", "vm1")


# -- captured from libvirt 9.0.0's libxl driver on the embedded Xen lab (embedded-xen/) ------

XEN = "embedded-xen/"


def test_captured_list_before_and_after_a_live_migration() -> None:
    before = parse_virsh_list(_read(XEN + "virsh-list-all-r1-before.txt"))
    assert before == [VirshDomain("Domain-0", 0, "running"), VirshDomain("vm1", 2, "running")]
    after_source = parse_virsh_list(_read(XEN + "virsh-list-all-r1-after.txt"))
    after_destination = parse_virsh_list(_read(XEN + "virsh-list-all-r2-after.txt"))
    assert [d.name for d in after_source] == ["Domain-0"]  # a transient domain leaves
    assert after_destination[1] == VirshDomain("vm1", 1, "running")
    hosts = {"xen1": cast(Host, FakeHost({"list": Result(0, _read(XEN + "virsh-list-all-r1-after.txt"))})),
             "xen2": cast(Host, FakeHost({"list": Result(0, _read(XEN + "virsh-list-all-r2-after.txt"))}))}
    driver = VirshDriver(hosts, driver="xen")
    assert driver.states("vm1") == {"xen1": DomainState.ABSENT, "xen2": DomainState.RUNNING}


def test_captured_domjobinfo_of_the_libxl_driver() -> None:
    during = parse_domjobinfo(_read(XEN + "virsh-domjobinfo-during-migration-r2.txt"))
    assert during.has_job and not during.completed
    assert (during.job_type, during.operation, during.time_elapsed_ms) == (
        "Unbounded", "Unknown", 7676)
    assert during.data_processed is None  # libxl reports no data figures
    idle = parse_domjobinfo(_read(XEN + "virsh-domjobinfo-r2-after.txt"))
    assert idle.job_type == "None" and not idle.has_job


def test_captured_libxl_refusals_keep_the_migration_and_say_why() -> None:
    """Real libxl: the destination refuses --completed, the source no longer has the domain;
    either way the migration stands, timed by the wall clock, and the reason is kept."""
    for name, words in (("virsh-domjobinfo-completed-r2-after.stderr",
                         "unsupported flags (0x1) in function libxlDomainGetJobStats"),
                        ("virsh-domjobinfo-completed-r1-after.stderr",
                         "failed to get domain 'vm1'")):
        source = FakeHost({"migrate": Result(0, "\n", "\rMigration: [100 %]"),
                           "domjobinfo": Result(1, "\n", _read(XEN + name))})
        result = _driver(source, FakeHost({}), Clock(0.0, 44.16), driver="xen").migrate(
            "vm1", "xen1", "xen2")
        assert result.completed and result.total_time_ms == pytest.approx(44160.0)
        assert result.downtime_ms is None and result.total_time_source == "wall clock"
        assert words in result.note


@pytest.mark.parametrize("name", ["virsh-migrate-dest-libvirtd-down.stderr",
                                  "virsh-migrate-unresolvable-host.stderr",
                                  "virsh-migrate-missing-domain.stderr"])
def test_captured_migration_failures_are_reported_verbatim(name: str) -> None:
    text = _read(XEN + name)
    source = FakeHost({"migrate": Result(1, "\n", text)})
    result = _driver(source, FakeHost({}), Clock(0.0, 3.0), driver="xen").migrate(
        "vm1", "xen1", "xen2")
    assert result.status == "failed" and result.error == text.strip()[-500:]
    assert result.error.startswith("error: ")


# -- the domain XML rendered from the xl config -----------------------------------------------


def test_rendered_xml_is_the_one_libvirt_ran_on_the_embedded_xen_lab() -> None:
    inventory = load_inventory(Path(__file__).parents[2] / "inventories/embedded-xen.yml")
    spec = dataclasses.replace(inventory.domain, memory=128)  # the guest had 128 MiB then
    config = parse_domain_config(render_domain_config(spec, toolstack="xl"))
    rendered = render_libvirt_xml(config)
    ran = _read(XEN + "vm1.xml")  # written by hand, created and migrated by libvirt 9.0
    assert ET.canonicalize(rendered, strip_text=True) == ET.canonicalize(ran, strip_text=True)


@pytest.mark.parametrize(("text", "problem"), [
    ('memory = 64\n', "no name"),
    ('name = "a"\ntype = "hvm2"\nmemory = 64\n', "type 'hvm2'"),
    ('name = "a"\nmemory = "lots"\n', "whole numbers"),
    ('name = "a"\nmemory = 64\ndisk = ["file:/x.img,xvda,w"]\n', "only phy:"),
])
def test_unrenderable_configs_are_named(text: str, problem: str) -> None:
    with pytest.raises(ParseError, match=problem):
        render_libvirt_xml(parse_domain_config(text), "vm1.cfg")
