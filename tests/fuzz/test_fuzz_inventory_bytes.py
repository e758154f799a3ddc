"""Hostile bytes into `load_inventory`, through a real file: an `Inventory` or one
InventoryError naming the file, never a traceback of another kind. Raw bytes, and the
shipped inventories truncated, with bytes flipped or inserted, with anchors and aliases
spliced in, and nested deep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fuzzcount import CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xenlab.errors import InventoryError
from xenlab.inventory import Inventory, load_inventory
from xenlab.names import is_lab_name

REPO = Path(__file__).parents[2]
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
SHIPPED = sorted((REPO / "inventories").glob("*.yml"))
INVENTORIES = [p.read_bytes() for p in SHIPPED]

# the pieces a hostile or careless hand would splice into an inventory
SNIPPETS = [b"\0", b"\xff\xfe", b"\xc3", b"\x1b[2J", b"&a ", b"*a", b"<<: *a\n", b"? [a]\n: b\n",
            b"!!python/object/apply:os.system ['true'] ", b"!!bool maybe ", b"2001-13-45",
            b"0b_", b"\n---\n", b"\t", b"{", b"]", b"'", b'"', b"\n  ", b": ", b"- ", b"#"]


@pytest.fixture(scope="module")
def inventory_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file, rewritten for each example (a function-scoped tmp_path is not per example)."""
    return tmp_path_factory.mktemp("fuzz-inventory") / "fuzz.yml"


def survives(name: str, path: Path, data: bytes) -> None:
    """`load_inventory` of a file holding `data` returns an Inventory or raises an
    InventoryError whose message starts with the file's name; anything else fails."""
    CASES[name] += 1
    path.write_bytes(data)
    try:
        inventory = load_inventory(path)
    except InventoryError as exc:
        assert str(exc).startswith(f"{path}: "), f"{name}: an error not naming the file: {exc}"
    else:
        assert isinstance(inventory, Inventory)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A shipped inventory cut short, with bytes flipped, inserted or deleted, and snippets
    of hostile YAML spliced in at random offsets."""
    data = bytearray(draw(st.sampled_from(INVENTORIES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "snippet"]))
        if action == "truncate":
            del data[at:]
        elif action == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        else:
            data[at:at] = draw(st.sampled_from(SNIPPETS))
    return bytes(data)


def _values(data: bytes) -> list[int]:
    """Offsets just after each 'key: ' of a line that has a value."""
    out, at = [], 0
    for line in data.splitlines(keepends=True):
        colon = line.find(b": ")
        if colon > 0 and line[colon + 2:].strip() and not line.lstrip().startswith(b"#"):
            out.append(at + colon + 2)
        at += len(line)
    return out


@st.composite
def aliased(draw: st.DrawFn) -> bytes:
    """A shipped inventory with an anchor on one value and aliases to it on later ones,
    or a billion-laughs block on top, or both: each must be refused, never expanded."""
    data = draw(st.sampled_from(INVENTORIES))
    offsets = _values(data)
    first = draw(st.integers(0, len(offsets) - 2))
    later = draw(st.lists(st.integers(first + 1, len(offsets) - 1), min_size=0, max_size=3,
                          unique=True))
    out = bytearray(data)
    for i in sorted(later, reverse=True):  # an alias replaces the value up to the line's end
        end = out.find(b"\n", offsets[i])
        end = len(out) if end < 0 else end
        out[offsets[i]:end] = b"*x"
    out[offsets[first]:offsets[first]] = b"&x "
    if draw(st.booleans()):
        levels = draw(st.integers(2, 12))
        laughs = b"l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + b"".join(
            b"l%d: &l%d [" % (i, i) + b", ".join([b"*l%d" % (i - 1)] * 9) + b"]\n"
            for i in range(1, levels))
        out[0:0] = laughs
    return bytes(out)


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    """A shipped inventory with one value replaced by flow nesting up to 300 deep (past
    MAX_DEPTH; the unit tests take 50,000)."""
    data = draw(st.sampled_from(INVENTORIES))
    offsets = _values(data)
    at = offsets[draw(st.integers(0, len(offsets) - 1))]
    end = data.find(b"\n", at)
    end = len(data) if end < 0 else end
    depth = draw(st.integers(1, 300))
    style = draw(st.sampled_from(["list", "map", "mixed"]))
    if style == "list":
        value = b"[" * depth + b"1" + b"]" * depth
    elif style == "map":
        value = b"{k: " * depth + b"1" + b"}" * depth
    else:
        value = b"[{k: " * (depth // 2) + b"1" + b"}]" * (depth // 2)
    if draw(st.booleans()):  # unbalanced: cut the closing brackets short
        value = value[: len(value) - draw(st.integers(1, depth))]
    return data[:at] + value + data[end:]


@FUZZ
@given(st.binary(max_size=600))
def test_raw_bytes(inventory_file: Path, data: bytes) -> None:
    survives("inventory file (raw bytes)", inventory_file, data)


@FUZZ
@given(mutated())
def test_mutated_inventories(inventory_file: Path, data: bytes) -> None:
    survives("inventory file (mutated)", inventory_file, data)


@FUZZ
@given(aliased())
def test_aliases_are_refused(inventory_file: Path, data: bytes) -> None:
    survives("inventory file (anchors, aliases)", inventory_file, data)
    with pytest.raises(InventoryError, match="no anchors or aliases"):
        load_inventory(inventory_file)


@FUZZ
@given(nested())
def test_deep_nesting(inventory_file: Path, data: bytes) -> None:
    survives("inventory file (deep nesting)", inventory_file, data)


EMBEDDED = (REPO / "inventories" / "embedded.yml").read_text()
assert "lab: embedded " in EMBEDDED


@FUZZ
@given(st.one_of(st.text(alphabet="ab0-_.A/ ", max_size=18),
                 st.from_regex(r"[a-z0-9][a-z0-9-]{0,16}", fullmatch=True)))
def test_lab_key_follows_the_one_lab_name_rule(inventory_file: Path, name: str) -> None:
    """The inventory's `lab:` is accepted exactly when xenlab.names accepts it."""
    CASES["inventory lab: key"] += 1
    # a JSON string is a YAML double-quoted scalar
    inventory_file.write_text(EMBEDDED.replace("lab: embedded ", f"lab: {json.dumps(name)} ", 1))
    if is_lab_name(name):
        assert load_inventory(inventory_file).lab == name
    else:
        with pytest.raises(InventoryError, match=r"all\.vars\.xenlab\.lab: expected a lab name"):
            load_inventory(inventory_file)
