"""``eaa pccs serve|import|export``: the eaa-pccs commands inside the ``eaa`` toolbox (same options)."""

from __future__ import annotations

import argparse
import sys

from .pccs_server import add_commands


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("pccs", help="the collateral caching service (serve, import, export)",
                       description="Run eaa-pccs or move collateral in and out of it; see 'eaa-pccs --help'.")
    p.set_defaults(func=run, _pccs_parser=p)
    add_commands(p.add_subparsers(dest="pccs_command", metavar="SUBCOMMAND"))


def run(args: argparse.Namespace) -> int:
    """Only reached without a subcommand (each subcommand sets its own ``func``)."""
    args._pccs_parser.print_help(sys.stderr)
    return 2
