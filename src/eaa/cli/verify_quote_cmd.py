"""``eaa verify-quote``: verify an SGX/TDX ECDSA quote file against collateral.

Exit codes (stable): 0 verified (status printed), 2 usage or configuration error, 3 malformed
input, 4 signature/chain/identity failure, 5 TCB not supported, 6 collateral missing,
7 collateral expired or not yet valid (with --strict), 8 unsupported evidence, 10 platform revoked.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ..errors import EaaError
from .common import SIMULATION_WARNING, decode_evidence, parse_time, read_input, result_lines, trust_sim_requested
from .parser import RawDescriptionHelpFormatter

if TYPE_CHECKING:  # imported where used: `eaa verify-quote --help` and bad input stay fast
    from ..collateral.bundle import Collateral
    from ..formats.quote import Quote
    from ..pki.trust import TrustAnchor
    from ..verify.result import VerificationResult

EXIT_REVOKED = 10


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("verify-quote", help="verify an SGX or TDX ECDSA quote",
                       description=__doc__, formatter_class=RawDescriptionHelpFormatter)
    p.add_argument("quote", help="quote file: binary, hex (any whitespace), base64, or '-' for standard input")
    p.add_argument("--collateral", metavar="FILE|DIR",
                   help="QuoteCollateralV3 JSON file or a directory of PCS-style files")
    p.add_argument("--at", metavar="TIME", help="verification time: unix seconds or ISO-8601 (default: now)")
    p.add_argument("--no-crl", action="store_true", help="skip revocation checks (collateral without CRLs)")
    p.add_argument("--trust-root", metavar="PEM", action="append", default=[],
                   help="also trust this root CA (repeatable)")
    p.add_argument("--trust-sim", action="store_true",
                   help="trust the simulated TEE's root (also EAA_TRUST_SIMULATION=1)")
    p.add_argument("--strict", action="store_true", help="fail when any collateral has expired")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def read_quote(path: str) -> bytes:
    """The quote in ``path`` (``-``: standard input) as bytes, whichever way it was written."""
    from ..formats.quote import MAX_QUOTE_SIZE

    # base64 and hex text of the largest quote, with line breaks
    return decode_evidence(read_input(path, "quote", max_size=3 * MAX_QUOTE_SIZE), "quote")


def resolve_trust(trust_roots: list[str], trust_sim: bool) -> list[TrustAnchor]:
    from ..pki.trust import anchor_from_file, default_anchors

    anchors = list(default_anchors())
    anchors += [anchor_from_file(p) for p in trust_roots]
    if trust_sim_requested(trust_sim):
        from ..sim import simulation_anchor

        anchors.append(simulation_anchor())
    return anchors


def resolve_collateral(path: str | None, quote: Quote, raw: bytes, trust_sim: bool, *,
                       anchors: list[TrustAnchor] | None = None) -> Collateral:
    """--collateral, else the simulator's for a simulated quote (--trust-sim), else from the configured PCCS."""
    if path:
        from ..collateral.bundle import load_collateral

        return load_collateral(path)
    from ..verify.dcap_verifier import default_collateral  # the PCCS client

    simulation = None
    if trust_sim_requested(trust_sim):
        from ..sim import TrustedSimulation

        simulation = TrustedSimulation()
    return default_collateral(quote, simulation=simulation, anchors=anchors)


def render_text(result: VerificationResult) -> str:
    lines = []
    if result.simulated:
        lines.append(SIMULATION_WARNING)
    lines.append(f"Quote verified: {result.tee.upper()}, TCB status {result.status}")
    if result.advisory_ids:
        lines.append(f"Advisory IDs: {', '.join(result.advisory_ids)}")
    if result.fmspc:
        lines.append(f"FMSPC: {result.fmspc}  TCB date: {result.tcb_date}")
    lines += result_lines(result, ("mrenclave", "mrsigner", "isv_prod_id", "isv_svn", "mrtd", "rtmr0", "rtmr1",
                                   "rtmr2", "rtmr3"), "debug enclave/TD: its memory is not confidential.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except EaaError as e:
        if not args.json:
            raise
        print(json.dumps({"ok": False, "error": e.to_dict()}, sort_keys=True, indent=1))
        return e.exit_code


def _run(args: argparse.Namespace) -> int:
    from ..formats.quote import parse_quote
    from ..verify.dcap import QuoteVerifier
    from ..verify.result import REVOKED

    at = parse_time(args.at)
    raw = read_quote(args.quote)
    quote = parse_quote(raw)
    anchors = resolve_trust(args.trust_root, args.trust_sim)
    collateral = resolve_collateral(args.collateral, quote, raw, args.trust_sim, anchors=anchors)
    verifier = QuoteVerifier(anchors, check_crl=not args.no_crl, cache_size=0)
    result = verifier.verify(quote, collateral, at=at, strict=args.strict)
    if args.json:
        print(json.dumps(result.to_dict(), sort_keys=True, indent=1))
    else:
        print(render_text(result))
    if result.simulated and args.json:
        print(SIMULATION_WARNING, file=sys.stderr)
    return EXIT_REVOKED if result.status == REVOKED else 0
