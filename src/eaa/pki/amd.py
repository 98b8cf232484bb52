"""AMD's SEV-SNP PKI: the ARK (AMD's root, one per product line), the ASK (or ASVK for VLEKs) it signs, and
the VCEK/VLEK that signs attestation reports; every link RSASSA-PSS SHA-384 with salt 48.

One checker for every place that receives these certificates: report verification (:mod:`eaa.verify.snp`)
and the KDS client's validation of what it fetches and caches (:mod:`eaa.collateral.kds`). The trust anchor
is always an input: AMD's pinned ARKs (by SHA-256 of their DER) unless the caller names others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ..checks import Check
from ..errors import (
    CertificateChainError,
    CollateralExpired,
    CollateralMissing,
    EaaError,
    InvalidSignature,
    UntrustedRoot,
)
from ..formats.snp_report import PRODUCTS
from ..formats.snp_vek import VLEK, VekExtensions, load_certificates, vek_extensions, vek_kind
from ..formats.x509_errors import PARSE_ERRORS
from ..records import record
from ..timeutil import as_utc
from .chain import check_crl, check_signature_algorithm, typed_certificate_errors
from .trust import TrustAnchor, is_simulation_certificate

PSS_SHA384 = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
MIN_RSA_BITS = 2048
_SHA256 = hashes.SHA256()
NO_CRL_HINT = "use --no-crl (check_crl=False) to skip revocation checking"

# SHA-256 of the DER of AMD's root keys (ARK), as served by the KDS ``cert_chain`` of each product.
AMD_ARK_SHA256: Mapping[str, str] = {
    "Milan": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
    "Genoa": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
    "Turin": "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
}
_PINNED_ARKS = {bytes.fromhex(fp): product for product, fp in AMD_ARK_SHA256.items()}

CertInput = bytes | str | x509.Certificate | Sequence[bytes | str | x509.Certificate]
AnchorInput = TrustAnchor | x509.Certificate
CrlInput = bytes | Sequence[bytes] | None


def certificates(value: CertInput | None) -> tuple[x509.Certificate, ...]:
    if value is None:
        return ()
    if isinstance(value, x509.Certificate):
        return (value,)
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return tuple(load_certificates(bytes(value) if not isinstance(value, str) else value)) if value else ()
    out: list[x509.Certificate] = []
    for item in value:
        out.extend(certificates(item))
    return tuple(out)


def crl_list(value: CrlInput) -> tuple[bytes, ...]:
    if value is None:
        return ()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (bytes(value),) if value else ()
    return tuple(bytes(v) for v in value if v)


def crl_issuer(der: bytes) -> x509.Name | None:
    try:
        return x509.load_der_x509_crl(der).issuer
    except PARSE_ERRORS:  # ValueError among them
        return None


@record
class TrustedArk:
    """An ARK accepted as the root of an SNP chain (pinned by AMD, or a given anchor), with the name results report."""

    cert: x509.Certificate
    name: str
    product: str | None  # known for AMD's pinned ARKs
    simulated: bool = False


def anchor_certificate(a: AnchorInput) -> x509.Certificate:
    return a.certificate if isinstance(a, TrustAnchor) else a


def trusted_root(ark: x509.Certificate, anchors: Sequence[AnchorInput] | None, also_pinned: bool = False) -> TrustedArk:
    """The ARK as a trust anchor: AMD's pinned ARKs (``anchors`` None, or ``also_pinned``), or a given one."""
    fp = ark.fingerprint(_SHA256)
    pinned = _PINNED_ARKS.get(fp)
    if pinned is not None and (anchors is None or also_pinned):
        return TrustedArk(ark, f"AMD ARK-{pinned} (pinned)", pinned)
    for a in anchors or ():
        if anchor_certificate(a).fingerprint(_SHA256) == fp:
            name = a.name if isinstance(a, TrustAnchor) else ark.subject.rfc4514_string()
            simulated = a.simulated if isinstance(a, TrustAnchor) else is_simulation_certificate(ark)
            return TrustedArk(ark, name, pinned, simulated or is_simulation_certificate(ark))
    if is_simulation_certificate(ark):
        raise UntrustedRoot(f"ARK {ark.subject.rfc4514_string()} belongs to a SIMULATION platform, whose root is "
                            "not trusted (use --trust-sim / EAA_TRUST_SIMULATION=1 to accept simulated evidence)",
                            check=Check.SNP_ARK_TRUSTED)
    if anchors is None:
        raise UntrustedRoot(f"ARK {ark.subject.rfc4514_string()} is not one of AMD's pinned ARKs "
                            f"({', '.join(PRODUCTS)})", check=Check.SNP_ARK_TRUSTED)
    raise UntrustedRoot(f"ARK {ark.subject.rfc4514_string()} is not among the given trust anchors",
                        check=Check.SNP_ARK_TRUSTED)


