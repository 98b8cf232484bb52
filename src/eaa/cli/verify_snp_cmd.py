"""``eaa verify-snp``: verify an AMD SEV-SNP attestation report against its VCEK/VLEK and AMD's chain.

Exit codes as ``eaa verify-quote``: 0 verified, 2 usage, 3 malformed, 4 signature/chain/identity
failure, 6 certificates missing, 7 expired or not yet valid (with --strict).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from typing import TYPE_CHECKING

from ..errors import CollateralMissing, ConfigError, FormatError
from .common import decode_evidence, parse_time, read_input, result_lines

if TYPE_CHECKING:  # imported where used: building the parser (eaa --help) stays cheap
    from ..verify.result import VerificationResult

MAX_FILE = 1 << 20


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("verify-snp", help="verify an AMD SEV-SNP attestation report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", help="the ATTESTATION_REPORT: binary, hex (any whitespace), base64, "
                                  "or '-' for standard input")
    p.add_argument("--vek", metavar="FILE", required=True, help="the VCEK or VLEK certificate (DER or PEM)")
    p.add_argument("--chain", metavar="FILE", required=True,
                   help="ASK (or ASVK) and ARK, PEM, as AMD's KDS cert_chain serves them")
    p.add_argument("--crl", metavar="FILE", help="AMD's CRL for the chain (DER)")
    p.add_argument("--product", choices=("Milan", "Genoa", "Turin"), help="needed only for v2 reports")
    p.add_argument("--trust-root", metavar="PEM", action="append", default=[],
                   help="trust this ARK instead of AMD's pinned ones (repeatable)")
    p.add_argument("--at", metavar="TIME", help="verification time: unix seconds or ISO-8601 (default: now)")
    p.add_argument("--strict", action="store_true", help="fail on expired or not-yet-valid certificates")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _read(path: str, what: str) -> bytes:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE:
            raise FormatError(f"{what} {path} is too large", field=what)
        return p.read_bytes()
    except FileNotFoundError:
        raise CollateralMissing(f"{what} {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None


def render_text(result: "VerificationResult") -> str:
    lines = [f"SEV-SNP report verified ({result.details.get('signer', '?')}, "
             f"{result.details.get('product', '?')}), status {result.status}"]
    lines += result_lines(result, ("measurement", "host_data", "policy", "vmpl", "guest_svn", "reported_tcb"),
                          "the guest policy allows debugging: its memory is not confidential.")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..verify.snp import verify_snp_report
    from ..verify.trust import anchor_from_pem

    at = parse_time(args.at)
    report = decode_evidence(read_input(args.report, "report", max_size=MAX_FILE), "report")
    result = verify_snp_report(
        report,
        vek=_read(args.vek, "VEK certificate"),
        chain=_read(args.chain, "certificate chain"),
        crl=_read(args.crl, "CRL") if args.crl else None,
        at=at,
        trust_anchors=[anchor_from_pem(_read(p, "trust root"), p) for p in args.trust_root] or None,
        product=args.product,
        strict=args.strict,
    )
    print(json.dumps(result.to_dict(), sort_keys=True, indent=1) if args.json else render_text(result))
    return 0
