"""Pure readings for the security suite: vblade command lines, sshd's effective config."""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class VbladeExport:
    shelf: int
    slot: int
    interface: str
    device: str
    macs: tuple[str, ...]  # vblade -m allow-list; empty: every MAC may use the export


def parse_vblade_processes(ps_args: str) -> list[VbladeExport]:
    """`ps -eo args` -> the exports of the vblade processes among them.

    vblade's usage: vblade [-b bufcnt] [-o offset] [-l length] [-d] [-s] [-r] [-m mac[,mac...]]
    shelf slot netif filename
    """
    exports = []
    for line in ps_args.splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if not words or words[0].rsplit("/", 1)[-1] != "vblade":
            continue
        macs: tuple[str, ...] = ()
        rest: list[str] = []
        i = 1
        while i < len(words):
            word = words[i]
            if word in ("-b", "-o", "-l") and i + 1 < len(words):
                i += 2
                continue
            if word == "-m" and i + 1 < len(words):
                macs = tuple(m for m in words[i + 1].split(",") if m)
                i += 2
                continue
            if word.startswith("-") and not word.lstrip("-").isdigit():
                i += 1
                continue
            rest.append(word)
            i += 1
        if len(rest) >= 4 and rest[0].isdigit() and rest[1].isdigit():
            exports.append(VbladeExport(int(rest[0]), int(rest[1]), rest[2], rest[3], macs))
    return exports


def parse_sshd_password_auth(sshd_t: str) -> bool | None:
    """`sshd -T` output -> whether password logins are on; None when there is no sshd."""
    for line in sshd_t.splitlines():
        key, _, value = line.strip().partition(" ")
        if key.lower() == "passwordauthentication":
            return value.strip().lower() == "yes"
    return None
