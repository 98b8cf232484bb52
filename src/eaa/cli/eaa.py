"""``eaa``: the toolbox command (verify-quote, verify-snp, sim, pccs ...).

Start-up matters for a one-shot verifier: only the module of the subcommand named on the command line
is imported (``eaa verify-quote`` never loads the PCCS server or the simulator); help and unknown
commands load them all to list them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .common import add_version, dispatch, one_shot
from .parser import ArgumentParser, chosen_command

# subcommand -> module (each has add_parser(sub), which sets ``func`` to its ``run(args) -> int``)
COMMANDS = {
    "verify-quote": "verify_quote_cmd",
    "verify-snp": "verify_snp_cmd",
    "sim": "sim_cmd",
    "pccs": "pccs_cmd",
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="eaa", description="Enclave Attestation Architecture tools")
    add_version(parser, "eaa")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = chosen_command(sys.argv[1:] if argv is None else argv, COMMANDS)
    for name in [COMMANDS[chosen]] if chosen else COMMANDS.values():
        importlib.import_module(f"{__package__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return dispatch("eaa", build_parser(argv), argv)


def console() -> None:
    """The ``eaa`` console script: :func:`main`, exiting at once (:func:`eaa.cli.common.one_shot`), except
    for ``eaa pccs serve``, a daemon, which keeps the cyclic collector and the normal exit."""
    if sys.argv[1:3] == ["pccs", "serve"]:
        sys.exit(main())
    one_shot(main)


if __name__ == "__main__":
    sys.exit(main())
