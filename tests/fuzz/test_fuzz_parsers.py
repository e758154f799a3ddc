"""Garbage and near-misses into every parser: xenlab's own error (with a message) or a
result, never a traceback of another kind."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from fuzzcount import CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xenlab.aoe.frames import dissect, parse_identify, parse_pv_label
from xenlab.aoe.session import parse_probe_output
from xenlab.errors import XenlabError
from xenlab.hypervisor.domconfig import parse_domain_config
from xenlab.hypervisor.qmp import block_backings, domain_state, migration_figures
from xenlab.hypervisor.virsh import parse_domjobinfo, parse_virsh_list
from xenlab.hypervisor.xen import parse_xl_info, parse_xl_list, parse_xl_list_long, parse_xl_migrate
from xenlab.inventory import parse_inventory
from xenlab.measure.ping import figures, parse_ping
from xenlab.measure.results import parse_results
from xenlab.storage.lvm import parse_lvs, parse_pvs, parse_vgs

REPO = Path(__file__).parents[2]
DATA = REPO / "tests" / "data"
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def survives(name: str, parse, *args) -> None:  # type: ignore[no-untyped-def]
    """The parser returns, or raises a XenlabError that says something."""
    CASES[name] += 1
    try:
        parse(*args)
    except XenlabError as exc:
        assert str(exc).strip(), f"{name}: an error without a message"


def _mutations(text: str) -> st.SearchStrategy[str]:
    """A real output with lines dropped, duplicated, cut or overwritten with junk."""
    lines = text.splitlines()

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        out = list(lines)
        for _ in range(draw(st.integers(1, 4))):
            if not out:
                break
            i = draw(st.integers(0, len(out) - 1))
            action = draw(st.sampled_from(["drop", "dup", "cut", "junk", "swap"]))
            if action == "drop":
                out.pop(i)
            elif action == "dup":
                out.insert(i, out[i])
            elif action == "cut":
                out[i] = out[i][: draw(st.integers(0, max(0, len(out[i]) - 1)))]
            elif action == "junk":
                out[i] = draw(st.text(max_size=60))
            else:
                j = draw(st.integers(0, len(out) - 1))
                out[i], out[j] = out[j], out[i]
        return "\n".join(out)

    return mutate()


INVENTORIES = [(REPO / "inventories" / n).read_text() for n in
               ("embedded.yml", "embedded-xen.yml", "xl.yml", "article-xm.yml", "libvirt.yml")]


@st.composite
def structural_inventory(draw: st.DrawFn) -> str:
    """A shipped inventory with one value somewhere replaced by something of another kind."""
    data = yaml.safe_load(draw(st.sampled_from(INVENTORIES)))
    node = data
    path = []
    while isinstance(node, dict) and node:
        key = draw(st.sampled_from(sorted(node, key=str)))
        path.append(key)
        if not isinstance(node[key], dict) or draw(st.booleans()):
            node[key] = draw(st.one_of(st.none(), st.integers(), st.text(max_size=12),
                                       st.lists(st.integers(), max_size=3),
                                       st.dictionaries(st.text(max_size=5), st.integers(),
                                                       max_size=2)))
            break
        node = node[key]
    return yaml.safe_dump(data)


@FUZZ
@given(st.one_of(st.text(max_size=400), structural_inventory(),
                 st.sampled_from(INVENTORIES).flatmap(_mutations)))
def test_inventories(text: str) -> None:
    survives("inventory (YAML)", parse_inventory, text, "fuzz.yml")


PING = (DATA / "ping").glob("*.txt") if (DATA / "ping").exists() else []
PING_TEXTS = [p.read_text() for p in PING] or [
    "PING 198.18.0.21 (198.18.0.21) 56(84) bytes of data.\n"
    "[1700000000.000100] 64 bytes from 198.18.0.21: icmp_seq=1 ttl=64 time=0.210 ms\n"]


@FUZZ
@given(st.one_of(st.lists(st.text(max_size=120), max_size=20),
                 st.sampled_from(PING_TEXTS).flatmap(_mutations).map(str.splitlines)))
def test_ping_lines(lines: list[str]) -> None:
    def parse_and_figure(lines: list[str]) -> None:
        figures(parse_ping(lines, 0.001))

    survives("ping output", parse_and_figure, lines)


XEN = DATA / "xen" / "embedded-xen"


@FUZZ
@given(st.one_of(st.text(max_size=300),
                 st.sampled_from([(XEN / "xl-list.txt").read_text(),
                                  (DATA / "xen/xm-list.txt").read_text()]).flatmap(_mutations)))
def test_xl_list(text: str) -> None:
    survives("xl list", parse_xl_list, text)


@FUZZ
@given(st.one_of(st.text(max_size=300),
                 st.just((XEN / "xl-info.txt").read_text()).flatmap(_mutations)))
def test_xl_info(text: str) -> None:
    survives("xl info", parse_xl_info, text)


@FUZZ
@given(st.one_of(st.text(max_size=300),
                 st.just((XEN / "xl-list-l.json").read_text()).flatmap(_mutations),
                 st.recursive(st.none() | st.integers() | st.text(max_size=5),
                              lambda c: st.lists(c, max_size=3)
                              | st.dictionaries(st.text(max_size=6), c, max_size=3),
                              max_leaves=10).map(json.dumps)))
def test_xl_list_long(text: str) -> None:
    survives("xl list -l (JSON)", parse_xl_list_long, text)


@FUZZ
@given(st.lists(st.tuples(st.floats(allow_nan=False, allow_infinity=False),
                          st.text(max_size=80)), max_size=30))
def test_xl_migrate(lines: list[tuple[float, str]]) -> None:
    survives("xl -vvv migrate", parse_xl_migrate, lines)


LIBVIRT = DATA / "libvirt"


@FUZZ
@given(st.one_of(st.text(max_size=300),
                 st.sampled_from([p.read_text() for p in LIBVIRT.glob("virsh-list*.txt")])
                 .flatmap(_mutations)))
def test_virsh_list(text: str) -> None:
    survives("virsh list --all", parse_virsh_list, text)


@FUZZ
@given(st.one_of(st.text(max_size=300),
                 st.sampled_from([p.read_text() for p in LIBVIRT.glob("domjobinfo*.txt")])
                 .flatmap(_mutations)))
def test_domjobinfo(text: str) -> None:
    survives("virsh domjobinfo", parse_domjobinfo, text)


JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                       | st.text(max_size=8),
                       lambda c: st.lists(c, max_size=3)
                       | st.dictionaries(st.sampled_from(["status", "ram", "total-time",
                                                          "downtime", "return", "inserted",
                                                          "file", "driver", "device", "x"]),
                                         c, max_size=4), max_leaves=12)


@FUZZ
@given(JSONISH)
def test_qmp_replies(reply: object) -> None:
    def all_three(reply: object) -> None:
        if isinstance(reply, dict):
            migration_figures(reply)
            domain_state(reply)
        block_backings(reply)

    survives("QMP replies", all_three, reply)


@FUZZ
@given(st.one_of(st.binary(max_size=80),
                 st.binary(min_size=0, max_size=40).map(
                     lambda tail: bytes.fromhex("ffffffffffff5254000000018" "8a2") + tail)))
def test_aoe_frames(raw: bytes) -> None:
    survives("AoE frames", dissect, raw)


@FUZZ
@given(st.binary(max_size=700))
def test_aoe_sector_payloads(data: bytes) -> None:
    survives("ATA IDENTIFY data", parse_identify, data)
    survives("LVM PV label sector", parse_pv_label, data)


@FUZZ
@given(st.text(max_size=300))
def test_aoe_probe_output(text: str) -> None:
    survives("AoE probe output", parse_probe_output, text)


@FUZZ
@given(st.text(max_size=300))
def test_domain_configs(text: str) -> None:
    survives("domain config", parse_domain_config, text)


@FUZZ
@given(st.one_of(st.text(max_size=200), JSONISH.map(json.dumps)))
def test_lvm_reports(text: str) -> None:
    for name, parse in (("pvs JSON", parse_pvs), ("vgs JSON", parse_vgs),
                        ("lvs JSON", parse_lvs)):
        survives(name, parse, text)


@FUZZ
@given(st.one_of(st.text(max_size=200), JSONISH.map(json.dumps)))
def test_results_files(text: str) -> None:
    survives("results.json", parse_results, text)
