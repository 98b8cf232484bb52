"""``eaa verify-snp``: verify an AMD SEV-SNP attestation report against its VCEK/VLEK and AMD's chain.

Exit codes as ``eaa verify-quote``: 0 verified, 2 usage, 3 malformed, 4 signature/chain/identity
failure, 6 certificates or CRL missing, 7 expired or not yet valid (with --strict).

Revocation is checked by default: AMD's CRL comes from --crl, else from --kds-url (default: the PCCS
configured for Intel data, which eaa-pccs answers from its KDS cache, else AMD's KDS). --no-crl skips
it, and the result says so.

--trust-sim also trusts the simulated SEV-SNP platform's ARK (``eaa sim``), and takes the VCEK, chain and
CRL not given from that platform, so ``eaa verify-snp REPORT --trust-sim`` verifies a report written by
``eaa sim snp-report``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CollateralMissing, ConfigError, FormatError
from .common import SIMULATION_WARNING, decode_evidence, parse_time, read_input, result_lines, trust_sim_requested
from .parser import RawDescriptionHelpFormatter

if TYPE_CHECKING:  # imported where used: building the parser (eaa --help) stays cheap
    from ..verify.result import VerificationResult

MAX_FILE = 1 << 20


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("verify-snp", help="verify an AMD SEV-SNP attestation report",
                       description=__doc__, formatter_class=RawDescriptionHelpFormatter)
    p.add_argument("report", help="the ATTESTATION_REPORT: binary, hex (any whitespace), base64, "
                                  "or '-' for standard input")
    p.add_argument("--vek", metavar="FILE", help="the VCEK or VLEK certificate (DER or PEM; required unless "
                                                 "--trust-sim)")
    p.add_argument("--chain", metavar="FILE",
                   help="ASK (or ASVK) and ARK, PEM, as AMD's KDS cert_chain serves them (required unless --trust-sim)")
    p.add_argument("--crl", metavar="FILE", help="AMD's CRL for the chain (DER or PEM)")
    p.add_argument("--no-crl", action="store_true", help="do not check revocation (recorded in the result)")
    p.add_argument("--kds-url", metavar="URL", help="where to fetch AMD's CRL when --crl is not given")
    p.add_argument("--product", choices=("Milan", "Genoa", "Turin"), help="needed only for v2 reports")
    p.add_argument("--trust-root", metavar="PEM", action="append", default=[],
                   help="trust this ARK instead of AMD's pinned ones (repeatable)")
    p.add_argument("--at", metavar="TIME", help="verification time: unix seconds or ISO-8601 (default: now)")
    p.add_argument("--strict", action="store_true", help="fail on expired or not-yet-valid certificates")
    p.add_argument("--trust-sim", action="store_true",
                   help="also trust the simulated SEV-SNP platform's ARK, and take what is not given from it")
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


def render_text(result: VerificationResult) -> str:
    lines = [f"SEV-SNP report verified ({result.details.get('signer', '?')}, "
             f"{result.details.get('product', '?')}), status {result.status}"]
    lines += result_lines(result, ("measurement", "host_data", "policy", "vmpl", "guest_svn", "reported_tcb"),
                          "the guest policy allows debugging: its memory is not confidential.")
    lines.append(f"REVOCATION: {result.details.get('revocation')}")
    if result.simulated:
        lines.append(SIMULATION_WARNING)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..pki.trust import anchor_from_pem
    from ..verify.snp import verify_snp_report

    at = parse_time(args.at)
    if args.crl and args.no_crl:
        raise ConfigError("give --crl or --no-crl, not both")
    sim = None
    if trust_sim_requested(args.trust_sim):
        from ..sim.snp import load_snp_platform

        sim = load_snp_platform(create=False)
    elif not (args.vek and args.chain):
        raise ConfigError("--vek and --chain are required (unless --trust-sim verifies a simulated report)")
    report = decode_evidence(read_input(args.report, "report", max_size=MAX_FILE), "report")
    if sim is not None:
        from cryptography.hazmat.primitives.serialization import Encoding

        vek = _read(args.vek, "VEK certificate") if args.vek else sim.vcek.public_bytes(Encoding.PEM)
        chain = _read(args.chain, "certificate chain") if args.chain else sim.chain_pem
    else:
        vek, chain = _read(args.vek, "VEK certificate"), _read(args.chain, "certificate chain")
    crl = None
    if args.crl:
        crl = _read(args.crl, "CRL")
    elif sim is not None and not args.no_crl:
        crl = sim.crl
    elif not args.no_crl:
        crl = _fetch_crl(report, vek, args)
    anchors = [anchor_from_pem(_read(p, "trust root"), p) for p in args.trust_root]
    if sim is not None:
        anchors.append(sim.anchor())
    result = verify_snp_report(
        report,
        vek=vek,
        chain=chain,
        crl=crl,
        at=at,
        trust_anchors=anchors or None,
        also_pinned=sim is not None and not args.trust_root,
        product=args.product,
        strict=args.strict,
        require_crl=not args.no_crl,
        revocation="not checked: disabled (--no-crl)" if args.no_crl else None,
    )
    print(json.dumps(result.to_dict(), sort_keys=True, indent=1) if args.json else render_text(result))
    return 0


def _fetch_crl(report: bytes, vek: bytes, args: argparse.Namespace) -> bytes:
    """AMD's CRL for the report's product and signing key kind, from the KDS or the PCCS."""
    from ..collateral.kds import KdsClient
    from ..formats.snp_report import SnpReport
    from ..formats.snp_vek import VLEK, load_vek_certificate, vek_extensions, vek_kind
    from ..pki.trust import anchor_from_pem
    from ..verify.snp import DEFAULT_V2_PRODUCT
    from ..verify.snp_collateral import default_kds_url

    r = SnpReport.parse(report)
    cert = load_vek_certificate(vek)
    product = args.product or r.product or vek_extensions(cert).product or DEFAULT_V2_PRODUCT
    url, verify = (args.kds_url, True) if args.kds_url else default_kds_url()
    client = KdsClient(url, verify=verify,
                       trusted_arks=None if not args.trust_root else
                       [anchor_from_pem(_read(p, "trust root"), p).certificate for p in args.trust_root])
    try:
        return client.crl(product, "vlek" if vek_kind(cert) == VLEK else "vcek")
    finally:
        client.close()
