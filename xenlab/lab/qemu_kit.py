"""Other QEMU builds for the embedded lab, fetched from Debian without installing them.

`--lab-qemu 7.2` runs the lab on Debian 12's own QEMU 7.2 (whose TCG live migration
corrupts guest memory: the memory check must catch it), unpacked into the cache beside
the installed QEMU 10; it uses the machine's libraries and firmware.
"""

from __future__ import annotations

import re
import shlex
import tempfile
from pathlib import Path

from xenlab.errors import CommandError, LabError
from xenlab.hosts.runner import Runner

PACKAGE = "qemu-system-x86"
COMMON = "qemu-system-common"  # the accelerator modules the binary loads


def debian_versions(madison: str, upstream: str) -> list[str]:
    """Versions of the package in `apt-cache madison` output whose upstream part matches."""
    found = []
    for line in madison.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) >= 2 and re.match(rf"^(\d+:)?{re.escape(upstream)}[.+~-]", fields[1]):
            found.append(fields[1])
    return found


def is_version(text: str) -> bool:
    return re.fullmatch(r"\d+\.\d+", text) is not None


def ensure_debian_qemu(upstream: str, cache: Path, runner: Runner | None = None) -> Path:
    """Path of qemu-system-x86_64 from Debian's package of QEMU `upstream` (e.g. '7.2')."""
    runner = runner or Runner()
    target = cache / f"qemu-{upstream}"
    binary = target / "usr/bin/qemu-system-x86_64"
    wrapper = target / "qemu-system-x86_64"
    if wrapper.exists():
        return wrapper
    try:
        madison = runner.run(["apt-cache", "madison", PACKAGE]).stdout
    except CommandError as exc:
        raise LabError(f"cannot look up {PACKAGE} versions: {exc}") from None
    versions = debian_versions(madison, upstream)
    if not versions:
        raise LabError(f"no Debian package of QEMU {upstream} in the configured suites "
                       f"(apt-cache madison {PACKAGE}; run apt-get update?)")
    with tempfile.TemporaryDirectory(prefix="xenlab-qemu-") as tmp:
        runner.run(["apt-get", "download", f"{PACKAGE}={versions[0]}", f"{COMMON}={versions[0]}"],
                   cwd=tmp, timeout=600)
        debs = list(Path(tmp).glob("*.deb"))
        if len(debs) != 2:
            raise LabError(f"apt-get download {PACKAGE} {COMMON} {versions[0]} gave {len(debs)} "
                           f"packages, expected 2")
        for deb in debs:
            runner.run(["dpkg-deb", "-x", str(deb), str(target)])
    if not binary.exists():
        raise LabError(f"{PACKAGE} {versions[0]} has no usr/bin/qemu-system-x86_64")
    # its accelerator modules live beside it, not where the installed QEMU keeps its own;
    # its firmware is the machine's (seabios), which it would look for beside itself
    modules = target / "usr/lib/x86_64-linux-gnu/qemu"
    wrapper.write_text(f'#!/bin/sh\nQEMU_MODULE_DIR={shlex.quote(str(modules))} '
                       f'exec {shlex.quote(str(binary))} -L /usr/share/seabios '
                       f'-L /usr/share/qemu "$@"\n')
    wrapper.chmod(0o755)
    return wrapper
