"""What a check attaches to its row of the HTML report (pytest-html extras): a migration's
timeline and figures, the AoE frames and capture of a host, a fault scenario's story."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from pytest_html import extras as html_extras

from xenlab.checks.faults import FaultOutcome, describe
from xenlab.measure.results import MigrationRecord


def attach_migration(extras: list[Any], record: MigrationRecord, results_dir: Path) -> None:
    """A migration's figures as a table and as JSON (its timeline is in the summary's grid)."""
    rows = [("status", record.status)]
    rows += [(f"hypervisor {k}", v) for k, v in record.hypervisor.items() if k != "error"]
    rows += [(f"network {k}", v) for k, v in (record.network or {}).items()
             if k not in ("gap_start", "gap_end")]
    rows += [(f"tcp {k}", v) for k, v in (record.tcp or {}).items()]
    rows += [("problem", p) for p in record.problems]
    extras.append(html_extras.html(
        "<table border='1' cellpadding='2' style='font-size:11px;border-collapse:collapse'>" +
        "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(str(v))}</td></tr>" for k, v in rows)
        + "</table>"))
    extras.append(html_extras.json(record.__dict__, name="figures (JSON)"))


def attach_aoe(extras: list[Any], summary: list[str], pcap: Path | None, host: str) -> None:
    """The frames exchanged, one line each, and the capture itself (a download link)."""
    extras.append(html_extras.text("\n".join(summary) or "no frames", name=f"AoE frames {host}"))
    if pcap is not None and pcap.is_file():
        data = base64.b64encode(pcap.read_bytes()).decode()
        extras.append(html_extras.html(
            f'<a download="{escape(pcap.name)}" href="data:application/vnd.tcpdump.pcap;base64,'
            f'{data}">{escape(pcap.name)} (pcap, {pcap.stat().st_size} bytes)</a>'))


def attach_fault(extras: list[Any], outcome: FaultOutcome, problems: list[str]) -> None:
    """What a fault scenario did, what the run said and what was found, as one text."""
    extras.append(html_extras.text(describe(outcome) + ("\n\nproblems:\n" + "\n".join(problems)
                                                         if problems else ""),
                                   name=f"fault {outcome.fault}"))


class Attach:
    """What a check adds to its report row (the suites' one door to the report)."""

    def __init__(self, extras: list[Any], results_dir: Path) -> None:
        self.extras, self.results_dir = extras, results_dir

    def migration(self, record: MigrationRecord) -> None:
        attach_migration(self.extras, record, self.results_dir)

    def aoe(self, summary: list[str], pcap: Path | None, host: str) -> None:
        attach_aoe(self.extras, summary, pcap, host)

    def fault(self, outcome: FaultOutcome, problems: list[str]) -> None:
        attach_fault(self.extras, outcome, problems)
