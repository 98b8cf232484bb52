"""``eaa``: the toolbox command (verify-quote, sim, pccs ...)."""

from __future__ import annotations

import argparse
import importlib
import sys

from .common import run_main

# Subcommand modules, each with ``add_parser(subparsers)`` setting ``func`` to a ``run(args) -> int``.
SUBCOMMANDS = ("eaa.cli.verify_quote_cmd", "eaa.cli.sim_cmd", "eaa.cli.pccs_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eaa", description="Enclave Attestation Architecture tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return run_main("eaa", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
