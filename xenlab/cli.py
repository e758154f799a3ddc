"""The `xenlab` command: lab housekeeping outside pytest.

    xenlab lab list                 labs with files on this machine, and whether their run lives
    xenlab lab down [--lab NAME] [--dry-run]   tear down a kept (or abandoned) embedded lab
                                    (--dry-run: list what would be removed, remove nothing)
    xenlab lab provision            run a kept embedded Xen lab's provisioning steps again
    xenlab lab power off|on HOST    pull a kept embedded Xen lab's dom0 power, or boot it again
                                    (what a real lab's xenlab_power_off/on lines do by IPMI)
    xenlab lab kit [--xen]          fetch the embedded guest's kernel, build its initramfs
                                    (--xen: and the embedded Xen lab's hosts)
    xenlab aoe-check CAPTURE.pcap   AoE problems in a capture (exit 1 when there are any)
    xenlab compare OLD.json NEW.json   downtime and loss against a baseline (exit 1: regression)
    xenlab probe TARGET [--interval 1ms] [--duration 30s] [--from HOST]   measure an outage
    xenlab report trend R1.json R2.json ... [-o trend.html]   figures across runs
    xenlab report certificate RESULTS.json [-o certificate.pdf]   the one-page certificate

Exit codes: 0 ok, 1 a finding or a regression, 2 bad input (one line on stderr says which).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import sys
import time
import typing
from collections.abc import Sequence
from ipaddress import ip_address
from pathlib import Path

from xenlab.aoe.check import analyze, read_capture
from xenlab.errors import UserInputError, XenlabError
from xenlab.hosts.runner import Runner, host_prefix, host_runner, ssh_runner
from xenlab.inventory import load_inventory
from xenlab.inventory.model import Connection, LabKind
from xenlab.lab import journal as jr
from xenlab.lab.guestkit import ensure_guest_kit, ensure_memcheck, ensure_native_probe
from xenlab.measure.ping import figures
from xenlab.measure.prober import Prober, ship_native
from xenlab.measure.results import Tolerance, compare_results, comparison_table, load_results
from xenlab.names import LAB_NAME_RULE, is_lab_name
from xenlab.report.certificate import write_certificate
from xenlab.report.trend import write_trend


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr and exit 2 (no usage dump)."""

    def error(self, message: str) -> typing.NoReturn:
        _say(f"{self.prog}: {message} (see {self.prog} --help)")
        sys.exit(2)


def _say(text: str) -> None:
    """One line on stderr, whatever bytes the user's input put in it."""
    sys.stderr.write(_shown(text) + "\n")


def _number(low: float, high: float) -> typing.Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a number from {low:g} to {high:g}, "
                                             f"found {text!r}")
        return value
    return parse


def _lab_name(text: str) -> str:
    if not is_lab_name(text):
        raise argparse.ArgumentTypeError(f"expected {LAB_NAME_RULE}, found {text[:40]!r}")
    return text


_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", re.IGNORECASE)


def _mac(text: str) -> str:
    if not _MAC.match(text):
        raise argparse.ArgumentTypeError(f"expected a MAC address such as 52:54:00:12:34:56, "
                                         f"found {text!r}")
    return text.lower()


def _host_name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", text):
        raise argparse.ArgumentTypeError(f"expected a host name of the inventory, found "
                                         f"{text[:60]!r}")
    return text


