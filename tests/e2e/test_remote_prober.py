"""A remote host over real SSH, as on a real lab: the C prober built static here, copied
once per build, run there; an unknown host key refused with a clear message. The
embedded lab's guest (dropbear, busybox, nothing installed) stands in for a lab host."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from labrun import REPO, leftovers, suites

from xenlab.hosts.runner import Runner, describe_ssh_failure, ssh_runner
from xenlab.inventory import load_inventory
from xenlab.lab.guestkit import ensure_native_probe
from xenlab.measure.ping import figures
from xenlab.measure.prober import Prober, ship_native


def test_static_prober_is_shipped_over_ssh_and_measures(lab_files: tuple[Path, Path, str],
                                                          tmp_path: Path) -> None:
    inventory_file, root, name = lab_files
    result = subprocess.run(suites(inventory_file, root, "-k", "every_host", "--lab-keep"),
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    try:
        inventory = load_inventory(str(inventory_file))
        guest = ssh_runner(inventory.guest.name, str(inventory.guest.address),
                           ssh_config=str(root / name / "ssh" / "config"))
        binary = ensure_native_probe(tmp_path / "tools", static=True)
        assert ship_native(guest, binary, machine="aarch64") is None  # not this machine's
        path = ship_native(guest, binary)
        assert path is not None and path.split("/")[-1].startswith("xenlab-probe-")
        stamp = guest.run(["stat", "-c", "%Y", path]).stdout
        time.sleep(1.1)
        assert ship_native(guest, binary) == path  # found again, not copied again
        assert guest.run(["stat", "-c", "%Y", path]).stdout == stamp
        storage = str(inventory.host(inventory.observer).address)
        # 100 Hz: the emulated guest, not the prober, limits the rate it can keep up
        prober = Prober(guest, storage, 0.01, native=path)
        prober.start()
        time.sleep(1.5)
        run = prober.stop()
        f = figures(run)
        assert f.sent > 100 and f.received > 0.9 * f.sent, f
        # an unknown host key stops xenlab with one clear message, unless trusted on first use
        ssh_dir = root / name / "ssh"
        empty = tmp_path / "known_hosts"
        empty.write_text("")
        config = tmp_path / "ssh_config"
        config.write_text((ssh_dir / "config").read_text().replace(
            str(ssh_dir / "known_hosts"), str(empty)))
        address = str(inventory.guest.address)
        stranger = ssh_runner(inventory.guest.name, address, ssh_config=str(config))
        refused = stranger.run(["true"], check=False)
        assert refused.rc != 0
        message = describe_ssh_failure(inventory.guest.name, address, refused.stderr)
        assert "is not in known_hosts" in message and "--lab-accept-new-host-keys" in message
        trusting = ssh_runner(inventory.guest.name, address, ssh_config=str(config),
                              accept_new_host_key=True)
        assert trusting.run(["true"], check=False).rc == 0
        assert address in empty.read_text()  # recorded: the next connection verifies it
        assert stranger.run(["true"], check=False).rc == 0
    finally:
        subprocess.run([sys.executable, "-m", "xenlab.cli", "lab", "down", "--lab", name,
                        "--root", str(root)], capture_output=True, text=True, check=False)
    assert leftovers(name, root) == []


def test_no_copy_where_the_architecture_differs(tmp_path: Path) -> None:
    binary = tmp_path / "probe"
    binary.write_bytes(b"\x7fELF")
    assert ship_native(Runner(), binary, machine="riscv128") is None
