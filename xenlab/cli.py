"""The `xenlab` command: lab housekeeping outside pytest.

    xenlab lab list                 labs with files on this machine, and whether their run lives
    xenlab lab down [--lab NAME]    tear down a kept (or abandoned) embedded lab
    xenlab lab provision            run a kept embedded Xen lab's provisioning steps again
    xenlab lab kit [--xen]          fetch the embedded guest's kernel, build its initramfs
                                    (--xen: and the embedded Xen lab's hosts)
    xenlab aoe-check CAPTURE.pcap   AoE problems in a capture (exit 1 when there are any)
    xenlab compare OLD.json NEW.json   downtime and loss against a baseline (exit 1: regression)
    xenlab probe TARGET [--interval 1ms] [--duration 30s] [--from HOST]   measure an outage
    xenlab report trend R1.json R2.json ... [-o trend.html]   figures across runs
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from xenlab.aoe.check import analyze, read_capture
from xenlab.errors import XenlabError
from xenlab.hosts.runner import Runner, host_prefix, ssh_runner
from xenlab.inventory import load_inventory
from xenlab.inventory.model import Connection, LabKind
from xenlab.lab import journal as jr
from xenlab.lab.guestkit import ensure_guest_kit, ensure_memcheck, ensure_native_probe
from xenlab.measure.ping import figures
from xenlab.measure.prober import Prober, ship_native
from xenlab.measure.results import Tolerance, compare_results, comparison_table, load_results
from xenlab.report.trend import write_trend


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xenlab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    lab = sub.add_parser("lab", help="embedded lab housekeeping")
    lab_sub = lab.add_subparsers(dest="action", required=True)
    again = lab_sub.add_parser("provision", help="run a kept embedded Xen lab's provisioning "
                               "steps again (each reports applied or already satisfied)")
    again.add_argument("--inventory", default="inventories/embedded-xen.yml")
    again.add_argument("--root", default=os.environ.get("XENLAB_LAB_ROOT",
                                                        str(jr.DEFAULT_ROOT)))
    again.add_argument("--cache", default=os.environ.get("XENLAB_CACHE", "/var/cache/xenlab"))
    kit = lab_sub.add_parser("kit", help="fetch and build the embedded guest's kernel and initramfs")
    kit.add_argument("--xen", action="store_true",
                     help="also build the embedded Xen lab's host kit (debootstrap, minutes)")
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
    cmp = sub.add_parser("compare", help="compare two results.json: downtime and loss per "
                                          "scenario and direction (exit 1 on a regression)")
    cmp.add_argument("old")
    cmp.add_argument("new")
    cmp.add_argument("--factor", type=float, default=Tolerance.downtime_factor,
                     help="allowed growth of median downtime (default 0.5: +50 %%)")
    cmp.add_argument("--slack-ms", type=float, default=Tolerance.downtime_slack_ms,
                     help="plus this many ms (default 20)")
    cmp.add_argument("--loss-slack", type=float, default=Tolerance.loss_slack_pct,
                     help="allowed rise of median loss, in points (default 1)")
    probe = sub.add_parser("probe", help="measure an outage (of a migration started by hand, "
                                         "or anything else) at 1 ms resolution")
    probe.add_argument("target", help="address or name to probe")
    probe.add_argument("--interval", default="1ms", help="probe interval (default 1ms)")
    probe.add_argument("--duration", default="30s", help="how long (default 30s; Ctrl-C ends "
                                                        "it early and still prints figures)")
    probe.add_argument("--from", dest="origin", metavar="HOST",
                       help="send from this lab host (of --inventory) instead of here")
    probe.add_argument("--inventory", default="inventories/embedded-xen.yml")
    probe.add_argument("--root", default=os.environ.get("XENLAB_LAB_ROOT", str(jr.DEFAULT_ROOT)))
    probe.add_argument("--tool", choices=("xenlab", "ping"), default="xenlab")
    probe.add_argument("--cache", default=os.environ.get("XENLAB_CACHE", "/var/cache/xenlab"),
                       help="where the C prober's build is kept")
    report = sub.add_parser("report", help="reports from results.json files")
    report_sub = report.add_subparsers(dest="kind", required=True)
    trend = report_sub.add_parser("trend", help="figures across runs, host facts that changed")
    trend.add_argument("results", nargs="+", help="results.json files, oldest first")
    trend.add_argument("-o", "--output", default="reports/trend.html")
    args = parser.parse_args(argv)
    try:
        if args.command == "report":
            print(f"wrote {write_trend(args.results, args.output)}")
            return 0
        if args.command == "compare":
            rows = compare_results(load_results(args.old), load_results(args.new),
                                   Tolerance(args.factor, args.slack_ms, args.loss_slack))
            print(comparison_table(rows))
            return 1 if any(r.regressed for r in rows) else 0
        if args.command == "probe":
            return _probe(args)
        if args.command == "aoe-check":
            analysis = analyze(read_capture(args.capture), args.expect_mac)
            print(analysis.report())
            return 0 if analysis.ok else 1
        if args.action == "kit":
            made = ensure_guest_kit(Path(args.cache) / "guest")
            print(f"guest kernel {made.version}: {made.kernel}, initramfs {made.initramfs}")
            print(f"guest memory checker: {ensure_memcheck(Path(args.cache) / 'guest')}")
            if args.xen:
                from xenlab.lab.xenkit import ensure_xen_kit
                from xenlab.progress import Progress

                xen = ensure_xen_kit(Path(args.cache) / "xen", Progress())
                print(f"Xen host kit (Xen 4.17, dom0 {xen.kernel_version}): {xen.directory}")
            return 0
        if args.action == "provision":
            from xenlab.lab.embedded_xen import EmbeddedXenLab
            from xenlab.progress import Progress

            inventory = load_inventory(args.inventory)
            if inventory.kind is not LabKind.EMBEDDED_XEN:
                raise XenlabError(f"{args.inventory} is not an embedded Xen lab; for a real "
                                  "lab use pytest --lab-provision")
            xen_lab = EmbeddedXenLab(inventory, progress=Progress(), root=Path(args.root),
                                 cache=Path(args.cache))
            outcomes = xen_lab.provision_again()
            for outcome in outcomes:
                print(f"{outcome.step.host}: {outcome.step.name}: "
                      f"{'already satisfied' if outcome.done == 'satisfied' else 'applied'}")
            applied = sum(1 for o in outcomes if o.done == "applied")
            print(f"{len(outcomes)} steps: {applied} applied, {len(outcomes) - applied} "
                  "already satisfied")
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


def parse_duration(text: str) -> float:
    """'1ms', '0.5s', '30s', '2m', or plain seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", text)
    if not match:
        raise XenlabError(f"{text!r} is not a duration such as 1ms, 30s or 2m")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def _probe(args: argparse.Namespace) -> int:
    interval, duration = parse_duration(args.interval), parse_duration(args.duration)
    if not 0.0001 <= interval <= 10:
        raise XenlabError(f"--interval {args.interval}: expected 0.1ms to 10s")
    runner, python, remote = Runner(), sys.executable, False
    if args.origin:
        inventory = load_inventory(args.inventory)
        spec = inventory.host(args.origin) if args.origin in {
            h.name for h in inventory.hosts} else None
        if spec is None:
            raise XenlabError(f"--from {args.origin}: no such host in {args.inventory}")
        if inventory.kind.built_here and spec.connection is Connection.SSH:
            # a dom0 of the embedded Xen lab: over SSH with the lab's own keys
            config = Path(args.root) / inventory.lab / "ssh" / "config"
            if not config.exists():
                raise XenlabError(f"no running embedded lab '{inventory.lab}' (keep one up "
                                  "with --lab-keep)")
            runner = ssh_runner(spec.name, str(spec.address), ssh_config=str(config))
            python, remote = "python3", True
        elif inventory.kind.built_here:
            journal = jr.Journal.read(Path(args.root) / inventory.lab)
            anchors = [p for p in (journal.processes if journal else [])
                       if p.host == args.origin and p.what == "host namespaces" and p.alive()]
            if not anchors:
                raise XenlabError(f"no running embedded lab '{inventory.lab}' with a host "
                                  f"{args.origin!r} (keep one up with --lab-keep)")
            runner = Runner(args.origin, host_prefix(anchors[0].pid))
        else:
            runner = ssh_runner(spec.name, str(spec.address), spec.user, spec.port,
                                spec.key_file, spec.ssh_config)
            python, remote = "python3", True
    native = None
    if args.tool == "xenlab":
        try:  # the C prober (static, copied over SSH, for remote observers)
            binary = ensure_native_probe(Path(args.cache) / "tools", static=remote)
            native = ship_native(runner, binary) if remote else str(binary)
        except XenlabError as exc:
            print(f"xenlab: the Python prober runs instead of the C one: {exc}", file=sys.stderr)
    prober = Prober(runner, args.target, interval, python, args.tool, native)
    print(f"probing {args.target} every {interval * 1000:g} ms for {duration:g} s "
          f"from {args.origin or 'here'} (Ctrl-C to stop)", file=sys.stderr)
    prober.start()
    try:
        time.sleep(duration)
    except KeyboardInterrupt:
        pass
    run = prober.stop()
    try:
        f = figures(run)
    except XenlabError as exc:
        print(f"xenlab: {exc}", file=sys.stderr)
        return 1
    print(f"sent {f.sent}, received {f.received}, lost {f.lost} ({f.loss_pct:.2f} %)")
    print(f"longest gap between replies {f.longest_gap_ms:.1f} ms: "
          f"network downtime {f.downtime_ms:.1f} ms")
    print(f"rtt min/median/p99/max = {f.rtt_min_ms:.3f}/{f.rtt_median_ms:.3f}/"
          f"{f.rtt_p99_ms:.3f}/{f.rtt_max_ms:.3f} ms")
    return 0


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
        inventory = args.inventory or "inventories/embedded-xen.yml"
        name = load_inventory(inventory).lab
    holder = jr.NameLock(name).held_elsewhere()
    if holder and not args.force:
        print(f"xenlab: lab '{name}' is in use by {holder}; that run tears it down itself "
              "(--force to tear it down anyway)", file=sys.stderr)
        return 2
    removed = jr.reap(name, Path(args.root), force=args.force)
    jr.NameLock(name).remove_if_free()
    if not removed:
        print(f"lab '{name}': nothing to remove")
    for item in removed:
        print(f"removed {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
