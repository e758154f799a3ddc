"""What both embedded labs share: built on this machine from a journal, named after the lab,
reaped after a killed run, torn down after any other (see EmbeddedLab, EmbeddedXenLab)."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

from xenlab.errors import LabError
from xenlab.hosts.runner import Runner
from xenlab.hypervisor.base import Hypervisor, RunningDomain, running_copy, sole_host
from xenlab.inventory.model import Inventory
from xenlab.lab import guest_of
from xenlab.lab import journal as jr
from xenlab.lab.power import PowerControl
from xenlab.lab.state import LabState, Strategy
from xenlab.progress import Progress


class BuiltLab(Strategy):
    """A lab built here, under `root`/<lab> with its journal: subclasses provide the
    `enter_<state>` steps, the hypervisor driver (`_driver`), and what teardown does first
    (`_quiesce`) and last (`_forget_hosts`)."""

    inventory: Inventory
    root: Path
    directory: Path
    journal: jr.Journal | None
    local: Runner

    _driver: Hypervisor | None = None  # the toolstack's driver, once the hosts are up

    def __init__(self, inventory: Inventory, progress: Progress, root: Path,
                 cache: Path) -> None:
        super().__init__(progress)
        self.inventory = inventory
        self.root = root
        self.cache = cache
        self.directory = root / inventory.lab
        self.journal = None
        self.local = Runner("controller")

    @property
    def hypervisor(self) -> Hypervisor:
        if self._driver is None:
            raise LabError(f"lab {self.inventory.lab} has no hypervisor yet: it is not up")
        return self._driver

    def guest_location(self, guest: str = "") -> str | None:
        return sole_host(self.hypervisor, guest_of(self.inventory, guest).name)

    def running_guest(self, guest: str = "") -> RunningDomain | None:
        return running_copy(self.hypervisor, guest_of(self.inventory, guest).name)

    def copies(self, guest: str = "") -> list[tuple[str, str, str]]:
        """(host, domain name, state) of every copy of the guest, as the hypervisor lists
        them (half-received ones too)."""
        name = guest_of(self.inventory, guest).name
        return [(h, n, s.value) for h, n, s in self.hypervisor.copies(name)]

    @functools.cached_property
    def features(self) -> frozenset[str]:
        from xenlab.lab.select import lab_features  # the table of what each lab can do

        return lab_features(self.inventory)

    def namespace(self, host: str) -> str:
        return f"{jr.namespace_prefix(self.inventory.lab)}{host}"

    @property
    def switch(self) -> str:
        return self.namespace("switch")

    def down(self) -> None:
        """Tear down everything this lab made (its journal says what), then forget it."""
        with self.progress.step("lab teardown"):
            self._quiesce()
            jr.reap(self.inventory.lab, self.root, force=True)
        self.release_name()
        self.force(LabState.ABSENT)
        self._forget_hosts()
        self.journal = None

    def _quiesce(self) -> None:
        """What goes first, gently, before the journal's reap (guests, connections)."""

    def _forget_hosts(self) -> None:
        raise NotImplementedError

    _name_lock: jr.NameLock | None = None

    def hold_name(self) -> None:
        """This run's claim on the lab name (machine-wide), before anything is touched."""
        if self._name_lock is None:
            self._name_lock = jr.NameLock(self.inventory.lab)
        self._name_lock.acquire(self.root)

    def release_name(self) -> None:
        if self._name_lock is not None:
            self._name_lock.release()

    def up(self) -> None:
        """Reap what an earlier run left, then build the whole lab with the guest running."""
        self.hold_name()
        try:
            removed = jr.reap(self.inventory.lab, self.root)
            self._refuse_foreign_directory()
        except BaseException:
            self.release_name()
            raise
        if removed:
            self.progress.say(f"reaped a stale lab '{self.inventory.lab}': {len(removed)} items "
                              f"({', '.join(removed[:3])}{', ...' if len(removed) > 3 else ''})")
        try:
            self.transition(LabState.VM_RUNNING)
        except BaseException:
            self.down()
            raise

    def _refuse_foreign_directory(self) -> None:
        """The lab is built in `root/<lab>`; a directory already there that the reaper left
        (no journal, a symlink, not a directory) is not xenlab's: refuse to build into it."""
        target = self.root / self.inventory.lab
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise LabError(f"{target} is in the way of lab '{self.inventory.lab}' and is not "
                           "a lab directory xenlab made; move it away or choose another "
                           "--lab-root or lab name")
        if target.is_dir() and any(target.iterdir()):
            raise LabError(f"{target} already holds files but no lab journal (lab.json), so "
                           f"xenlab does not build lab '{self.inventory.lab}' over it; move it "
                           "away or choose another --lab-root or lab name")

    def power_control(self) -> PowerControl | None:
        return None  # a lab that offers it (the power-control feature) says how

    def provisioner(self) -> None:
        return None  # a lab built here is built set up; `xenlab lab provision` re-checks it

    def keep(self) -> str:
        """Leave the lab up after this run; `xenlab lab down` removes it later."""
        if self.journal:
            self.journal.kept = True
            self.journal.save()
        return (f"lab '{self.inventory.lab}' kept up; remove it with "
                f"`xenlab lab down --lab {self.inventory.lab}`")

    def save_logs(self, target: Path) -> Path:
        """Copy consoles, QEMU and vblade logs and the journal out of the lab directory."""
        destination = target / self.inventory.lab
        destination.mkdir(parents=True, exist_ok=True)
        for pattern in ("*/*.console", "*/*.log", "lab.json"):
            for path in self.directory.glob(pattern):
                name = f"{path.parent.name}-{path.name}" if path.parent != self.directory else path.name
                shutil.copyfile(path, destination / name)
        return destination

    def _ip(self, namespace: str, *args: str) -> None:
        self.local.run(["ip", "-n", namespace, *args])

    def _add_namespace(self, name: str) -> None:
        assert self.journal is not None
        self.journal.add_namespace(name)  # recorded before it exists: a kill leaves no orphan
        self.local.run(["ip", "netns", "add", name])

    def _hosts_file(self) -> str:
        """/etc/hosts as the article suggests: every lab host and the VM, on every machine."""
        lines = ["127.0.0.1\tlocalhost"]  # no 127.0.1.1 line: the host's name is its lab address
        lines += [f"{h.address}\t{h.name}" for h in self.inventory.hosts]
        return "\n".join(lines) + "\n"
