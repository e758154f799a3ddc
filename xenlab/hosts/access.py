"""testinfra `Host` objects for every lab host, by connection kind.

Real labs use testinfra's own ssh/paramiko/local backends. Embedded hosts are network
namespaces: `NetnsBackend` runs each command inside the host's namespace with the host's
private /etc laid over the machine's, so suites use the very same Host API on both.
"""

from __future__ import annotations

import functools
import os
import shlex
from typing import Any

import paramiko
import testinfra
from testinfra.backend.base import BaseBackend, CommandResult
from testinfra.backend.paramiko import ParamikoBackend
from testinfra.host import Host

from xenlab.hosts.runner import host_prefix
from xenlab.inventory.model import Connection, HostSpec


class NsenterBackend(BaseBackend):
    """testinfra backend: commands run on an embedded host (its namespaces, entered by PID)."""

    NAME = "xenlab-nsenter"

    def __init__(self, anchor_pid: int, label: str, *args: Any, **kwargs: Any) -> None:
        self.anchor_pid = anchor_pid
        self.label = label
        super().__init__(label, *args, **kwargs)

    def get_pytest_id(self) -> str:
        return self.label

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        inner = self.get_command(command, *args)
        return self.run_local(shlex.join([*host_prefix(self.anchor_pid), "sh", "-c", inner]))


def embedded_host(anchor_pid: int, label: str) -> Host:
    return Host(NsenterBackend(anchor_pid, label))


class VerifiedParamikoBackend(ParamikoBackend):
    """testinfra's paramiko backend, but host keys verified as OpenSSH verifies them: the
    inventory's known_hosts (or ~/.ssh/known_hosts) is loaded, and an unknown key is refused
    (testinfra's own accepts it with a warning), or trusted on first use only when asked.
    One client, so one connection, per host for the whole run."""

    NAME = "xenlab-paramiko"

    def __init__(self, spec: HostSpec, known_hosts: str | None, accept_new_host_key: bool,
                 *args: Any, **kwargs: Any) -> None:
        self.spec = spec
        self.known_hosts = os.path.expanduser(known_hosts or "~/.ssh/known_hosts")
        self.accept_new_host_key = accept_new_host_key
        super().__init__(f"{spec.user}@{spec.address}:{spec.port}", *args, **kwargs)

    @functools.cached_property
    def client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if os.path.exists(self.known_hosts):
            client.load_host_keys(self.known_hosts)
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy() if self.accept_new_host_key
                                           else paramiko.RejectPolicy())
        try:
            client.connect(str(self.spec.address), port=self.spec.port,
                           username=self.spec.user, key_filename=self.spec.key_file,
                           timeout=30, allow_agent=False,
                           look_for_keys=self.spec.key_file is None)
        except paramiko.SSHException as exc:  # an unknown or changed key above all
            raise RuntimeError(f"{self.spec.name} ({self.spec.address}) over paramiko: {exc} "
                               f"(known_hosts: {self.known_hosts})") from None
        return client  # a key trusted on first use is trusted for this run, not written


def ssh_host(spec: HostSpec, known_hosts: str | None = None,
             accept_new_host_key: bool = False, control_path: str | None = None) -> Host:
    """A real host through testinfra's ssh or paramiko backend, as the inventory says."""
    if spec.connection is Connection.LOCAL:
        return testinfra.get_host("local://")
    if spec.connection is Connection.PARAMIKO:
        return Host(VerifiedParamikoBackend(spec, known_hosts or spec.known_hosts,
                                            accept_new_host_key))
    scheme = "ssh"
    kwargs: dict[str, Any] = {}
    if spec.key_file:
        kwargs["ssh_identity_file"] = os.path.expanduser(spec.key_file)
    if spec.ssh_config:
        kwargs["ssh_config"] = os.path.expanduser(spec.ssh_config)
    if scheme == "ssh":  # host keys verified; unknown ones trusted on first use only if asked
        extra = ["-o", "StrictHostKeyChecking=" + ("accept-new" if accept_new_host_key
                                                  else "yes")]
        if known_hosts:
            extra += ["-o", f"UserKnownHostsFile={shlex.quote(known_hosts)}"]
        kwargs["ssh_extra_args"] = " ".join(extra)
        if control_path:  # testinfra's ControlMaster needs a path to share the connection
            kwargs["controlpath"] = control_path.replace("%", "%%")  # testinfra %-formats
            kwargs["controlpersist"] = 120
    return testinfra.get_host(f"{scheme}://{spec.user}@{spec.address}:{spec.port}", **kwargs)
