"""Helpers of the end-to-end tests: run pytest on the suites against a lab of a test's own
name and root, and find anything of that lab left on the machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).parents[2]


def suites(inventory: Path, root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "suites", "-p", "no:cacheprovider",
            "--lab-inventory", str(inventory), "--lab-root", str(root), *args]


def leftovers(name: str, root: Path) -> list[str]:
    """Everything of the lab still on this machine."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"namespace {line.split()[0]}" for line in netns.splitlines()
              if line.startswith(f"xenlab-{name}-")]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    found += [f"loop {line}" for line in loops.splitlines() if str(root) in line]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(root / name) in cmdline and int(proc.name) != os.getpid():
            found.append(f"process {proc.name}: {cmdline.replace(chr(0), ' ')[:120]}")
    if (root / name).exists():
        found.append(f"directory {root / name}")
    found += [f"/etc/netns/{d.name}" for d in Path("/etc/netns").glob(f"xenlab-{name}-*")]
    if (Path("/run/xenlab") / name).exists():
        found.append(f"directory /run/xenlab/{name}")
    if Path(f"/run/xenlab-locks/{name}.lock").exists():
        found.append(f"name lock /run/xenlab-locks/{name}.lock")
    return found


def down_if_left(name: str, root: Path) -> None:
    """After a test: a lab it left (a failed assertion stops a test before its own clean-up)
    is torn down by its journal, so CI's machine is clean whatever the test's outcome."""
    if leftovers(name, root):
        subprocess.run([sys.executable, "-m", "xenlab.cli", "lab", "down", "--lab", name,
                        "--root", str(root)], cwd=REPO, capture_output=True, check=False,
                       timeout=300)


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 120) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"never saw {needle!r}; output:\n{''.join(seen)}")




def results_are_read_back(*paths: Path) -> None:
    """What a real run wrote, `xenlab compare` and `xenlab report trend` read back (the
    strict results loader refuses nothing xenlab itself writes)."""
    same = subprocess.run([sys.executable, "-m", "xenlab.cli", "compare", str(paths[0]),
                           str(paths[0])], cwd=REPO, capture_output=True, text=True)
    assert same.returncode == 0, same.stdout + same.stderr
    trend = subprocess.run([sys.executable, "-m", "xenlab.cli", "report", "trend",
                            *map(str, paths), "-o", str(paths[0].parent / "trend.html")],
                           cwd=REPO, capture_output=True, text=True)
    assert trend.returncode == 0, trend.stdout + trend.stderr


@dataclass
class Background:
    """A certification run started in the background (its output goes to a file: a pipe
    nobody reads would stop it when full)."""
    name: str
    inventory: Path
    root: Path
    results: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def finish(self, timeout: float) -> tuple[int, str]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"the run of lab {self.name} took over {timeout:.0f} s:\n"
                                 f"{self.log.read_text(errors='replace')[-4000:]}") from None
        return self.proc.returncode, self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # pytest's SIGTERM: the lab comes down as on Ctrl-C
            self.proc.wait(timeout=300)


def start_certification(profile: str, old_name: str, name: str, tmp: Path,
                        *args: str, edits: tuple[tuple[str, str], ...] = ()) -> Background:
    """The suites against a copy of inventories/PROFILE under its own lab name and root,
    with each (old, new) of `edits` made to its text (each must be there)."""
    inventory = tmp / "lab.yml"
    text = (REPO / "inventories" / profile).read_text().replace(f"lab: {old_name}",
                                                                 f"lab: {name}")
    for old, new in edits:
        assert old in text, (profile, old)
        text = text.replace(old, new)
    inventory.write_text(text)
    root, results, log = tmp / "labs", tmp / "results.json", tmp / "output.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(suites(inventory, root, "--lab-results", str(results),
                                       "--lab-report", str(tmp / "report.html"), "-v", *args),
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    return Background(name, inventory, root, results, log, proc)


def as_real_inventory(embedded: Path, lab_dir: Path, name: str, out: Path,
                      connection: str = "ssh",
                      power: dict[str, tuple[str, str]] | None = None) -> Path:
    """The kept embedded Xen lab described as a real lab, the way an administrator would
    write it: `kind: real`, the storage host `local` (pytest runs there), the dom0s and the
    guests over `connection` with the lab's key and known_hosts, the export by its path;
    with `power`, each resource host's xenlab_power_off and xenlab_power_on commands."""
    import yaml

    data = yaml.safe_load(embedded.read_text())
    lab = data["all"]["vars"]["xenlab"]
    lab.update(lab=name, kind="real", known_hosts=str(lab_dir / "ssh" / "known_hosts"))
    lab.pop("image_size", None)  # a real lab's export is whatever it is
    lab["aoe"]["device"] = str(lab_dir / "storage" / "export.img")
    hosts = data["all"]["children"]
    hosts["storage"]["hosts"]["xen_storage"]["ansible_connection"] = "local"
    for group in ("resources", "guests"):
        for spec in hosts[group]["hosts"].values():
            spec["ansible_ssh_private_key_file"] = str(lab_dir / "ssh" / "id_ed25519")
            spec["ansible_connection"] = connection if group == "resources" else "ssh"
    for host, (off, on) in (power or {}).items():
        hosts["resources"]["hosts"][host].update(xenlab_power_off=off, xenlab_power_on=on)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def as_storage_host(root: Path, name: str) -> list[str]:
    """argv prefix that runs a command on the kept lab's storage host (its namespaces), as
    pytest runs on a real lab's storage host."""
    from xenlab.hosts.runner import host_prefix
    from xenlab.lab.journal import Journal

    journal = Journal.read(root / name)
    assert journal is not None, f"no journal of lab {name} under {root}"
    anchors = [p for p in journal.processes
               if p.host == "xen_storage" and p.what == "host namespaces" and p.alive()]
    assert anchors, f"lab {name} has no running storage host"
    prefix = host_prefix(anchors[0].pid)  # entering a mount namespace resets the cwd: keep ours
    return [*prefix[:-1], f"--wd={REPO}", "--"]
