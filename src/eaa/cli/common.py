"""What every eaa program shares: one-line errors, stable exit codes, parsing of times."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from typing import Any, Callable

from ..errors import ConfigError, EaaError

EXIT_INTERNAL = 70
SIMULATION_WARNING = "WARNING: simulated evidence: not backed by TEE hardware; do not trust it in production."


def run_main(prog: str, fn: Callable[[], int]) -> int:
    """Run ``fn`` and turn any failure into one line on stderr and a stable exit status."""
    try:
        return fn()
    except EaaError as e:
        print(f"{prog}: error {e.tag}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - last line of defence: never a traceback for users
        if os.environ.get("EAA_DEBUG"):
            raise
        print(f"{prog}: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_INTERNAL


def dispatch(prog: str, parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Run the subcommand a parser chose (its ``func``); no subcommand prints the help and gives 2."""
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return run_main(prog, lambda: args.func(args))


def parse_time(value: str | None) -> datetime:
    """``--at``: unix seconds or an ISO-8601 time; default now (UTC)."""
    if value is None:
        return datetime.now(timezone.utc)
    try:
        return datetime.fromtimestamp(int(value), timezone.utc)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"bad time {value!r}: use unix seconds or ISO-8601") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def result_lines(result: Any, keys: tuple[str, ...], debug_warning: str) -> list[str]:
    """The measurements named by ``keys``, the report data and the warnings every verifier's text output
    ends with (debug, collateral not yet valid, collateral expired)."""
    lines = [f"{k.upper()}: {result.measurements[k]}" for k in keys if k in result.measurements]
    lines.append(f"REPORT_DATA: {result.report_data.hex()}")
    if result.debug:
        lines.append(f"WARNING: {debug_warning}")
    lines += [f"WARNING: collateral not yet valid: {item}" for item in result.details.get("not_yet_valid", ())]
    if result.collateral_expired:
        when = result.earliest_expiration
        lines.append("WARNING: collateral expired" + (f" ({when:%Y-%m-%dT%H:%M:%SZ})" if when else "")
                     + "; refresh it.")
    return lines


def trust_sim_requested(flag: bool) -> bool:
    return flag or os.environ.get("EAA_TRUST_SIMULATION", "") in ("1", "true", "yes")


def add_snp_arguments(p: argparse.ArgumentParser) -> None:
    """The sev_snp verifier's flags (shelter, inclavared, enclave-tls-server/-client)."""
    p.add_argument("--snp-product", choices=("Milan", "Genoa", "Turin"),
                   help="SEV-SNP product line of peers whose reports do not say (v2; default Milan, as go-sev-guest)")
    p.add_argument("--kds-url", metavar="URL",
                   help="AMD KDS or eaa-pccs base URL for SEV-SNP certificates and CRLs (default: the PCCS of "
                        "EAA_PCCS_URL / sgx_default_qcnl.conf, else https://kdsintf.amd.com)")


def snp_verifier_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options :func:`add_snp_arguments` sets, as the sev_snp verifier takes them."""
    options: dict[str, Any] = {}
    if getattr(args, "snp_product", None):
        options["product"] = args.snp_product
    if getattr(args, "kds_url", None):
        from ..collateral.qcnl import check_url

        options["kds"] = check_url(args.kds_url, "--kds-url")
    return options
