"""The lab's SSH kit, made fresh for each lab under its ssh/ directory: a client key, a
dropbear host key for the guest (pinned in known_hosts), the client config that reaches lab
machines through the storage host's namespace, and what the guest image needs to run
dropbear."""

from __future__ import annotations

from pathlib import Path

from xenlab.errors import LabError
from xenlab.hosts.runner import Runner
from xenlab.lab.image import GuestSsh, parse_ldd

DROPBEAR = "/usr/sbin/dropbear"


def client_key(local: Runner, directory: Path, comment: str, name: str = "id_ed25519") -> Path:
    """An ed25519 key without a passphrase (ssh-keygen); returns the private key's path."""
    directory.mkdir(parents=True, exist_ok=True)
    local.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
               str(directory / name)])
    return directory / name


def guest_host_key(local: Runner, directory: Path) -> str:
    """The guest's dropbear host key, made here; its public half ("ssh-ed25519 AAAA...")."""
    key = directory / "guest_host_key"
    local.run(["dropbearkey", "-t", "ed25519", "-f", str(key)])
    out = local.run(["dropbearkey", "-y", "-f", str(key)]).stdout
    public = next((" ".join(line.split()[:2]) for line in out.splitlines()
                   if line.startswith("ssh-")), None)
    if public is None:
        raise LabError(f"dropbearkey -y printed no public key: {out!r}")
    return public


def namespace_proxy(namespace: str) -> str:
    """The ProxyCommand that opens a lab connection from inside the storage host."""
    return f"ip netns exec {namespace} busybox nc %h %p"


def ssh_entry(name: str, address: str, directory: Path, proxy: str,
              control: Path | None = None, connect_timeout: int = 15) -> str:
    """One `Host` block of the lab's client config: its own key, its own pinned known_hosts,
    never a prompt; with `control`, one master connection per host for the whole run."""
    lines = [f"Host {name} {address}", f"  HostName {address}", "  User root",
             f"  IdentityFile {directory / 'id_ed25519'}", "  IdentitiesOnly yes",
             f"  UserKnownHostsFile {directory / 'known_hosts'}", "  StrictHostKeyChecking yes",
             "  BatchMode yes", f"  ProxyCommand {proxy}", f"  ConnectTimeout {connect_timeout}"]
    if control is not None:
        lines += ["  ControlMaster auto", f"  ControlPath {control}/%C", "  ControlPersist 600",
                  "  ServerAliveInterval 10"]
    return "\n".join(lines) + "\n\n"


def guest_ssh(local: Runner, directory: Path) -> GuestSsh:
    """What the guest image needs for SSH: dropbear, its libraries, the host key, and the
    lab's client key as authorized."""
    ldd = local.run(["ldd", DROPBEAR]).stdout
    return GuestSsh(server=DROPBEAR, libraries=tuple(parse_ldd(ldd)),
                    host_key=directory / "guest_host_key",
                    authorized_key=(directory / "id_ed25519.pub").read_text())
