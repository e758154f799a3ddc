"""Provisioning steps: the plan a user reads before anything runs, and the refusal to
overwrite a device that holds data (checked on a real loop device carrying ext4)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from xenlab.hosts.runner import Runner
from xenlab.inventory import load_inventory
from xenlab.progress import Progress
from xenlab.provision.steps import (
    ProvisionRefused,
    Step,
    apply,
    config_steps,
    image_steps,
    parse_signatures,
    plan_text,
    storage_steps,
    tree_digest,
    wipe_refusal,
)

REPO = Path(__file__).parents[2]


def article_steps() -> list[Step]:
    inventory = load_inventory(REPO / "inventories/embedded-xen.yml")
    return [*storage_steps(inventory, "/dev/etherd/e0.0"),
            *image_steps(inventory, {g.name: ("c2VjcmV0\n", "0123abcd") for g in
                                     inventory.guests}),
            *config_steps(inventory, "xl")]


def test_plan_lists_every_command_per_host_in_order() -> None:
    text = plan_text(article_steps())
    blocks = text.split("== ")[1:]
    assert [b.splitlines()[0] for b in blocks] == ["xen_resource_1", "xen_resource_2"]
    first = blocks[0]
    order = ["modprobe aoe", "aoe-discover", "pvcreate -q /dev/etherd/e0.0",
             "vgcreate -q vg_xen", "lvcreate", "mkfs.ext4", "tar -xzf", "cat > /etc/xen/vm1.cfg"]
    positions = [first.index(needle) for needle in order]
    assert positions == sorted(positions)
    assert "vgchange -q -a y vg_xen" in blocks[1] and "pvcreate" not in blocks[1]
    assert "overwrites /dev/etherd/e0.0" in first and "overwrites /dev/vg_xen/lv_vm1" in first
    assert "c2VjcmV0" not in text  # file contents are not printed, only their size


def test_secret_input_is_never_shown() -> None:
    step = Step("h", "key", "false", "cat > /root/.ssh/id", input="PRIVATE", secret=True)
    assert "PRIVATE" not in plan_text([step]) and "<secret>" in plan_text([step])


@pytest.mark.parametrize(("text", "found"), [
    ("DEVNAME=/dev/loop0\nUUID=x\nTYPE=ext4\nUSAGE=filesystem\n", ["ext4 signature"]),
    ("DEVNAME=/dev/sdb\nPTUUID=x\nPTTYPE=dos\n", ["dos partition table"]),
    ("DEVNAME=/dev/sdb1\nTYPE=LVM2_member\nUSAGE=raid\n", ["LVM2_member signature"]),
    ("", []),
])
def test_signatures_from_blkid_export(text: str, found: list[str]) -> None:
    assert parse_signatures(text) == found


def test_tree_digest_follows_content_not_time(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x")
    before = tree_digest(tmp_path)
    os.utime(tmp_path / "a", (1, 1))
    assert tree_digest(tmp_path) == before
    (tmp_path / "a").write_text("y")
    assert tree_digest(tmp_path) != before


@pytest.fixture
def ext4_loop(tmp_path: Path) -> str:
    if os.geteuid() != 0:
        pytest.skip("loop devices need root")
    image = tmp_path / "disk.img"
    subprocess.run(["truncate", "-s", "16M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                            capture_output=True, text=True).stdout.strip()
    yield device
    subprocess.run(["losetup", "-d", device], check=False)


def test_wipe_of_a_device_with_ext4_is_refused_unless_named(ext4_loop: str) -> None:
    runner = Runner()
    refusal = wipe_refusal(runner, "this-host", ext4_loop, allowed=())
    assert refusal is not None
    assert "ext4 signature" in refusal and ext4_loop in refusal and "this-host" in refusal
    assert f"--lab-allow-wipe {ext4_loop}" in refusal
    assert wipe_refusal(runner, "this-host", ext4_loop, allowed=(ext4_loop,)) is None
    step = Step("this-host", "PV", "false", f"pvcreate -q {ext4_loop}", wipes=ext4_loop)
    with pytest.raises(ProvisionRefused, match="ext4 signature"):
        apply([step], {"this-host": runner}, Progress(lambda line: None))
    # refused before acting: the filesystem is still there
    assert subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", ext4_loop],
                          capture_output=True, text=True).stdout.strip() == "ext4"


def test_apply_checks_first_and_acts_only_when_needed(tmp_path: Path) -> None:
    marker = tmp_path / "made"
    step = Step("local", "marker", f"[ -e {marker} ]", f"touch {marker}")
    quiet = Progress(lambda line: None)
    assert [o.done for o in apply([step], {"local": Runner()}, quiet)] == ["applied"]
    assert [o.done for o in apply([step], {"local": Runner()}, quiet)] == ["satisfied"]


@pytest.mark.parametrize(("stderr", "expected"), [
    ("No ED25519 host key is known for 198.18.0.21 and you have requested strict checking.\r\n"
     "Host key verification failed.\r\n", "is not in known_hosts"),
    ("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
     "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
     "Host key verification failed.\n", "has CHANGED"),
    ("root@198.18.0.11: Permission denied (publickey).\n", "refused the SSH key"),
    ("ssh: connect to host 198.18.0.12 port 22: Connection timed out\n", "not reachable"),
])
def test_ssh_failures_get_one_clear_sentence(stderr: str, expected: str) -> None:
    from xenlab.hosts.runner import describe_ssh_failure

    message = describe_ssh_failure("xen_resource_1", "198.18.0.11", stderr)
    assert expected in message and "xen_resource_1" in message
