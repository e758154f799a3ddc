"""Relocation: the resource hosts accept incoming migrations on the inventory's transport.

xm: xend-config.sxp enables the relocation server on the port, and the port listens; an
address '' without hosts-allow is a security finding. xl: key-based ssh between the
resource hosts. Embedded lab: the destination's incoming port is reachable from the source.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from testinfra.host import Host

from xenlab.checks.xen import (
    classify_connect,
    parse_xend_config,
    relocation_findings,
    relocation_open_to_all,
)
from xenlab.hypervisor.virsh import destination_uri
from xenlab.inventory import Inventory
from xenlab.lab import Lab

XEND_CONFIG = "/etc/xen/xend-config.sxp"


def xend_config(host: Host, name: str) -> dict[str, str]:
    __tracebackhide__ = True
    f = host.file(XEND_CONFIG)
    if not f.exists:
        pytest.fail(f"on {name}: {XEND_CONFIG} is missing", pytrace=False)
    return parse_xend_config(f.content_string)


@pytest.mark.needs("xend-relocation")
def test_xend_relocation_server_configured(resource_name: str, host_of: Callable[[str], Host],
                                           inventory: Inventory) -> None:
    problems = relocation_findings(xend_config(host_of(resource_name), resource_name),
                                   inventory.relocation_port)
    assert not problems, f"on {resource_name}: {XEND_CONFIG}: " + "; ".join(problems)


@pytest.mark.needs("xend-relocation")
def test_xend_relocation_port_listens(resource_name: str, host_of: Callable[[str], Host],
                                      inventory: Inventory) -> None:
    port = inventory.relocation_port
    assert host_of(resource_name).socket(f"tcp://{port}").is_listening, (
        f"on {resource_name}: nothing listens on TCP {port} (restart xend: rcxend restart)")


@pytest.mark.needs("xend-relocation")
def test_xend_relocation_not_open_to_all(resource_name: str, host_of: Callable[[str], Host],
                                         inventory: Inventory,
                                         security_finding: Callable[..., None]) -> None:
    if relocation_open_to_all(xend_config(host_of(resource_name), resource_name)):
        security_finding(
            "relocation-open", f"on {resource_name}: {XEND_CONFIG} has (xend-relocation-address '') and no "
            f"xend-relocation-hosts-allow: any host can push a domain to port "
            f"{inventory.relocation_port}; list the resource hosts in "
            f"(xend-relocation-hosts-allow '^xen_resource_1$ ^xen_resource_2$')")


@pytest.mark.needs("xl-ssh-transport")
def test_xl_ssh_transport(resource_name: str, host_of: Callable[[str], Host],
                          inventory: Inventory) -> None:
    host = host_of(resource_name)
    for other in inventory.resources:
        if other.name == resource_name:
            continue
        result = host.run("ssh -o BatchMode=yes -o ConnectTimeout=5 %s true", other.name)
        assert result.rc == 0, (f"xl migrate from {resource_name} to {other.name} needs key-based "
                                f"ssh: {result.stderr.strip()[-300:]}")


@pytest.mark.needs("libvirt-remote")
def test_libvirt_reaches_every_other_host(resource_name: str, host_of: Callable[[str], Host],
                                         inventory: Inventory) -> None:
    """libvirt migrates through the destination's libvirtd over ssh: from each resource host,
    `virsh -c xen+ssh://root@OTHER/system uri` (or qemu+ssh) must answer."""
    host = host_of(resource_name)
    for other in inventory.resources:
        if other.name == resource_name:
            continue
        uri = destination_uri(inventory.libvirt_driver, str(other.address))
        result = host.run("env LC_ALL=C timeout 60 virsh -c %s uri", uri)
        assert result.rc == 0, (f"virsh migrate from {resource_name} to {other.name} needs "
                                f"{uri} to answer (key-based ssh, libvirtd running there): "
                                f"{(result.stderr or result.stdout).strip()[-300:]}")


@pytest.mark.needs("qemu-incoming")
def test_incoming_port_reachable_from_the_source(resource_name: str, lab: Lab,
                                                 host_of: Callable[[str], Host],
                                                 inventory: Inventory) -> None:
    """Every other resource host, as a destination, accepts the source's connection."""
    source = lab.guest_location()
    if resource_name == source:
        pytest.skip(f"{inventory.domain.name} runs on {resource_name}: not a destination now")
    assert source is not None, f"{inventory.domain.name} runs on no single host"
    address, port = str(inventory.host(resource_name).address), inventory.relocation_port
    with lab.relocation_listener(resource_name):
        result = host_of(source).run("timeout 3 bash -c %s",
                                     f"</dev/tcp/{address}/{port}")
    state = classify_connect(result.rc, result.stderr)
    assert state == "open", (f"relocation port {port} of {resource_name} is {state} from "
                             f"{source}: {result.stderr.strip() or 'no answer within 3 s'}")
