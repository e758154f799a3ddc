"""testinfra `Host` objects for every lab host, by connection kind.

Real labs use testinfra's own ssh/paramiko/local backends. Embedded hosts are network
namespaces: `NetnsBackend` runs each command inside the host's namespace with the host's
private /etc laid over the machine's, so suites use the very same Host API on both.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

import testinfra
from testinfra.backend.base import BaseBackend, CommandResult
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


def ssh_host(spec: HostSpec, known_hosts: str | None = None,
             accept_new_host_key: bool = False, control_path: str | None = None) -> Host:
    """A real host through testinfra's ssh or paramiko backend, as the inventory says."""
    if spec.connection is Connection.LOCAL:
        return testinfra.get_host("local://")
    scheme = "paramiko" if spec.connection is Connection.PARAMIKO else "ssh"
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
