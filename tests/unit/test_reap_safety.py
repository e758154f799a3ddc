"""The reaper removes only what is provably a lab's own, on decoys in a temporary directory:
real namespaces, real processes and real loop devices, never a system path."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xenlab.errors import BadNameError, LabKeptError
from xenlab.lab import journal as jr
from xenlab.names import check_lab_name, is_lab_name

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")

HOSTILE_NAMES = ["", "..", "../../etc", "/etc", "a/b", "-a", "a-", "a--b", "A", "a b",
                 "a" * 17, "a\0b", "\udcff", "é", ".", "lab.json", "a\n", " a"]


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A lab root, a control root and a lock root of this test's own, beside a decoy file."""
    monkeypatch.setattr(jr, "CONTROL_ROOT", tmp_path / "run")
    monkeypatch.setattr(jr, "LOCK_ROOT", tmp_path / "locks")
    (tmp_path / "decoy.txt").write_text("not a lab's")
    (tmp_path / "labs").mkdir()
    yield tmp_path / "labs"
    assert (tmp_path / "decoy.txt").read_text() == "not a lab's"


def _unique() -> str:
    return "u" + uuid.uuid4().hex[:8]


def _orphan(lab: str, root: Path) -> jr.Journal:
    """A journal whose run is gone (as after SIGKILL)."""
    journal = jr.Journal.create(lab, root / lab)
    journal.owner_pid, journal.owner_start = 999_999, 1
    journal.save()
    return journal


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_bad_lab_name_is_refused_everywhere_and_touches_nothing(name: str, roots: Path) -> None:
    (roots / "x").mkdir()
    before = sorted(p.name for p in roots.parent.rglob("*"))
    assert not is_lab_name(name)
    for use in (lambda: jr.reap(name, roots, force=True), lambda: jr.plan_reap(name, roots),
                lambda: jr.NameLock(name), lambda: jr.control_dir(name),
                lambda: jr.namespace_prefix(name), lambda: check_lab_name(name, "--lab")):
        with pytest.raises(BadNameError, match="expected 1-16 lower-case letters"):
            use()
    assert sorted(p.name for p in roots.parent.rglob("*")) == before


@pytest.mark.parametrize("name", ["a", "embedded", "embedded-xen", "x1234", "a-b-c", "9" * 16])
def test_good_lab_names_pass(name: str) -> None:
    assert check_lab_name(name) == name


def test_a_directory_without_a_journal_is_left_alone(roots: Path) -> None:
    (roots / "mine").mkdir()
    (roots / "mine" / "data").write_text("someone's")
    plan = jr.plan_reap("mine", roots)
    assert plan.directory is None and "holds no lab journal" in plan.left_alone[0]
    assert jr.reap("mine", roots, force=True) == []
    assert (roots / "mine" / "data").read_text() == "someone's"