def _path(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeError:  # bytes that are not UTF-8 (argv's surrogate escapes)
        raise argparse.ArgumentTypeError(f"expected a file path in UTF-8, found "
                                         f"{text[:60]!r}") from None
    if not text or "\0" in text or len(text) > 4096:
        raise argparse.ArgumentTypeError(f"expected a file path, found {text[:60]!r}")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: every error a user can cause is one line and exit 2."""
    try:
        return _main(argv)
    except XenlabError as exc:
        _say(f"xenlab: {exc}")
        return 2
    except OSError as exc:
        _say(f"xenlab: {exc.filename or ''}{': ' if exc.filename else ''}"
             f"{exc.strerror or exc}")
        return 2
    except KeyboardInterrupt:
        _say("xenlab: interrupted")
        return 130
    except Exception as exc:  # a bug: still one line, the traceback on demand
        if os.environ.get("XENLAB_DEBUG"):
            raise
        _say(f"xenlab: unexpected error (a bug in xenlab; XENLAB_DEBUG=1 shows the "
             f"traceback): {type(exc).__name__}: {exc}")
        return 2


def _main(argv: Sequence[str] | None) -> int:
    parser = _Parser(prog="xenlab", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    lab = sub.add_parser("lab", help="embedded lab housekeeping")
    lab_sub = lab.add_subparsers(dest="action", required=True, parser_class=_Parser)
    again = lab_sub.add_parser("provision", help="run a kept embedded Xen lab's provisioning "
                               "steps again (each reports applied or already satisfied)")
    again.add_argument("--inventory", type=_path, default="inventories/embedded-xen.yml")
    again.add_argument("--root", type=_path, default=_env_path("XENLAB_LAB_ROOT",
                                                               str(jr.DEFAULT_ROOT)))
    again.add_argument("--cache", type=_path, default=_env_path("XENLAB_CACHE",
                                                                "/var/cache/xenlab"))
    power = lab_sub.add_parser("power", help="a kept embedded Xen lab's dom0 powered off hard "
                               "(its QEMU machine killed) or on (booted and set up again)")
    power.add_argument("state", choices=("off", "on"))
    power.add_argument("host", type=_host_name, help="a resource host of the inventory")
    power.add_argument("--inventory", type=_path, default="inventories/embedded-xen.yml")
    power.add_argument("--root", type=_path, default=_env_path("XENLAB_LAB_ROOT",
                                                               str(jr.DEFAULT_ROOT)))
    power.add_argument("--cache", type=_path, default=_env_path("XENLAB_CACHE",
                                                                "/var/cache/xenlab"))
    kit = lab_sub.add_parser("kit", help="fetch and build the embedded guest's kernel and initramfs")
    kit.add_argument("--xen", action="store_true",
                     help="also build the embedded Xen lab's host kit (debootstrap, minutes)")
    kit.add_argument("--cache", type=_path,
                     default=_env_path("XENLAB_CACHE", "/var/cache/xenlab"),
                     help="cache directory (env XENLAB_CACHE)")
    lab_sub.add_parser("faults", help="faults the embedded lab can be built with (--lab-fault)")
    for action, text in (("down", "tear down an embedded lab"), ("list", "list embedded labs")):
        p = lab_sub.add_parser(action, help=text)
        p.add_argument("--root", type=_path,
                       default=_env_path("XENLAB_LAB_ROOT", str(jr.DEFAULT_ROOT)),
                       help="where embedded labs keep their files (env XENLAB_LAB_ROOT)")
        if action == "down":
            who = p.add_mutually_exclusive_group()
            who.add_argument("--lab", type=_lab_name,
                             help="lab name (default: the embedded inventory's)")
            who.add_argument("--inventory", type=_path,
                             help="take the lab name from this inventory")
            p.add_argument("--force", action="store_true",
                           help="even if the run that built it still seems alive")
            p.add_argument("--dry-run", action="store_true",
                           help="list what would be removed (and what is left alone), "
                                "remove nothing")
    check = sub.add_parser("aoe-check", help="analyse an AoE capture (tcpdump -w) offline")
    check.add_argument("capture", type=_path, help="pcap or pcapng file")
    check.add_argument("--expect-mac", type=_mac, action="append", default=[], metavar="MAC",
                       help="MACs allowed to answer (the storage host's); repeatable")
    cmp = sub.add_parser("compare", help="compare two results.json: downtime and loss per "
                                          "scenario and direction (exit 1 on a regression)")
    cmp.add_argument("old", type=_path)
    cmp.add_argument("new", type=_path)
    cmp.add_argument("--factor", type=_number(0.0, 100.0), default=Tolerance.downtime_factor,
                     help="allowed growth of median downtime (default 0.5: +50 %%)")
    cmp.add_argument("--slack-ms", type=_number(0.0, 3_600_000.0), default=Tolerance.downtime_slack_ms,
                     help="plus this many ms (default 20)")
    cmp.add_argument("--loss-slack", type=_number(0.0, 100.0), default=Tolerance.loss_slack_pct,
                     help="allowed rise of median loss, in points (default 1)")
    probe = sub.add_parser("probe", help="measure an outage (of a migration started by hand, "
                                         "or anything else) at 1 ms resolution")
    probe.add_argument("target", help="address or name to probe")
    probe.add_argument("--interval", default="1ms", help="probe interval (default 1ms)")
    probe.add_argument("--duration", default="30s", help="how long (default 30s; Ctrl-C ends "
                                                        "it early and still prints figures)")
    probe.add_argument("--from", dest="origin", metavar="HOST", type=_host_name,
                       help="send from this lab host (of --inventory) instead of here")
    probe.add_argument("--inventory", type=_path, default="inventories/embedded-xen.yml")
    probe.add_argument("--root", type=_path,
                       default=_env_path("XENLAB_LAB_ROOT", str(jr.DEFAULT_ROOT)))
    probe.add_argument("--tool", choices=("xenlab", "ping"), default="xenlab")
    probe.add_argument("--cache", type=_path,
                       default=_env_path("XENLAB_CACHE", "/var/cache/xenlab"),
                       help="where the C prober's build is kept")
    report = sub.add_parser("report", help="reports from results.json files")
    report_sub = report.add_subparsers(dest="kind", required=True)
    trend = report_sub.add_parser("trend", help="figures across runs, host facts that changed")
    trend.add_argument("results", type=_path, nargs="+", help="results.json files, oldest first")
    trend.add_argument("-o", "--output", type=_path, default="reports/trend.html")
    cert = report_sub.add_parser("certificate", help="the one-page PDF certificate of a run, "
                                 "from its results.json (printed by headless Chromium)")
    cert.add_argument("results", type=_path, help="an archived run's results.json")
    cert.add_argument("-o", "--output", type=_path,
                      help="the PDF to write (default: certificate.pdf beside the results)")
    args = parser.parse_args(argv)
    if args.command == "report" and args.kind == "certificate":
        out = Path(args.output) if args.output else Path(args.results).parent / "certificate.pdf"
        _check_report_output(out, CERTIFICATE_MARK, "certificate")
        print(f"wrote {write_certificate(Path(args.results), out)}")
        return 0
    if args.command == "report":
        _check_report_output(Path(args.output))
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
    if args.action == "power":
        return _power(args)
    if args.action == "faults":
        from xenlab.lab.embedded import FAULTS

        for name, text in FAULTS.items():
            print(f"{name:<20} {text}")
        return 0
    if args.action == "list":
        return _list(Path(args.root))
    return _down(args)


def _power(args: argparse.Namespace) -> int:
    """`xenlab lab power off|on HOST`: a kept embedded Xen lab's power switch."""
    from xenlab.lab.embedded_xen import EmbeddedXenLab
    from xenlab.progress import Progress

    inventory = load_inventory(args.inventory)
    if inventory.kind is not LabKind.EMBEDDED_XEN:
        raise UserInputError(f"{args.inventory} is not an embedded Xen lab (kind "
                             f"{inventory.kind.value}); a real lab's power is its own "
                             "xenlab_power_off/on commands")
    resources = [h.name for h in inventory.resources]
    if args.host not in resources:
        raise UserInputError(f"{args.host!r} is not a resource host of {args.inventory} "
                             f"(its resource hosts: {', '.join(resources)})")
    lab = EmbeddedXenLab(inventory, progress=Progress(), root=Path(args.root),
                         cache=Path(args.cache))
    lab.attach()
    switch = lab.power_control()
    print(switch.off(args.host) if args.state == "off" else switch.on(args.host))
    return 0


def _env_path(variable: str, default: str) -> str:
    """A path from an environment variable, checked like the option it stands for."""
    value = os.environ.get(variable, default)
    if not value or "\0" in value or len(value) > 4096:
        raise UserInputError(f"environment variable {variable}: expected a path, found "
                             f"{value[:60]!r}")
    return value


def parse_duration(text: str) -> float:
    """'1ms', '0.5s', '30s', '2m', or plain seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d{1,9}(?:\.\d{1,9})?)\s*(ms|s|m)?\s*", text)
    if not match:
        raise UserInputError(f"{text[:60]!r} is not a duration such as 1ms, 30s or 2m")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def _probe(args: argparse.Namespace) -> int:
    interval, duration = parse_duration(args.interval), parse_duration(args.duration)
    if not 0.0001 <= interval <= 10:
        raise UserInputError(f"--interval {args.interval}: expected 0.1ms to 10s")
    if not 0.001 <= duration <= 86400:
        raise UserInputError(f"--duration {args.duration}: expected 1ms to 24 hours")
    _check_target(args.target, resolve_here=not args.origin)
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
            runner = host_runner(spec)
            python, remote = "python3", spec.connection is not Connection.LOCAL
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
    if f.gap_open:
        print(f"the target stopped answering and had not come back when the probe ended: an "
              f"outage of at least {f.open_gap_ms:.1f} ms, still open")
    print(f"rtt min/median/p99/max = {f.rtt_min_ms:.3f}/{f.rtt_median_ms:.3f}/"
          f"{f.rtt_p99_ms:.3f}/{f.rtt_max_ms:.3f} ms")
    return 1 if f.gap_open else 0


TREND_MARK = b"<title>xenlab trend</title>"
CERTIFICATE_MARK = b"xenlab certificate"  # the PDF's title, which Chromium writes in clear


def _check_report_output(path: Path, mark: bytes = TREND_MARK, what: str = "trend report",
                         ) -> None:
    """-o writes a new file, or replaces a report of this kind xenlab wrote; never anything
    else (a typo such as `-o /etc/passwd` must not overwrite it)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UserInputError(f"-o {path}: expected a file to write, found "
                             f"{'a symlink' if path.is_symlink() else 'a directory'}")
    if path.exists():
        with path.open("rb") as f:
            head = f.read(512 if mark == TREND_MARK else 1 << 20)
        if mark not in head or (mark == CERTIFICATE_MARK and not head.startswith(b"%PDF-")):
            raise UserInputError(f"-o {path}: the file exists and is not a xenlab {what}; "
                                 "it is not overwritten (remove it or choose another)")


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$")


def _check_target(target: str, resolve_here: bool) -> None:
    """An IPv4/IPv6 address or a host name; resolved here when the probe starts here."""
    try:
        ip_address(target)
        return
    except ValueError:
        pass
    if not _HOSTNAME.match(target) or target.replace(".", "").isdigit():
        raise UserInputError(f"probe target {target[:60]!r}: expected an IP address or a "
                             "host name")
    if resolve_here:
        try:
            socket.getaddrinfo(target, None, socket.AF_INET)
        except (socket.gaierror, UnicodeError) as exc:
            raise UserInputError(f"probe target {target!r}: this machine cannot resolve it "
                                 f"({exc})") from None


def _list(root: Path) -> int:
    if root.exists() and not root.is_dir():
        raise UserInputError(f"--root {root}: expected a directory of embedded labs, found "
                             "a file")
    labs = sorted(p for p in root.iterdir()
                  if p.is_dir() and not p.is_symlink()) if root.is_dir() else []
    if not labs:
        print(f"no embedded labs under {root}")
    for directory in labs:
        journal = jr.Journal.read(directory)
        if journal is None or journal.lab != directory.name:
            print(f"{_shown(directory.name)}: not a lab (no journal): xenlab leaves it alone")
            continue
        state = "kept" if journal.kept else ("in use" if journal.owner_alive() else "abandoned")
        print(f"{directory.name}: {state}, run PID {journal.owner_pid}, "
              f"{len(journal.namespaces)} namespaces, {len(journal.processes)} processes")
    return 0


def _shown(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _down(args: argparse.Namespace) -> int:
    name = args.lab
    if name is None:
        inventory = args.inventory or "inventories/embedded-xen.yml"
        name = load_inventory(inventory).lab
    root = Path(args.root)
    if root.exists() and not root.is_dir():
        raise UserInputError(f"--root {root}: expected a directory of embedded labs, found "
                             "a file")
    if args.dry_run:
        plan = jr.plan_reap(name, root)
        for item in plan.items():
            print(f"would remove {item}")
        for item in plan.left_alone:
            print(f"would leave alone {_shown(item)}")
        if not plan.items():
            print(f"lab '{name}': nothing to remove")
        return 0
    if os.geteuid() != 0:
        raise UserInputError("tearing down an embedded lab needs root (--dry-run lists what "
                             "it would remove)")
    holder = jr.NameLock(name).held_elsewhere()
    if holder and not args.force:
        raise UserInputError(f"lab '{name}' is in use by {holder}; that run tears it down "
                             "itself (--force to tear it down anyway)")
    plan = jr.plan_reap(name, root)
    removed = jr.reap(name, root, force=args.force, kept_too=True)
    jr.NameLock(name).remove_if_free()
    if not removed:
        print(f"lab '{name}': nothing to remove")
    for item in removed:
        print(f"removed {item}")
    for item in plan.left_alone:
        print(f"left alone {_shown(item)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