def common_name(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if len(cns) == 1 else ""


def pss_verify(child: x509.Certificate, parent: x509.Certificate, what: str, check: str | None = None) -> None:
    """``child`` signed by ``parent``'s RSA key with RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48 (AMD's only scheme)."""
    if child.issuer != parent.subject:
        raise CertificateChainError(f"{what}: issued by {child.issuer.rfc4514_string()}, "
                                    f"not by {parent.subject.rfc4514_string()}")
    if child.signature_algorithm_oid != x509.SignatureAlgorithmOID.RSASSA_PSS:
        raise CertificateChainError(f"{what}: not signed with RSASSA-PSS")
    check_signature_algorithm(child, what)
    key = parent.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        raise CertificateChainError(f"{what}: issuer {common_name(parent)} does not hold an RSA key of at least "
                                    f"{MIN_RSA_BITS} bits")
    try:
        key.verify(child.signature, child.tbs_certificate_bytes, PSS_SHA384, hashes.SHA384())
    except _CryptoInvalidSignature:
        raise InvalidSignature(f"{what}: RSASSA-PSS signature by {common_name(parent)} does not verify",
                               check=check) from None


def require_ca(cert: x509.Certificate, what: str) -> None:
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    except ValueError as e:
        raise CertificateChainError(f"{what}: extensions do not parse ({e})") from None
    if not ca:
        raise CertificateChainError(f"{what} {cert.subject.rfc4514_string()} is not a CA certificate")


def find_issuer(child: x509.Certificate, pool: Sequence[x509.Certificate]) -> x509.Certificate | None:
    for c in pool:
        if c.subject == child.issuer and c is not child:
            return c
    return None


def anchor_issuer(child: x509.Certificate, anchors: Sequence[x509.Certificate], what: str) -> x509.Certificate | None:
    """The trusted ARK that signed ``child`` when the chain leaves the ARK out (several may share a name)."""
    named = [a for a in anchors if a.subject == child.issuer]
    for a in named:
        try:
            pss_verify(child, a, what)
            return a
        except EaaError:
            continue
    if named:
        raise UntrustedRoot(f"the {what} is not signed by any trusted ARK named {child.issuer.rfc4514_string()}",
                            check=Check.SNP_ARK_TRUSTED)
    return None


# ---------------- the chain ----------------

@record
class VekChain:
    """A VEK certificate whose chain to a trusted ARK verified (steps 3-5 of :func:`verify_snp_report`)."""

    vek: x509.Certificate
    kind: str  # VCEK or VLEK
    intermediate: x509.Certificate  # ASK, or ASVK for a VLEK
    ark: x509.Certificate
    root_name: str
    root_product: str | None  # the product of a pinned AMD ARK; None for other anchors
    extensions: VekExtensions
    earliest_expiration: datetime
    expired: bool
    not_yet_valid: tuple[str, ...] = ()  # "<certificate> is not valid before <time>" for each
    revocation: str = "not checked: no CRL given"
    simulated: bool = False  # the ARK is a simulated platform's root

    @property
    def intermediate_name(self) -> str:
        return "ASVK" if self.kind == VLEK else "ASK"


@typed_certificate_errors
def check_vek_chain(vek: CertInput, chain: CertInput, *, at: datetime | int | float,
                    trust_anchors: Sequence[AnchorInput] | None = None, crl: CrlInput = None,
                    strict: bool = False, require_crl: bool = False, also_pinned: bool = False) -> VekChain:
    """Check a VCEK/VLEK certificate up to a trusted ARK: kind, P-384 key, RSASSA-PSS links, validity, CRL.

    Used alone to vet certificates (e.g. a chain without a report); :func:`verify_snp_report` adds the
    bindings to one report. Product names are checked there, where the product line is known.
    ``crl``: AMD CRLs; the one the ARK issued is checked. ``require_crl``: fail when there is none.
    ``also_pinned``: trust AMD's pinned ARKs besides ``trust_anchors`` (e.g. with a simulated root).
    """
    now = as_utc(at)
    veks = certificates(vek)
    if len(veks) != 1:
        raise CertificateChainError(f"expected one VEK certificate, got {len(veks)}")
    vek_cert = veks[0]
    kind = vek_kind(vek_cert)
    if kind is None:
        raise CertificateChainError(f"{vek_cert.subject.rfc4514_string()} is not a VCEK or VLEK certificate")
    vek_key = vek_cert.public_key()
    if not isinstance(vek_key, ec.EllipticCurvePublicKey) or not isinstance(vek_key.curve, ec.SECP384R1):
        raise CertificateChainError(f"the {kind} does not hold a P-384 key")
    ext = vek_extensions(vek_cert)

    # The chain: VEK <- ASK/ASVK <- ARK (trusted, self-signed), following issuer names through the pool.
    pool = [c for c in certificates(chain) if c is not vek_cert]
    anchor_certs = [anchor_certificate(a) for a in trust_anchors] if trust_anchors is not None else []
    intermediate = "ASVK" if kind == VLEK else "ASK"
    ask = find_issuer(vek_cert, pool)
    if ask is None or ask.subject == ask.issuer:
        raise CertificateChainError(f"the chain holds no {intermediate} that issued the {kind} "
                                    f"({vek_cert.issuer.rfc4514_string()})")
    ark = find_issuer(ask, pool) or anchor_issuer(ask, anchor_certs, intermediate)
    if ark is None:
        raise CertificateChainError(f"the chain holds no ARK that issued the {intermediate} "
                                    f"({ask.issuer.rfc4514_string()})")
    root = trusted_root(ark, trust_anchors, also_pinned)
    require_ca(ark, "ARK")
    require_ca(ask, intermediate)
    pss_verify(ark, ark, "ARK (self-signed)")
    pss_verify(ask, ark, intermediate, Check.SNP_ASK_SIGNATURE)
    pss_verify(vek_cert, ask, kind, Check.SNP_VEK_SIGNATURE)

    # Validity at the verification time, with the DCAP verifier's semantics: expiry and issue dates in the
    # future are reported (``collateral_expired``, ``details["not_yet_valid"]``, rejected by the default
    # policy), and fatal only when strict.
    windows = [(kind, vek_cert.not_valid_before_utc, vek_cert.not_valid_after_utc),
               (intermediate, ask.not_valid_before_utc, ask.not_valid_after_utc),
               ("ARK", ark.not_valid_before_utc, ark.not_valid_after_utc)]
    crls = crl_list(crl)
    own = [c for c in crls if crl_issuer(c) == ark.subject] or crls[:1]
    if own:
        checked = check_crl(own[0], ark, "AMD CRL")
        if checked.is_revoked(ask.serial_number):
            raise CertificateChainError(f"the {intermediate} {ask.subject.rfc4514_string()} is revoked by AMD's CRL")
        windows.append(("AMD CRL", checked.this_update, checked.next_update))
        revocation = f"checked: the {intermediate} is not on the CRL of {common_name(ark)} (next update " \
                     f"{checked.next_update:%Y-%m-%dT%H:%M:%SZ})"
    elif require_crl:
        raise CollateralMissing(f"no CRL of {common_name(ark)} to check the {intermediate} against ({NO_CRL_HINT})")
    else:
        revocation = "not checked: no CRL given"
    not_yet_valid = tuple(f"{name} is not valid before {nb:%Y-%m-%dT%H:%M:%SZ}" for name, nb, _ in windows if now < nb)
    earliest = min(na for _, _, na in windows)
    expired = earliest <= now
    if expired and strict:
        raise CollateralExpired(f"the {kind} certificate chain expired at {earliest:%Y-%m-%dT%H:%M:%SZ}")
    if not_yet_valid and strict:
        raise CollateralExpired(f"the {kind} certificate chain is not yet valid: {not_yet_valid[0]}")
    return VekChain(vek_cert, kind, ask, ark, root.name, root.product, ext, earliest, expired, not_yet_valid,
                    revocation, root.simulated)


