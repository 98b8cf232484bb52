"""``eaa``: the toolbox command (verify-quote, sim, pccs ...)."""

from __future__ import annotations

import argparse
import sys

from . import pccs_cmd, sim_cmd, verify_quote_cmd, verify_snp_cmd
from .common import dispatch

def build_parser() -> argparse.ArgumentParser:
    """Each subcommand module adds its parser and sets ``func`` to its ``run(args) -> int``."""
    parser = argparse.ArgumentParser(prog="eaa", description="Enclave Attestation Architecture tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in (verify_quote_cmd, verify_snp_cmd, sim_cmd, pccs_cmd):
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return dispatch("eaa", build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
