"""Run commands on this machine or inside one embedded host (a network namespace).

Commands are argument lists, never pasted strings. The lab builder uses these runners; suites
reach hosts through testinfra (`xenlab.hosts.access`).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xenlab.errors import CommandError
from xenlab.inventory.model import Connection, HostSpec

ANCHOR_SCRIPT = (
    'mount -t overlay xenlab-etc -o "lowerdir=$1:/etc" /etc || exit 125; '
    'cat /etc/hostname > /proc/sys/kernel/hostname || exit 126; '
    ': > "$2"; exec sleep infinity'
)


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str


def anchor_argv(namespace: str, etc_dir: str, ready_file: str) -> list[str]:
    """A process that *is* an embedded host: it holds the host's network namespace, a mount
    namespace of its own with the host's /etc laid over the machine's (its /etc/hosts,
    /etc/hostname, /etc/xen/...), and a UTS namespace with the host's name. It touches
    `ready_file` when set up, then sleeps until the lab ends it."""
    return ["ip", "netns", "exec", namespace, "unshare", "--mount", "--uts",
            "--propagation", "private", "sh", "-c", ANCHOR_SCRIPT, "xenlab-host", etc_dir,
            ready_file]


def host_prefix(anchor_pid: int) -> list[str]:
    """argv prefix that runs a command on the embedded host held by `anchor_pid`."""
    return ["nsenter", "--target", str(anchor_pid), "--mount", "--uts", "--net", "--"]


class Runner:
    """Runs argument lists on one host; raises CommandError with full context on failure."""

    def __init__(self, host: str = "controller", prefix: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, remote_shell: bool = False) -> None:
        self.host = host
        self.prefix = list(prefix)
        self.env = dict(env) if env else None
        self.remote_shell = remote_shell  # the prefix is ssh: the command goes as one string

    def argv(self, argv: Sequence[str]) -> list[str]:
        if self.remote_shell:
            return [*self.prefix, shlex.join(argv)]
        return self.prefix + list(argv)

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float | None = 120, cwd: str | None = None) -> Result:
        full = self.argv(argv)
        env = {**os.environ, **self.env} if self.env else None
        try:
            proc = subprocess.run(full, input=input, capture_output=True, text=True,
                                  timeout=timeout, env=env, cwd=cwd, check=False)
        except FileNotFoundError as exc:
            raise CommandError(self.host, argv, 127, "", f"command not found: {exc.filename}") from None
        except subprocess.TimeoutExpired as exc:
            raise CommandError(self.host, argv, -1, _text(exc.stdout),
                               f"timed out after {timeout} s") from None
        result = Result(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise CommandError(self.host, argv, proc.returncode, proc.stdout, proc.stderr)
        return result

    def spawn(self, argv: Sequence[str], *, log: str) -> subprocess.Popen[bytes]:
        """Start a long-running process in its own session, output to `log`."""
        with open(log, "ab") as out:
            return subprocess.Popen(self.argv(argv), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def stream(self, argv: Sequence[str]) -> subprocess.Popen[str]:
        """Start a process whose output is read while it runs (line-buffered text)."""
        return subprocess.Popen(self.argv(argv), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1, start_new_session=True)

    def __repr__(self) -> str:
        return f"Runner({self.host!r}, {shlex.join(self.prefix)!r})"


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def ssh_runner(name: str, address: str, user: str = "root", port: int = 22,
               key_file: str | None = None, ssh_config: str | None = None,
               accept_new_host_key: bool = False, known_hosts: str | None = None,
               control_path: str | None = None) -> Runner:
    """A runner for a real lab host over OpenSSH: batch mode (keys only) and host keys
    verified against known_hosts (the inventory's file, if it names one); an unknown host is
    trusted on first use only when asked."""
    strict = "accept-new" if accept_new_host_key else "yes"
    prefix = ["ssh", "-o", "BatchMode=yes", "-o", f"StrictHostKeyChecking={strict}",
              "-p", str(port)]
    if known_hosts:
        prefix += ["-o", f"UserKnownHostsFile={known_hosts}"]
    if control_path:  # one connection per host for the whole run, shared by every command
        # ... which notices a host gone (powered off, its link cut) within 15 s, instead of
        # every later command waiting on it for TCP's timeouts
        prefix += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control_path}",
                   "-o", "ControlPersist=120", "-o", "ServerAliveInterval=5",
                   "-o", "ServerAliveCountMax=3"]
    if key_file:
        prefix += ["-i", key_file]
    if ssh_config:
        prefix += ["-F", ssh_config]
    return Runner(name, [*prefix, f"{user}@{address}", "--"], remote_shell=True)


def host_runner(spec: HostSpec, accept_new_host_key: bool = False,
                control_path: str | None = None) -> Runner:
    """The one way to run argument lists on a real lab host, as its inventory entry says:
    `local` runs here; `ssh` and `paramiko` go over OpenSSH with the entry's user, port,
    key, ssh_config and known_hosts (paramiko is testinfra's backend for checks; commands
    that stream, such as the prober and `xl migrate`, need a process: OpenSSH's)."""
    if spec.connection is Connection.LOCAL:
        return Runner(spec.name)
    if spec.connection is Connection.EMBEDDED:
        raise CommandError(spec.name, "connect", 2, "", "an embedded host is reached through "
                           "its lab, not over a connection of its own")
    return ssh_runner(spec.name, str(spec.address), spec.user, spec.port, spec.key_file,
                      spec.ssh_config, accept_new_host_key=accept_new_host_key,
                      known_hosts=spec.known_hosts, control_path=control_path)


def describe_ssh_failure(host: str, address: str, stderr: str,
                         known_hosts: str | None = None) -> str:
    """One clear sentence for why SSH to a lab host failed (host keys above all)."""
    text = stderr.strip()
    known = known_hosts or "~/.ssh/known_hosts"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return (f"the SSH host key of {host} ({address}) has CHANGED since it was recorded in "
                f"{known}: someone may be intercepting the connection, or the host was "
                f"reinstalled; xenlab stops. Check the new key out of band, then remove the "
                f"old one (ssh-keygen -f {known} -R {address})")
    if "Host key verification failed" in text or "No ED25519 host key is known" in text \
            or "host key is known" in text:
        return (f"the SSH host key of {host} ({address}) is not in known_hosts: xenlab does "
                f"not trust unknown hosts. Check its fingerprint out of band and add it "
                f"(ssh-keyscan {address} >> {known}), or trust it on first use "
                f"with --lab-accept-new-host-keys")
    if "Permission denied" in text:
        return (f"{host} ({address}) refused the SSH key (Permission denied): xenlab logs in "
                f"with keys only; install the public key for the inventory's user")
    return f"{host} ({address}) is not reachable over SSH: {text[-300:] or 'no message'}"
