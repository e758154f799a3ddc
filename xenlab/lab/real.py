"""A real lab: the inventory's machines, reached over SSH through testinfra. Nothing is built
or changed here; provisioning is a separate, explicit step."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from testinfra.host import Host

from xenlab.errors import LabError, XenlabError
from xenlab.hosts.access import ssh_host
from xenlab.hosts.runner import Runner, describe_ssh_failure, host_runner
from xenlab.hypervisor.base import Hypervisor, MigrationResult, RunningDomain, running_copy, sole_host
from xenlab.hypervisor.registry import DriverContext, make_driver
from xenlab.inventory.model import Connection, Inventory, Role
from xenlab.lab import guest_of
from xenlab.lab import journal as jr
from xenlab.lab.guestkit import ensure_native_probe
from xenlab.lab.power import CommandPower
from xenlab.lab.select import lab_features
from xenlab.measure.prober import ship_native
from xenlab.progress import Progress
from xenlab.provision.steps import Outcome, apply, article_plan
from xenlab.storage.lvm import LVS_ARGS, PVS_ARGS, VGS_ARGS, LvmReports
from xenlab.storage.ref import BlockDeviceStorage


class RealLab(BlockDeviceStorage):
    def __init__(self, inventory: Inventory, *, progress: Progress,
                 cache: Path = Path("/var/cache/xenlab"),
                 accept_new_host_keys: bool = False, allow_power_off: bool = False) -> None:
        self.accept_new_host_keys = accept_new_host_keys
        self.allow_power_off = allow_power_off
        self.inventory = inventory
        self.progress = progress
        self.cache = cache
        self._hosts: dict[str, Host] = {}
        names = [h.name for h in inventory.by_role(Role.RESOURCE)]
        self.hypervisor: Hypervisor = make_driver(inventory.toolstack, DriverContext(
            inventory, {n: self.host(n) for n in names}, {n: self.runner(n) for n in names}))
        self.features = lab_features(inventory)

    def host(self, name: str) -> Host:
        if name not in self._hosts:
            spec = self.inventory.host(name)
            self._hosts[name] = ssh_host(spec, spec.known_hosts,
                                         accept_new_host_key=self.accept_new_host_keys,
                                         control_path=self._control_path)
        return self._hosts[name]

    def up(self) -> None:
        try:
            self._make_control_dir()
            self._connect()
        except BaseException:
            self.down()  # the connections opened so far, and their socket directory
            raise

    def _connect(self) -> None:
        with self.progress.step("lab connect"):
            for spec in self.inventory.hosts:
                if spec.role is Role.GUEST:
                    continue
                # our runner, not testinfra's (which raises on ssh's own exit status 255)
                result = self.runner(spec.name).run(["true"], check=False, timeout=30)
                if result.rc != 0:
                    raise LabError(describe_ssh_failure(spec.name, str(spec.address),
                                                        result.stderr, spec.known_hosts))
                if spec.connection is Connection.PARAMIKO:  # the checks' own connection too
                    try:
                        self.host(spec.name).run("true")
                    except RuntimeError as exc:
                        raise LabError(str(exc)) from None

    probe_python = "python3"

    def provision(self, allow_wipe: tuple[str, ...] = ()) -> list[Outcome]:
        """The article's set-up on the inventory's hosts (and no others), each step checked
        first and applied only where needed; a device holding data is never overwritten
        unless named in `allow_wipe`."""
        inv = self.inventory
        if not inv.image:
            raise LabError(f"{inv.path}: provisioning needs the guest image tarball: set "
                           f"all.vars.xenlab.image (the article's xenimage.tgz)")
        try:
            data = Path(inv.image).read_bytes()
        except OSError as exc:
            raise LabError(f"{inv.path}: image {inv.image}: {exc.strerror}") from None
        digest = hashlib.sha256(data).hexdigest()[:16]
        steps = article_plan(inv, base64.encodebytes(data).decode(), digest)
        return apply(steps, self.runner, self.progress, allow_wipe)

    @functools.cached_property
    def probe_binary(self) -> str | None:
        """The static C prober copied to the observer (a tenth of the Python prober's CPU
        at 1 kHz); None where it cannot run there: the Python prober is used instead."""
        observer = self.runner(self.inventory.observer)
        try:
            binary = ensure_native_probe(self.cache / "tools", static=True)
            if self.inventory.observer == "controller" or \
                    self.inventory.host(self.inventory.observer).connection is Connection.LOCAL:
                return str(binary)
            with self.progress.step(f"prober copied to {self.inventory.observer}"):
                return ship_native(observer, binary)
        except XenlabError as exc:
            self.progress.say(f"the Python prober runs instead of the C one: {exc}")
            return None

    @property
    def aoe_device(self) -> str:
        assert self.inventory.aoe.device is not None  # required for real labs by the loader
        return self.inventory.aoe.device

    def lvm_views(self) -> list[LvmReports]:
        """pvs/vgs/lvs as each resource host sees them."""
        views = []
        for spec in self.inventory.resources:
            host = self.host(spec.name)
            texts = [host.check_output(shlex.join(args)) for args in (PVS_ARGS, VGS_ARGS, LVS_ARGS)]
            views.append(LvmReports(spec.name, *texts))
        return views

    @contextlib.contextmanager
    def relocation_listener(self, destination: str) -> Iterator[None]:
        """xend and sshd listen on their own on a real lab: nothing to start."""
        yield

    def runner(self, name: str) -> Runner:
        if name == "controller":  # an observer on the machine that runs xenlab
            return Runner("controller")
        return host_runner(self.inventory.host(name), self.accept_new_host_keys,
                           self._control_path)

    @property
    def _control_path(self) -> str:
        """One SSH connection per host for the whole run (testinfra's checks and xenlab's
        own commands share it): sockets in /run/xenlab/<lab>, made by `up()` and closed by
        `down()` (nothing is made on this machine by merely describing the lab)."""
        return str(jr.control_dir(self.inventory.lab) / "%C")

    def _make_control_dir(self) -> None:
        directory = jr.control_dir(self.inventory.lab)
        if directory.is_symlink():
            raise LabError(f"{directory} is a symlink: xenlab keeps its SSH sockets only in a "
                           "directory of its own")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def fault_injector(self) -> None:
        return None  # never on someone's machines: the fault suite kills and cuts

    def power_control(self) -> CommandPower | None:
        """The inventory's power commands, only when the run allows them explicitly."""
        if not self.allow_power_off or "power-control" not in self.features:
            return None
        return CommandPower(self.inventory, Runner("controller"), self._answers,
                            lost=self._close)

    def _answers(self, host: str) -> bool:
        try:
            return self.runner(host).run(["true"], check=False, timeout=30).rc == 0
        except XenlabError:
            return False

    def provisioner(self) -> RealLab:
        return self  # the article's set-up, when --lab-provision asks for it

    def storage_faults(self) -> None:
        return None  # nor does xenlab stop someone's storage target

    def keep(self) -> str:
        """A real lab is never removed: keeping it is closing xenlab's connections."""
        self.down()
        return f"lab '{self.inventory.lab}' is a real lab: it stays as it is (connections closed)"

    def save_logs(self, target: Path) -> Path:
        """What the toolstack logged on each resource host (xl dmesg, the toolstack's own
        logs), read-only, into `target`/<lab>/<host>-<name>.log."""
        directory = target / self.inventory.lab
        directory.mkdir(parents=True, exist_ok=True)
        for spec in self.inventory.by_role(Role.RESOURCE):
            for name, command in self.hypervisor.diagnostics():
                result = self.runner(spec.name).run(["sh", "-c", command], check=False,
                                                    timeout=60)
                (directory / f"{spec.name}-{name}.log").write_text(
                    result.stdout + (f"\n[exit {result.rc}] {result.stderr}" if result.rc
                                     else ""))
        return directory

    def _close(self, name: str) -> None:
        """This run's shared connection to one host closed (a host powered off: commands
        would wait on it for TCP's timeouts); the next command opens a new one."""
        spec = self.inventory.host(name)
        if spec.connection in (Connection.SSH, Connection.PARAMIKO):  # both use OpenSSH
            prefix = self.runner(name).prefix  # [ssh, options..., user@host, --]
            subprocess.run([*prefix[:-2], "-O", "exit", prefix[-2]], capture_output=True,
                           check=False, timeout=10)

    def down(self) -> None:
        """A real lab is left as it was found; only this run's SSH connections are closed
        (and their socket directory removed, if nothing else is in it)."""
        directory = jr.control_dir(self.inventory.lab)
        if not directory.is_dir() or directory.is_symlink():
            return
        for spec in self.inventory.hosts:
            self._close(spec.name)
        deadline = time.monotonic() + 5.0  # a master unlinks its socket just after `-O exit`
        while any(p.is_socket() for p in directory.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            directory.rmdir()  # empty once every master has exited
        except OSError:
            pass

    def guest_location(self, guest: str = "") -> str | None:
        return sole_host(self.hypervisor, guest_of(self.inventory, guest).name)

    def running_guest(self, guest: str = "") -> RunningDomain | None:
        return running_copy(self.hypervisor, guest_of(self.inventory, guest).name)

    def migrate(self, destination: str, *, guest: str = "") -> MigrationResult:
        name = guest_of(self.inventory, guest).name
        source = self.guest_location(name)
        if source is None:
            raise LabError(f"{name} is not running on exactly one host")
        return self.hypervisor.migrate(name, source, destination,
                                       timeout=self.inventory.limits.migration_timeout_s)