def test_a_symlinked_lab_directory_is_never_followed(roots: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    _orphan("lnk", tmp_path)  # a real journal, but reached only through the link
    (tmp_path / "lnk").rename(elsewhere)
    (roots / "lnk").symlink_to(elsewhere, target_is_directory=True)
    plan = jr.plan_reap("lnk", roots)
    assert plan.directory is None and "a symlink" in plan.left_alone[0]
    jr.reap("lnk", roots, force=True)
    assert (elsewhere / "lab.json").exists() and (roots / "lnk").is_symlink()


def test_a_journal_of_another_lab_or_place_is_not_this_labs(roots: Path, tmp_path: Path) -> None:
    journal = _orphan("one", roots)
    journal.lab = "two"
    journal.save()
    assert jr.plan_reap("one", roots).directory is None
    journal.lab, journal.directory = "one", str(tmp_path / "elsewhere")
    (roots / "one" / "lab.json").write_text((roots / "one" / "lab.json").read_text().replace(
        str(roots / "one"), str(tmp_path / "elsewhere")))
    plan = jr.plan_reap("one", roots)
    assert plan.directory is None and "belongs to lab" in plan.left_alone[0]
    jr.reap("one", roots)
    assert (roots / "one" / "lab.json").exists()


def test_a_malformed_journal_is_no_journal(roots: Path) -> None:
    for text in ("", "{", "[]", '{"lab": 1}', '{"lab": "m", "directory": "x", "owner_pid": '
                 '"1", "owner_start": 1, "boot": "b"}', "\xff" * 10):
        (roots / "m").mkdir(exist_ok=True)
        (roots / "m" / "lab.json").write_text(text, errors="surrogateescape")
        assert jr.Journal.read(roots / "m") is None
        assert jr.reap("m", roots, force=True) == []
        assert (roots / "m" / "lab.json").exists()


def test_a_recorded_process_is_killed_only_with_its_start_time(roots: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        journal = _orphan("procs", roots)
        journal.add_process(sleeper.pid, "h1", "vblade")
        journal.processes.append(jr.ProcessRecord(stranger.pid, 1, "h1", "recycled PID"))
        journal.save()
        plan = jr.plan_reap("procs", roots)
        assert [pid for pid, _, _ in plan.processes] == [sleeper.pid]
        removed = jr.reap("procs", roots)
        assert f"process {sleeper.pid} (vblade on h1)" in removed
        assert sleeper.wait(timeout=5) is not None and stranger.poll() is None
        assert not (roots / "procs").exists()
    finally:
        for proc in (sleeper, stranger):
            proc.kill()
            proc.wait()


def test_a_kept_lab_is_not_reaped_by_the_next_run(roots: Path) -> None:
    journal = _orphan("kept", roots)
    journal.kept = True
    journal.save()
    with pytest.raises(LabKeptError, match="xenlab lab down --lab kept"):
        jr.reap("kept", roots)
    assert (roots / "kept" / "lab.json").exists()
    assert "directory" in jr.reap("kept", roots, kept_too=True)[-1]  # what `lab down` does
    assert not (roots / "kept").exists()


def test_the_socket_directory_goes_only_if_it_holds_only_sockets(roots: Path) -> None:
    _orphan("sock", roots)
    control = jr.CONTROL_ROOT / "sock"
    control.mkdir(parents=True)
    (control / "notes.txt").write_text("someone's")
    plan = jr.plan_reap("sock", roots)
    assert plan.sockets is None and "more than SSH sockets" in plan.left_alone[-1]
    (control / "notes.txt").unlink()
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(control / "xen_resource_1"))
    listener.close()
    assert jr.plan_reap("sock", roots).sockets == control.resolve()
    jr.reap("sock", roots)
    assert not control.exists()


@needs_root
def test_the_namespace_prefix_names_one_lab_only(roots: Path) -> None:
    """Lab 'u..' reaps xenlab-u..--*, never xenlab-u..-b--* (lab 'u..-b') nor xenlab-u..x."""
    lab = _unique()
    ours, theirs, near = (f"xenlab-{lab}--switch", f"xenlab-{lab}-b--switch",
                          f"xenlab-{lab}x--switch")
    for ns in (ours, theirs, near):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    inside = subprocess.Popen(["ip", "netns", "exec", theirs, "sleep", "60"])
    try:
        _orphan(lab, roots)
        plan = jr.plan_reap(lab, roots)
        assert plan.namespaces == [ours]
        removed = jr.reap(lab, roots)
        assert f"namespace {ours}" in removed and inside.poll() is None
        listing = subprocess.run(["ip", "netns", "list"], capture_output=True,
                                 text=True).stdout
        assert theirs in listing and near in listing and ours not in listing
    finally:
        inside.kill()
        inside.wait()
        for ns in (ours, theirs, near):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


@needs_root
def test_only_loop_devices_of_the_labs_own_images_are_detached(roots: Path,
                                                               tmp_path: Path) -> None:
    lab = _unique()
    journal = _orphan(lab, roots)
    inside, outside = roots / lab / "export.img", tmp_path / "data.img"
    for image in (inside, outside):
        with image.open("wb") as f:
            f.truncate(1 << 20)
        journal.add_image(str(image))
    loops = {image: subprocess.run(["losetup", "-f", "--show", str(image)], check=True,
                                   capture_output=True, text=True).stdout.strip()
             for image in (inside, outside)}
    try:
        plan = jr.plan_reap(lab, roots)
        assert plan.loops == [(loops[inside], str(inside))]
        assert any("outside the lab directory" in item for item in plan.left_alone)
        jr.reap(lab, roots)
        assert jr.loops_of(str(outside)) == [loops[outside]] and outside.exists()
        assert jr.loops_of(str(inside)) == []
    finally:
        for loop in loops.values():
            subprocess.run(["losetup", "-d", loop], capture_output=True)


def test_the_xen_kit_never_cleans_through_a_link_out_of_its_root(tmp_path: Path) -> None:
    """The dom0 root being built may hold absolute links (to the build machine's own
    /usr/share/doc, say): its clean-up resolves every path and refuses to leave the root."""
    from xenlab.errors import LabError
    from xenlab.lab.xenkit import _inside

    rootfs, decoy = tmp_path / "rootfs", tmp_path / "host-doc"
    (rootfs / "usr/lib/modules").mkdir(parents=True)
    decoy.mkdir()
    (decoy / "precious").write_text("the build machine's")
    (rootfs / "lib").symlink_to("usr/lib")  # merged /usr: a relative link stays inside
    assert _inside(rootfs, "lib/modules") == (rootfs / "usr/lib/modules").resolve()
    (rootfs / "usr/share").mkdir()
    (rootfs / "usr/share/doc").symlink_to(decoy)  # absolute: out of the root
    with pytest.raises(LabError, match="outside the dom0 root"):
        _inside(rootfs, "usr/share/doc")
    assert (decoy / "precious").exists()


def test_the_xen_kit_removes_only_its_own_old_builds(tmp_path: Path) -> None:
    """Old kits and dom0 root tars go by their exact names; a link of that name, a file
    where a kit would be, or a name that only looks alike stays (decoys, this test's own)."""
    from xenlab.lab.xenkit import _KIT_NAME, _ROOTFS_TAR, stale_builds

    decoy = tmp_path / "elsewhere"
    decoy.mkdir()
    cache = tmp_path / "cache"
    for name in ("kit-0123456789ab", "kit-notadigest", "kit-0123456789abc"):
        (cache / name).mkdir(parents=True)
    (cache / "kit-aaaaaaaaaaaa").symlink_to(decoy, target_is_directory=True)
    (cache / "kit-bbbbbbbbbbbb").write_text("a file, not a kit")
    (cache / "rootfs-0123456789ab.tar").write_text("tar")
    (cache / "rootfs-cccccccccccc.tar").symlink_to(decoy / "x.tar")
    (cache / "rootfs-mine.tar").write_text("someone's")
    assert stale_builds(cache, _KIT_NAME, directories=True) == [cache / "kit-0123456789ab"]
    assert stale_builds(cache, _ROOTFS_TAR, directories=False) == [
        cache / "rootfs-0123456789ab.tar"]


def test_a_real_lab_closes_its_sockets_and_removes_only_an_empty_directory(
        roots: Path, tmp_path: Path) -> None:
    """RealLab.down(): `ssh -O exit` to its own masters (none here: nothing is contacted),
    then the socket directory goes only if empty; a symlinked one is refused at once."""
    from xenlab.errors import LabError
    from xenlab.inventory import parse_inventory
    from xenlab.lab.real import RealLab
    from xenlab.progress import Progress

    text = (Path(__file__).parents[2] / "inventories/xl.yml").read_text()
    lab = RealLab(parse_inventory(text, "xl.yml"), progress=Progress(lambda line: None))
    control = jr.control_dir("xl")
    assert lab.runner("xen_resource_1") and not control.exists()  # describing makes nothing
    lab._make_control_dir()  # what up() does first
    assert control.is_dir()
    (control / "notes.txt").write_text("someone's")
    lab.down()
    assert (control / "notes.txt").read_text() == "someone's"
    (control / "notes.txt").unlink()
    lab.down()
    assert not control.exists()
    decoy = tmp_path / "decoy-sockets"
    decoy.mkdir()
    control.symlink_to(decoy, target_is_directory=True)
    with pytest.raises(LabError, match="is a symlink"):
        RealLab(parse_inventory(text, "xl.yml"), progress=Progress(lambda line: None)).up()
    assert decoy.is_dir() and not any(decoy.iterdir()) and control.is_symlink()
