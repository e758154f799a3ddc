"""The `xenlab` command: lab housekeeping outside pytest.

    xenlab lab list                 labs with files on this machine, and whether their run lives
    xenlab lab down [--lab NAME]    tear down a kept (or abandoned) embedded lab
    xenlab lab kit                  fetch the embedded guest's kernel, build its initramfs
    xenlab aoe-check CAPTURE.pcap   AoE problems in a capture (exit 1 when there are any)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from xenlab.aoe.check import analyze, read_capture
from xenlab.errors import XenlabError
from xenlab.inventory import load_inventory
from xenlab.lab import journal as jr
from xenlab.lab.guestkit import ensure_guest_kit, ensure_memcheck


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xenlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    lab = sub.add_parser("lab", help="embedded lab housekeeping")
    lab_sub = lab.add_subparsers(dest="action", required=True)
    kit = lab_sub.add_parser("kit", help="fetch and build the embedded guest's kernel and initramfs")
    kit.add_argument("--cache", default=os.environ.get("XENLAB_CACHE", "/var/cache/xenlab"),
                     help="cache directory (env XENLAB_CACHE)")
    lab_sub.add_parser("faults", help="faults the embedded lab can be built with (--lab-fault)")
    for action, text in (("down", "tear down an embedded lab"), ("list", "list embedded labs")):
        p = lab_sub.add_parser(action, help=text)
        p.add_argument("--root", default=os.environ.get("XENLAB_LAB_ROOT", str(jr.DEFAULT_ROOT)),
                       help="where embedded labs keep their files (env XENLAB_LAB_ROOT)")
        if action == "down":
            who = p.add_mutually_exclusive_group()
            who.add_argument("--lab", help="lab name (default: the embedded inventory's)")
            who.add_argument("--inventory", help="take the lab name from this inventory")
            p.add_argument("--force", action="store_true",
                           help="even if the run that built it still seems alive")
    check = sub.add_parser("aoe-check", help="analyse an AoE capture (tcpdump -w) offline")
    check.add_argument("capture", help="pcap or pcapng file")
    check.add_argument("--expect-mac", action="append", default=[], metavar="MAC",
                       help="MACs allowed to answer (the storage host's); repeatable")
    args = parser.parse_args(argv)
    try:
        if args.command == "aoe-check":
            analysis = analyze(read_capture(args.capture), args.expect_mac)
            print(analysis.report())
            return 0 if analysis.ok else 1
        if args.action == "kit":
            made = ensure_guest_kit(Path(args.cache) / "guest")
            print(f"guest kernel {made.version}: {made.kernel}, initramfs {made.initramfs}")
            print(f"guest memory checker: {ensure_memcheck(Path(args.cache) / 'guest')}")
            return 0
        if args.action == "faults":
            from xenlab.lab.embedded import FAULTS

            for name, text in FAULTS.items():
                print(f"{name:<20} {text}")
            return 0
        if args.action == "list":
            return _list(Path(args.root))
        return _down(args)
    except XenlabError as exc:
        print(f"xenlab: {exc}", file=sys.stderr)
        return 2


def _list(root: Path) -> int:
    labs = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not labs:
        print(f"no embedded labs under {root}")
    for directory in labs:
        journal = jr.Journal.read(directory)
        if journal is None:
            print(f"{directory.name}: files only (no journal)")
            continue
        state = "kept" if journal.kept else ("in use" if journal.owner_alive() else "abandoned")
        print(f"{directory.name}: {state}, run PID {journal.owner_pid}, "
              f"{len(journal.namespaces)} namespaces, {len(journal.processes)} processes")
    return 0


def _down(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("xenlab: tearing down an embedded lab needs root", file=sys.stderr)
        return 2
    name = args.lab
    if name is None:
        inventory = args.inventory or "inventories/embedded.yml"
        name = load_inventory(inventory).lab
    removed = jr.reap(name, Path(args.root), force=args.force)
    if not removed:
        print(f"lab '{name}': nothing to remove")
    for item in removed:
        print(f"removed {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
