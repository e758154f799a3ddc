"""The build steps both embedded labs share (xenlab/lab/build/): the cut's rules, the SSH
client config, the sparse image recorded before it exists, vblade's early exit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from xenlab.errors import LabError
from xenlab.hosts.runner import Runner
from xenlab.inventory.model import AoeSpec
from xenlab.lab import journal as jr
from xenlab.lab.build.cut import CUT_TABLE, cut_rules
from xenlab.lab.build.sshkit import namespace_proxy, ssh_entry
from xenlab.lab.build.vblade import sparse_image, start_vblade


def test_the_cut_drops_one_port_and_from_one_source_where_given() -> None:
    assert "  tcp dport 8002 drop\n" in cut_rules(8002)
    rules = cut_rules(22, saddr="198.18.0.11")
    assert f"table inet {CUT_TABLE} {{" in rules
    assert "  ip saddr 198.18.0.11 tcp dport 22 drop\n" in rules
    assert rules.count("{") == rules.count("}")


def test_an_ssh_entry_pins_its_own_key_and_known_hosts_and_never_prompts(tmp_path: Path) -> None:
    entry = ssh_entry("vm1", "198.18.0.21", tmp_path, namespace_proxy("xenlab-a--xen_storage"))
    lines = entry.splitlines()
    assert lines[0] == "Host vm1 198.18.0.21"
    assert f"  IdentityFile {tmp_path / 'id_ed25519'}" in lines
    assert f"  UserKnownHostsFile {tmp_path / 'known_hosts'}" in lines
    assert "  StrictHostKeyChecking yes" in lines and "  BatchMode yes" in lines
    assert "  ProxyCommand ip netns exec xenlab-a--xen_storage busybox nc %h %p" in lines
    assert not any("Control" in line for line in lines)
    shared = ssh_entry("xen_resource_1", "198.18.0.11", tmp_path, "nc %h %p",
                       control=tmp_path / "sockets", connect_timeout=20)
    assert f"  ControlPath {tmp_path / 'sockets'}/%C" in shared.splitlines()
    assert "  ConnectTimeout 20" in shared.splitlines()


def test_the_sparse_image_is_in_the_journal_and_takes_no_space(tmp_path: Path) -> None:
    journal = jr.Journal.create("t", tmp_path / "t")
    image = tmp_path / "t" / "xen_storage" / "disk.img"
    sparse_image(journal, image, 1 << 30)
    assert image.stat().st_size == 1 << 30 and image.stat().st_blocks == 0
    found = jr.Journal.read(tmp_path / "t")
    assert found is not None and found.images == [str(image)]


@pytest.mark.skipif(shutil.which("vblade") is None, reason="vblade not installed")
def test_a_vblade_that_exits_at_once_is_one_error_with_its_log(tmp_path: Path) -> None:
    recorded: list[tuple[int, str]] = []
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(4096))
    with pytest.raises(LabError, match=r"vblade on xen_storage exited \d+: .+"):
        start_vblade(Runner("controller"), "xen_storage",
                     AoeSpec(shelf=0, slot=0, interface="xenlab-none0", device=None), image,
                     tmp_path / "vblade.log", lambda pid, what: recorded.append((pid, what)))
    assert recorded and recorded[0][1] == "vblade"  # recorded before it was judged
