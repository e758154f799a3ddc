"""Other QEMU builds for the embedded lab, fetched from Debian without installing them.

`--lab-qemu 7.2` runs the lab on Debian 12's own QEMU 7.2 (whose TCG live migration
corrupts guest memory: the memory check must catch it), unpacked into the cache beside
the installed QEMU 10; it uses the machine's libraries and firmware.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from xenlab.errors import CommandError, LabError
from xenlab.hosts.runner import Runner

PACKAGE = "qemu-system-x86"


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
    binary = cache / f"qemu-{upstream}" / "usr/bin/qemu-system-x86_64"
    if binary.exists():
        return binary
    try:
        madison = runner.run(["apt-cache", "madison", PACKAGE]).stdout
    except CommandError as exc:
        raise LabError(f"cannot look up {PACKAGE} versions: {exc}") from None
    versions = debian_versions(madison, upstream)
    if not versions:
        raise LabError(f"no Debian package of QEMU {upstream} in the configured suites "
                       f"(apt-cache madison {PACKAGE}; run apt-get update?)")
    with tempfile.TemporaryDirectory(prefix="xenlab-qemu-") as tmp:
        runner.run(["apt-get", "download", f"{PACKAGE}={versions[0]}"], cwd=tmp, timeout=600)
        debs = list(Path(tmp).glob("*.deb"))
        if not debs:
            raise LabError(f"apt-get download {PACKAGE}={versions[0]} gave no package")
        target = cache / f"qemu-{upstream}"
        runner.run(["dpkg-deb", "-x", str(debs[0]), str(target)])
    if not binary.exists():
        raise LabError(f"{PACKAGE} {versions[0]} has no usr/bin/qemu-system-x86_64")
    return binary
