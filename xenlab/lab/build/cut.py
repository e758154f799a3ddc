"""The fault suite's link cut: an nftables table of xenlab's own on the destination drops
the migration's transport port (from one source, where given), and is deleted after."""

from __future__ import annotations

from xenlab.hosts.runner import Runner

CUT_TABLE = "xenlab_cut"


def cut_rules(port: int, saddr: str | None = None) -> str:
    match = f"ip saddr {saddr} " if saddr else ""
    return (f"table inet {CUT_TABLE} {{\n chain input {{\n  type filter hook input priority 0;\n"
            f"  {match}tcp dport {port} drop\n }}\n}}\n")


def cut(runner: Runner, port: int, saddr: str | None = None) -> None:
    runner.run(["nft", "-f", "-"], input=cut_rules(port, saddr))


def uncut(runner: Runner) -> None:
    """The cut undone (nothing to undo is no error)."""
    runner.run(["nft", "delete", "table", "inet", CUT_TABLE], check=False)
