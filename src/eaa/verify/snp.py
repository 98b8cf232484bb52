"""AMD SEV-SNP attestation report verification, and the ``sev_snp`` verifier built on it.

Read :func:`verify_snp_report` top to bottom: each numbered step is one check with its own typed
error (shared/docs/tee-interfaces.md §2; the same checks as go-sev-guest ``verify/`` and trustee):

1. the report parses (version 2 to 5, reserved bytes zero, policy bit 17 set, ECDSA P-384);
2. it was requested by the guest (VMPL 0-3) and is signed at all (SIGNER_INFO signing key not "none");
3. the VEK certificate is the kind SIGNER_INFO names (VCEK or VLEK) and holds a P-384 key;
4. the chain: the ARK is trusted (one of AMD's pinned ARKs, or a caller-given anchor) and self-signed,
   the ASK (ASVK for a VLEK) is signed by the ARK, the VEK by the ASK/ASVK, all RSASSA-PSS SHA-384
   with salt 48 (:func:`check_vek_chain` does 3-5 and can be used alone);
5. every certificate is valid at ``at`` (as for DCAP: expired or not-yet-valid is flagged, and fails when
   strict);
6. the report signature by the VEK over ``report[0:0x2A0]``;
7. the product line is one product throughout: the caller's, the report's CPUID (v3+), the pinned ARK,
   the VEK's productName and AMD's certificate names;
8. the VEK was derived for the report's REPORTED_TCB (its SPL extensions equal it byte for byte);
9. a VCEK is the chip's own: its hwID equals CHIP_ID (skipped, with the reason recorded, when the
   platform masks the chip key, and for VLEKs, which are not chip-specific).

Status semantics. Unlike Intel, AMD publishes no signed TCB status for SNP: the KDS only issues VEKs
(and revokes ASKs through its CRL). So ``UpToDate`` here means exactly "genuine AMD hardware signed this
report with a key AMD issued for the report's REPORTED_TCB, and nothing in the chain is revoked or
inconsistent". It says nothing about whether that TCB is the newest or consistent with CURRENT/COMMITTED_TCB:
those are go-sev-guest's ``validate`` checks, which :class:`eaa.policy.SnpPolicy` (``[policy.snp]``)
applies to the result.

Revocation. AMD revokes ASKs/ASVKs through a CRL signed by the ARK (the KDS ``crl`` of each product).
:func:`verify_snp_report` checks one when given and, with ``require_crl``, fails without one; the
``sev_snp`` verifier requires it unless ``check_crl=False`` (``--no-crl``). Either way the result says
what was done in ``details["revocation"]``.

Certificates come first from the evidence itself: the cert table the host hands the guest (configfs-tsm
``auxblob``, SNP_GET_EXT_REPORT) travels with the report as :class:`~eaa.formats.snp_certs.SnpEndorsements`
(Enclave-TLS endorsements extension, the EAA protocol relay). What it lacks comes from a collateral
source: explicit certificates, a file or directory of certificates, the trusted simulated platform, or
AMD's Key Distribution Service through :class:`eaa.collateral.kds.KdsClient` (VCEKs, chains and CRLs;
VLEKs are not public). Whatever the source, the chain is checked here against the trust anchors, which
are inputs: an attacker can put any chain in the evidence, and only one ending in a trusted ARK passes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..checks import Check
from ..collateral.kds import AMD_ARK_SHA256, KDS_URL, KdsClient, check_product
from ..errors import (
    CertificateChainError,
    CollateralExpired,
    CollateralMissing,
    ConfigError,
    EaaError,
    FormatError,
    IdentityMismatch,
    InvalidSignature,
    UntrustedRoot,
)
from ..evidence import SEV_SNP
from ..formats.snp_certs import SnpCertTable, SnpEndorsements
from ..formats.snp_report import (
    PRODUCTS,
    SIGNING_KEY_NONE,
    SIGNING_KEY_VLEK,
    TURIN,
    SnpReport,
    TcbVersion,
    normalize_product,
)
from ..formats.snp_vek import (
    VCEK,
    VLEK,
    VekExtensions,
    load_certificates,
    load_vek_certificate,
    vek_extensions,
    vek_kind,
)
from ..formats.x509_errors import PARSE_ERRORS
from ..pki.chain import check_crl, check_signature_algorithm, typed_certificate_errors
from ..pki.trust import TrustAnchor, is_simulation_certificate
from ..timeutil import as_utc
from .result import UP_TO_DATE, VerificationResult

if TYPE_CHECKING:
    from ..collateral.bundle import Collateral

TEE = "sev-snp"
PSS_SHA384 = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
ECDSA_SHA384 = ec.ECDSA(hashes.SHA384())
MIN_RSA_BITS = 2048
_SHA256 = hashes.SHA256()
_PINNED_ARKS = {bytes.fromhex(fp): product for product, fp in AMD_ARK_SHA256.items()}
_MAX_CERT_FILE = 1 << 20

CertInput = bytes | str | x509.Certificate | Sequence[bytes | str | x509.Certificate]
AnchorInput = TrustAnchor | x509.Certificate
CrlInput = bytes | Sequence[bytes] | None
DEFAULT_V2_PRODUCT = "Milan"  # go-sev-guest abi.DefaultSevProduct(): what a v2 report is taken to be
NO_CRL_HINT = "use --no-crl (check_crl=False) to skip revocation checking"


# ---------------- collateral: the certificates for one report ----------------

def _certs(value: CertInput | None) -> tuple[x509.Certificate, ...]:
    if value is None:
        return ()
    if isinstance(value, x509.Certificate):
        return (value,)
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return tuple(load_certificates(bytes(value) if not isinstance(value, str) else value)) if value else ()
    out: list[x509.Certificate] = []
    for item in value:
        out.extend(_certs(item))
    return tuple(out)


def _crl_der(data: bytes) -> bytes | None:
    """The DER of ``data`` when it is one CRL (DER or PEM), else None."""
    try:
        if data.lstrip().startswith(b"-----BEGIN X509 CRL-----"):
            from cryptography.hazmat.primitives.serialization import Encoding

            return x509.load_pem_x509_crl(data).public_bytes(Encoding.DER)
        if data[:1] == b"\x30":
            x509.load_der_x509_crl(data)
            return bytes(data)
    except PARSE_ERRORS:
        return None
    return None


def _crls(value: CrlInput) -> tuple[bytes, ...]:
    if value is None:
        return ()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (bytes(value),) if value else ()
    return tuple(bytes(v) for v in value if v)


def _crl_issuer(der: bytes) -> x509.Name | None:
    try:
        return x509.load_der_x509_crl(der).issuer
    except PARSE_ERRORS:  # ValueError among them
        return None


@dataclass(frozen=True)
class SnpCollateral:
    """Certificates that may verify a report: candidate VEKs and a pool of ASK/ASVK/ARK certificates.

    A pool rather than a fixed chain, so one directory or cert table can serve several products and
    chips: the verifier picks the VEK matching the report and follows issuer names through the pool.
    """

    veks: tuple[x509.Certificate, ...] = ()
    chain: tuple[x509.Certificate, ...] = ()
    crls: tuple[bytes, ...] = ()  # AMD CRLs (DER); the one the chain's ARK issued is used
    source: str = "explicit"

    @classmethod
    def of(cls, vek: CertInput | None = None, chain: CertInput | None = None, crl: CrlInput = None,
           source: str = "explicit") -> SnpCollateral:
        """From DER/PEM bytes or certificates; the VEK(s) and the chain may also be mixed in either."""
        pool = _certs(vek) + _certs(chain)
        veks = tuple(c for c in pool if vek_kind(c) is not None)
        return cls(veks, tuple(c for c in pool if vek_kind(c) is None), _crls(crl), source)

    @classmethod
    def from_cert_table(cls, table: SnpCertTable) -> SnpCollateral:
        """The host's certificate table (VCEK/VLEK, ASK, ARK; any may be missing)."""
        parts = [table.get(name) for name in ("vcek", "vlek", "ask", "ark")]
        return cls.of(chain=[p for p in parts if p], source="cert table")

    @classmethod
    def from_endorsements(cls, endorsements: SnpEndorsements) -> SnpCollateral:
        """What came with the evidence: the host's certificate table and any CRLs (untrusted until checked)."""
        parts = [endorsements.table.get(name) for name in ("vcek", "vlek", "ask", "ark")]
        try:
            return cls.of(chain=[p for p in parts if p], crl=endorsements.crls, source="evidence")
        except FormatError as e:
            raise FormatError(f"a certificate that came with the evidence does not parse: {e}",
                              check=Check.SNP_CERT_TABLE) from None

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> SnpCollateral:
        """Certificates from a file (PEM bundle or one DER) or every certificate file of a directory.

        Files that hold no certificate are skipped, so a directory shared with DCAP collateral works;
        files holding a CRL (DER or PEM) are AMD CRL candidates (the one the chain's ARK signed is used).
        """
        p = Path(path)
        files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
        pool: list[x509.Certificate] = []
        crls: list[bytes] = []
        for f in files:
            try:
                if f.stat().st_size > _MAX_CERT_FILE:
                    continue
                data = f.read_bytes()
            except OSError:
                continue
            crl = _crl_der(data)
            if crl is not None:
                crls.append(crl)
                continue
            try:
                pool.extend(_certs(data))
            except FormatError:
                continue
        return cls.of(chain=pool, crl=crls, source=f"file {p}")

    @property
    def crl(self) -> bytes | None:
        return self.crls[0] if self.crls else None

    def merged(self, other: SnpCollateral) -> SnpCollateral:
        return SnpCollateral(self.veks + other.veks, self.chain + other.chain, self.crls + other.crls,
                             f"{self.source} + {other.source}")

    def select_vek(self, report: SnpReport, product: str | None) -> x509.Certificate | None:
        """The VEK for this report: of the kind SIGNER_INFO names, for its chip and REPORTED_TCB.

        With a single candidate it is returned even if it does not match, so that verification can say
        precisely what is wrong with it; with several, only a matching one is.
        """
        want = VLEK if report.signing_key == SIGNING_KEY_VLEK else VCEK
        kind = [c for c in self.veks if vek_kind(c) == want]
        if len(self.veks) == 1:
            return self.veks[0]
        for cert in kind:
            try:
                ext = vek_extensions(cert)
                p = product or ext.product
                if ext.tcb(p).encode() != report.reported_tcb:
                    continue
                if want == VCEK and not report.chip_id_masked and not _hwid_matches(ext.hwid, report.chip_id, p):
                    continue
            except EaaError:
                continue
            return cert
        return None


def _hwid_matches(hwid: bytes | None, chip_id: bytes, product: str) -> bool:
    if hwid is None:
        return False
    return hwid == (chip_id[:8] if product == TURIN else chip_id)


# ---------------- trust anchors ----------------

@dataclass(frozen=True)
class _Root:
    cert: x509.Certificate
    name: str
    product: str | None  # known for AMD's pinned ARKs
    simulated: bool = False


def _anchor_cert(a: AnchorInput) -> x509.Certificate:
    return a.certificate if isinstance(a, TrustAnchor) else a


def _trusted_root(ark: x509.Certificate, anchors: Sequence[AnchorInput] | None, also_pinned: bool = False) -> _Root:
    """The ARK as a trust anchor: AMD's pinned ARKs (``anchors`` None, or ``also_pinned``), or a given one."""
    fp = ark.fingerprint(_SHA256)
    pinned = _PINNED_ARKS.get(fp)
    if pinned is not None and (anchors is None or also_pinned):
        return _Root(ark, f"AMD ARK-{pinned} (pinned)", pinned)
    for a in anchors or ():
        if _anchor_cert(a).fingerprint(_SHA256) == fp:
            name = a.name if isinstance(a, TrustAnchor) else ark.subject.rfc4514_string()
            simulated = a.simulated if isinstance(a, TrustAnchor) else is_simulation_certificate(ark)
            return _Root(ark, name, pinned, simulated or is_simulation_certificate(ark))
    if is_simulation_certificate(ark):
        raise UntrustedRoot(f"ARK {ark.subject.rfc4514_string()} belongs to a SIMULATION platform, whose root is "
                            "not trusted (use --trust-sim / EAA_TRUST_SIMULATION=1 to accept simulated evidence)",
                            check=Check.SNP_ARK_TRUSTED)
    if anchors is None:
        raise UntrustedRoot(f"ARK {ark.subject.rfc4514_string()} is not one of AMD's pinned ARKs "
                            f"({', '.join(PRODUCTS)})", check=Check.SNP_ARK_TRUSTED)
    raise UntrustedRoot(f"ARK {ark.subject.rfc4514_string()} is not among the given trust anchors",
                        check=Check.SNP_ARK_TRUSTED)


# ---------------- certificate checks ----------------

def _cn(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(cns[0].value) if len(cns) == 1 else ""


def _pss_verify(child: x509.Certificate, parent: x509.Certificate, what: str, check: str | None = None) -> None:
    """``child`` signed by ``parent``'s RSA key with RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48 (AMD's only scheme)."""
    if child.issuer != parent.subject:
        raise CertificateChainError(f"{what}: issued by {child.issuer.rfc4514_string()}, "
                                    f"not by {parent.subject.rfc4514_string()}")
    if child.signature_algorithm_oid != x509.SignatureAlgorithmOID.RSASSA_PSS:
        raise CertificateChainError(f"{what}: not signed with RSASSA-PSS")
    check_signature_algorithm(child, what)
    key = parent.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        raise CertificateChainError(f"{what}: issuer {_cn(parent)} does not hold an RSA key of at least "
                                    f"{MIN_RSA_BITS} bits")
    try:
        key.verify(child.signature, child.tbs_certificate_bytes, PSS_SHA384, hashes.SHA384())
    except _CryptoInvalidSignature:
        raise InvalidSignature(f"{what}: RSASSA-PSS signature by {_cn(parent)} does not verify",
                               check=check) from None


def _require_ca(cert: x509.Certificate, what: str) -> None:
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    except ValueError as e:
        raise CertificateChainError(f"{what}: extensions do not parse ({e})") from None
    if not ca:
        raise CertificateChainError(f"{what} {cert.subject.rfc4514_string()} is not a CA certificate")


def _find_issuer(child: x509.Certificate, pool: Sequence[x509.Certificate]) -> x509.Certificate | None:
    for c in pool:
        if c.subject == child.issuer and c is not child:
            return c
    return None


def _anchor_issuer(child: x509.Certificate, anchors: Sequence[x509.Certificate], what: str) -> x509.Certificate | None:
    """The trusted ARK that signed ``child`` when the chain leaves the ARK out (several may share a name)."""
    named = [a for a in anchors if a.subject == child.issuer]
    for a in named:
        try:
            _pss_verify(child, a, what)
            return a
        except EaaError:
            continue
    if named:
        raise UntrustedRoot(f"the {what} is not signed by any trusted ARK named {child.issuer.rfc4514_string()}",
                            check=Check.SNP_ARK_TRUSTED)
    return None


# ---------------- the verification ----------------

@dataclass(frozen=True)
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
    veks = _certs(vek)
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
    pool = [c for c in _certs(chain) if c is not vek_cert]
    anchor_certs = [_anchor_cert(a) for a in trust_anchors] if trust_anchors is not None else []
    intermediate = "ASVK" if kind == VLEK else "ASK"
    ask = _find_issuer(vek_cert, pool)
    if ask is None or ask.subject == ask.issuer:
        raise CertificateChainError(f"the chain holds no {intermediate} that issued the {kind} "
                                    f"({vek_cert.issuer.rfc4514_string()})")
    ark = _find_issuer(ask, pool) or _anchor_issuer(ask, anchor_certs, intermediate)
    if ark is None:
        raise CertificateChainError(f"the chain holds no ARK that issued the {intermediate} "
                                    f"({ask.issuer.rfc4514_string()})")
    root = _trusted_root(ark, trust_anchors, also_pinned)
    _require_ca(ark, "ARK")
    _require_ca(ask, intermediate)
    _pss_verify(ark, ark, "ARK (self-signed)")
    _pss_verify(ask, ark, intermediate, Check.SNP_ASK_SIGNATURE)
    _pss_verify(vek_cert, ask, kind, Check.SNP_VEK_SIGNATURE)

    # Validity at the verification time, with the DCAP verifier's semantics: expiry and issue dates in the
    # future are reported (``collateral_expired``, ``details["not_yet_valid"]``, rejected by the default
    # policy), and fatal only when strict.
    windows = [(kind, vek_cert.not_valid_before_utc, vek_cert.not_valid_after_utc),
               (intermediate, ask.not_valid_before_utc, ask.not_valid_after_utc),
               ("ARK", ark.not_valid_before_utc, ark.not_valid_after_utc)]
    crls = _crls(crl)
    own = [c for c in crls if _crl_issuer(c) == ark.subject] or crls[:1]
    if own:
        checked = check_crl(own[0], ark, "AMD CRL")
        if checked.is_revoked(ask.serial_number):
            raise CertificateChainError(f"the {intermediate} {ask.subject.rfc4514_string()} is revoked by AMD's CRL")
        windows.append(("AMD CRL", checked.this_update, checked.next_update))
        revocation = f"checked: the {intermediate} is not on the CRL of {_cn(ark)} (next update " \
                     f"{checked.next_update:%Y-%m-%dT%H:%M:%SZ})"
    elif require_crl:
        raise CollateralMissing(f"no CRL of {_cn(ark)} to check the {intermediate} against ({NO_CRL_HINT})")
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


@typed_certificate_errors
def verify_snp_report(report: bytes | SnpReport, *, vek: CertInput, chain: CertInput,
                      at: datetime | int | float, trust_anchors: Sequence[AnchorInput] | None = None,
                      product: str | None = None, strict: bool = False, crl: CrlInput = None,
                      collateral_source: str = "explicit", require_crl: bool = False,
                      revocation: str | None = None, also_pinned: bool = False) -> VerificationResult:
    """Verify one SEV-SNP report against its VEK certificate and chain (see the module docstring).

    ``vek``: the VCEK/VLEK (DER or PEM). ``chain``: the ASK/ASVK and ARK (PEM, as the KDS serves them; the
    ARK may be left out when it is among ``trust_anchors``). ``trust_anchors``: AMD ARK certificates to
    trust instead of AMD's pinned ARKs (for tests and private roots). ``product``: Milan/Genoa/Turin, needed
    only to cross-check a v2 report, whose CPUID fields are absent. ``crl``: AMD's CRL(s), checked when given;
    ``require_crl``: fail without one; ``revocation``: what to record when revocation checking was switched
    off on purpose. ``strict``: an expired or not yet valid certificate (or CRL) fails instead of being flagged.
    """
    # 1. The report's format.
    r = report if isinstance(report, SnpReport) else SnpReport.parse(report)

    # 2. Requested by the guest, and signed.
    signer = _signer(r)

    # 3-5. The VEK certificate and its chain to a trusted ARK, valid at ``at``.
    vc = check_vek_chain(vek, chain, at=at, trust_anchors=trust_anchors, crl=crl, strict=strict,
                         require_crl=require_crl, also_pinned=also_pinned)
    kind, ext = vc.kind, vc.extensions
    if kind != signer:
        raise IdentityMismatch(f"the report says it is signed by a {signer} (SIGNER_INFO), the certificate is a {kind}")

    # 6. The report signature (ECDSA P-384, SHA-384, r and s little-endian) over report[0:0x2A0].
    vek_key = vc.vek.public_key()
    assert isinstance(vek_key, ec.EllipticCurvePublicKey)  # checked with the chain
    try:
        vek_key.verify(encode_dss_signature(*r.signature_rs), r.signed_bytes, ECDSA_SHA384)
    except _CryptoInvalidSignature:
        raise InvalidSignature(f"the report signature does not verify with the {kind}") from None

    # 7. One product line throughout (the fields compared from here on are signed).
    line, product_source = _product(r, product, vc.root_product, ext.product)
    if ext.product != line:
        raise IdentityMismatch(f"the {kind} is for {ext.product_name}, the report is from a {line} ({product_source})")
    if vc.root_product is not None and vc.root_product != line:
        raise IdentityMismatch(f"the chain ends in AMD's {vc.root_product} ARK, the report is from a {line}")
    want_ask = f"SEV-VLEK-{line}" if kind == VLEK else f"SEV-{line}"
    if _cn(vc.ark) != f"ARK-{line}" or _cn(vc.intermediate) != want_ask:
        raise CertificateChainError(f"chain names {_cn(vc.intermediate)!r} <- {_cn(vc.ark)!r} are not AMD's "
                                    f"{want_ask!r} <- 'ARK-{line}'")

    # 8. The VEK was derived for REPORTED_TCB.
    reported = r.tcb("reported", line)
    cert_tcb = ext.tcb(line)
    if cert_tcb.encode() != r.reported_tcb:
        raise IdentityMismatch(f"the {kind} is for TCB {cert_tcb}, the report's REPORTED_TCB is {reported}")

    # 9. A VCEK is one chip's key: bind it to CHIP_ID.
    if kind == VLEK:
        chip_binding = "skipped: a VLEK is not chip-specific"
    elif r.chip_id_masked:
        if any(r.chip_id):
            raise IdentityMismatch("MASK_CHIP_KEY is set but CHIP_ID is not zero")
        chip_binding = "skipped: the platform masks the chip key (SIGNER_INFO MASK_CHIP_KEY)"
    else:
        if ext.hwid is None:
            raise CertificateChainError("the VCEK has no hwID extension")
        if not _hwid_matches(ext.hwid, r.chip_id, line):
            raise IdentityMismatch(f"the VCEK is for chip {ext.hwid.hex()}, the report's CHIP_ID is {r.chip_id.hex()}")
        chip_binding = "checked: VCEK hwID equals CHIP_ID"

    return VerificationResult(
        tee=TEE,
        status=UP_TO_DATE,
        advisory_ids=(),
        measurements=_measurements(r, line),
        report_data=r.report_data,
        collateral_expired=vc.expired,
        simulated=vc.simulated,
        debug=r.debug,
        earliest_expiration=vc.earliest_expiration,
        details={
            "report_version": r.version,
            "signer": kind,
            "product": line,
            "product_source": product_source,
            "product_name": ext.product_name,
            "chip_binding": chip_binding,
            "csp_id": ext.csp_id,
            "root": vc.root_name,
            "collateral_source": collateral_source,
            "revocation": revocation if revocation is not None and not _crls(crl) else vc.revocation,
            **({"not_yet_valid": list(vc.not_yet_valid)} if vc.not_yet_valid else {}),
            "status_meaning": "signed by a genuine AMD key for the reported TCB; SNP has no TCB status collateral",
        },
    )


def _signer(r: SnpReport) -> str:
    """VCEK or VLEK: the key SIGNER_INFO names, for a report a guest VMPL asked for."""
    if not r.requested_by_guest:
        raise IdentityMismatch(f"the report was not requested by a guest VMPL (VMPL 0x{r.vmpl:x}); its report "
                               "data is not the guest's")
    if r.signing_key == SIGNING_KEY_NONE:
        raise InvalidSignature("the report is not signed (SIGNER_INFO signing key: none)")
    return VLEK if r.signing_key == SIGNING_KEY_VLEK else VCEK


def _product(r: SnpReport, given: str | None, root_product: str | None, cert_line: str) -> tuple[str, str]:
    """The product line and where it came from: the caller, the report's CPUID, the pinned ARK, the VEK."""
    cpuid = r.product
    if given is not None:
        line = normalize_product(given)
        if cpuid is not None and cpuid != line:
            raise IdentityMismatch(f"the report's CPUID names a {cpuid}, {line} was expected")
        return line, "given"
    if cpuid is not None:
        return cpuid, "report CPUID"
    if r.cpuid_fam_id:  # a v3+ report naming a CPU that is no known product (all zero: not stated)
        raise IdentityMismatch(f"the report's CPUID family 0x{r.cpuid_fam_id:02x} model 0x{r.cpuid_mod_id or 0:02x} "
                               "is no known SEV-SNP product; name the product")
    if root_product is not None:
        return root_product, "pinned ARK"
    return cert_line, "VEK certificate"


def _measurements(r: SnpReport, product: str) -> dict[str, Any]:
    m: dict[str, Any] = {
        "measurement": r.measurement.hex(),
        "host_data": r.host_data.hex(),
        "id_key_digest": r.id_key_digest.hex(),
        "author_key_digest": r.author_key_digest.hex(),
        "policy": r.policy,
        "vmpl": r.vmpl,
        "guest_svn": r.guest_svn,
        "family_id": r.family_id.hex(),
        "image_id": r.image_id.hex(),
        "chip_id": r.chip_id.hex(),
        "report_id": r.report_id.hex(),
        "report_id_ma": r.report_id_ma.hex(),
        "platform_info": r.platform_info,
        "signer_info": r.signer_info,
    }
    for which in ("reported", "current", "committed", "launch"):
        tcb = r.tcb(which, product)
        m[f"{which}_tcb"] = f"0x{tcb.encode():016x}"
        m[f"{which}_tcb_spl"] = tcb.as_dict()
    m["current_firmware"] = f"{r.current_major}.{r.current_minor}.{r.current_build}"
    m["committed_firmware"] = f"{r.committed_major}.{r.committed_minor}.{r.committed_build}"
    if r.launch_mit_vector is not None:
        m["launch_mit_vector"] = r.launch_mit_vector
        m["current_mit_vector"] = r.current_mit_vector
    return m


# ---------------- the registry verifier ----------------

# Where certificates come from when the evidence carries none: fixed certificates, the host's cert table,
# a file or directory, a KDS client, or a function (tee, report bytes) -> any of these (or None).
SnpCollateralSource = Union[SnpCollateral, SnpCertTable, KdsClient, str, "os.PathLike[str]",
                            Callable[[str, bytes], Any], None]
_INTEL_PCS_HOSTS = ("api.trustedservices.intel.com",)


def default_kds_url() -> tuple[str, Any]:
    """Where AMD data is fetched when no KDS URL is given: the PCCS Intel data comes from (EAA_PCCS_URL or
    qcnl ``pccs_url``; eaa-pccs serves AMD's ``/vcek/v1/...`` paths from its KDS cache), else AMD's KDS.

    Returns the base URL and the TLS verification setting the QCNL configuration asks for.
    """
    from urllib.parse import urlsplit

    from ..collateral.http import tls_verify
    from ..collateral.pcs import split_service_url
    from ..collateral.qcnl import load_qcnl

    config = load_qcnl()
    if config is None or urlsplit(config.pccs_url).hostname in _INTEL_PCS_HOSTS:
        return KDS_URL, True
    base, _ = split_service_url(config.pccs_url)
    return base, tls_verify(config.use_secure_cert)


class SevSnpVerifier:
    """rats-tls ``sev_snp`` (priority 42): SEV-SNP reports, certificates from a source or AMD's KDS.

    Options: ``amd_anchors`` (AMD ARK certificates to trust instead of the pinned ones; ``trust_anchors``
    are used only for the ARK-named certificates among them, as they usually hold Intel roots),
    ``collateral_source`` (see :data:`SnpCollateralSource`; sources meant for DCAP are ignored), ``kds``
    (a :class:`KdsClient`, a KDS/eaa-pccs base URL, or False for no network; default: the configured PCCS,
    else AMD's KDS, see :func:`default_kds_url`), ``product`` (Milan/Genoa/Turin; a v2 report that does
    not say is taken as go-sev-guest's default, Milan), ``check_crl`` (default True: AMD's CRL must be
    found and checked; False records the opt-out in the result), ``trust_simulation``/``sim_dir`` (also
    trust the simulated SNP platform's ARK and use its certificates), ``strict`` (expired or not yet valid
    certificates fail). Other options are ignored.
    """

    name = "sev_snp"
    evidence_types: tuple[str, ...] = (SEV_SNP,)

    def __init__(self, *, amd_anchors: Sequence[AnchorInput] | None = None,
                 trust_anchors: Sequence[AnchorInput] | None = None, collateral_source: SnpCollateralSource = None,
                 kds: KdsClient | str | bool | None = None, product: str | None = None, strict: bool = False,
                 check_crl: bool = True, trust_simulation: bool = False,
                 sim_dir: str | os.PathLike[str] | None = None) -> None:
        if amd_anchors is not None:
            self.anchors: tuple[AnchorInput, ...] | None = tuple(amd_anchors)
        else:
            arks = tuple(a for a in (trust_anchors or ()) if _cn(_anchor_cert(a)).startswith("ARK-"))
            self.anchors = arks or None
        self.collateral_source = collateral_source
        try:
            self.product = normalize_product(product) if product is not None else None
        except FormatError as e:
            raise ConfigError(f"sev_snp: {e}") from None
        self.strict = strict
        self.check_crl = check_crl
        if kds is not None and not isinstance(kds, (KdsClient, str, bool)):
            raise ConfigError(f"kds must be a KdsClient, a URL or a boolean, not {type(kds).__name__}")
        self._kds_option = kds
        self._kds: KdsClient | None = kds if isinstance(kds, KdsClient) else None
        self._kds_lock = threading.Lock()
        self.trust_simulation = trust_simulation
        self.sim_dir = sim_dir
        self._sim: Any = None
        if trust_simulation:
            from ..sim.snp import load_snp_platform

            self._sim = load_snp_platform(sim_dir)

    # ---- trust ----
    def _anchors(self) -> tuple[Sequence[AnchorInput] | None, bool]:
        """(anchors, also_pinned) for verification: the simulated ARK joins AMD's, never replaces them."""
        if self._sim is None:
            return self.anchors, False
        return (*(self.anchors or ()), self._sim.anchor()), self.anchors is None

    # ---- collateral ----
    def _kds_client(self) -> KdsClient | None:
        if isinstance(self.collateral_source, KdsClient):
            return self.collateral_source
        if self._kds_option is False:
            return None
        with self._kds_lock:  # one client (and its cache) per verifier, however many threads verify
            if self._kds is None:
                if isinstance(self._kds_option, str):
                    url, verify = self._kds_option, True
                else:
                    url, verify = default_kds_url()
                arks = [_anchor_cert(a) for a in self.anchors] if self.anchors is not None else None
                self._kds = KdsClient(url, trusted_arks=arks, verify=verify)
            return self._kds

    def _from_source(self, source: Any, report: bytes) -> SnpCollateral | None:
        if source is None or isinstance(source, KdsClient):
            return None
        if isinstance(source, SnpCollateral):
            return source
        if isinstance(source, SnpEndorsements):
            return SnpCollateral.from_endorsements(source)
        if isinstance(source, SnpCertTable):
            return SnpCollateral.from_cert_table(source)
        if isinstance(source, (str, os.PathLike)):
            return SnpCollateral.from_path(source)
        if callable(source):
            try:
                result = source(TEE, report)
            except FormatError:  # a source written for quotes, handed an SNP report: not ours to use
                return None
            return None if callable(result) else self._from_source(result, report)
        return None  # DCAP collateral and other kinds are not SNP certificates

    def _has_chain(self, vek: x509.Certificate, pool: Sequence[x509.Certificate]) -> bool:
        """Whether ``pool`` (with the anchors) holds an intermediate and ARK for ``vek``, by names."""
        ask = _find_issuer(vek, pool)
        if ask is None:
            return False
        anchors = [_anchor_cert(a) for a in self.anchors] if self.anchors is not None else []
        return _find_issuer(ask, pool) is not None or any(a.subject == ask.issuer for a in anchors)

    def _complete(self, report: SnpReport, have: SnpCollateral, product: str | None) -> bool:
        """Whether ``have`` holds a VEK for ``report``, its chain and (when revocation is checked) a CRL."""
        if not have.veks or (self.check_crl and not have.crls):
            return False
        vek = have.select_vek(report, product)
        return vek is not None and self._has_chain(vek, have.chain)

    def _simulated(self, report: SnpReport) -> SnpCollateral | None:
        """The simulated platform's certificates, when it is trusted and this report is its chip's.

        A report of the simulated chip is refused at once when the simulation is not trusted, rather than
        asking AMD's KDS for a chip that does not exist.
        """
        if self._sim is None:
            from ..sim.snp import load_snp_platform

            try:
                sim = load_snp_platform(self.sim_dir, create=False)
            except EaaError:
                return None
            if report.chip_id == sim.chip_id:
                raise UntrustedRoot("the report comes from the simulated SEV-SNP platform, whose ARK is not trusted "
                                    "(use --trust-sim / EAA_TRUST_SIMULATION=1 to accept simulated evidence)",
                                    check=Check.SNP_ARK_TRUSTED)
            return None
        if report.chip_id != self._sim.chip_id:
            return None
        return self._sim.collateral()  # type: ignore[no-any-return]

    def collateral_for(self, report: SnpReport, collateral: Any = None) -> SnpCollateral:
        """Certificates and CRL for ``report``: those that came with it (``collateral``), the configured
        source, the trusted simulated platform, then (VCEK, chains and CRLs) the KDS or the PCCS serving AMD's
        paths. Each source is asked only while the ones before it left something missing."""
        have = SnpCollateral(source="none")
        product = self.product or report.product
        sources: tuple[Callable[[], SnpCollateral | None], ...] = (
            lambda: self._from_source(collateral, report.raw),
            lambda: self._from_source(self.collateral_source, report.raw),
            lambda: self._simulated(report))
        for ask in sources:
            if self._complete(report, have, product):
                break
            found = ask()
            if found is not None:
                have = found if have.source == "none" else have.merged(found)
        signer = _signer(report).lower()
        vek = have.select_vek(report, product)
        if product is None and vek is not None:
            try:  # a v2 report does not name its product; the VEK's productName does (verified later)
                product = vek_extensions(vek).product
            except EaaError:
                pass
        if product is None and not report.cpuid_fam_id:
            product = DEFAULT_V2_PRODUCT
        need_crl = self.check_crl and not have.crls
        if vek is not None and self._has_chain(vek, have.chain) and not need_crl:
            return SnpCollateral((vek,), have.chain, have.crls, have.source)
        kds = self._kds_client()
        if vek is not None and (kds is None or product is None):  # verification will say what is missing
            return SnpCollateral((vek,), have.chain, have.crls, have.source)
        if kds is None or product is None:
            why = "no KDS is configured" if kds is None else "name the product"
            raise CollateralMissing(f"no {signer.upper()} certificate chain for this SEV-SNP report: none came with "
                                    f"it ({have.source}) and it cannot be fetched: {why}")
        fetched = []
        chain: tuple[x509.Certificate, ...] = ()
        if vek is None:
            if signer == "vlek":
                raise CollateralMissing("no VLEK certificate for this SEV-SNP report: VLEKs come only from the "
                                        "host's certificate table, not from AMD's KDS")
            tcb = TcbVersion.decode(report.reported_tcb, check_product(product))
            vek = load_vek_certificate(kds.vcek(product, report.chip_id, tcb))
            fetched.append("VCEK")
        if not self._has_chain(vek, have.chain):
            kds_chain = kds.cert_chain(product, signer)
            chain = (kds_chain.ask, kds_chain.ark)
            fetched.append("cert_chain")
        crls = have.crls
        if need_crl:
            crls = (kds.crl(product, signer),)
            fetched.append("crl")
        source = f"AMD KDS {kds.base_url} ({', '.join(fetched)})"
        return SnpCollateral((vek,), chain + have.chain, crls,
                             source if have.source == "none" else f"{have.source} + {source}")

    # ---- the verifier interface ----
    def verify_evidence(self, evidence: bytes, *, evidence_type: str = SEV_SNP, report_data_hash: bytes | None = None,
                        collateral: Collateral | SnpCollateral | SnpCertTable | SnpEndorsements | None = None,
                        at: datetime | int | float | None = None, **_: Any) -> VerificationResult:
        from .verifier import check_report_data

        if at is None:
            raise ConfigError("the verification time is required")
        report = SnpReport.parse(evidence)
        check_report_data(report.report_data, report_data_hash)
        c = self.collateral_for(report, collateral)
        anchors, also_pinned = self._anchors()
        return verify_snp_report(report, vek=c.veks[0], chain=c.chain, at=at, trust_anchors=anchors,
                                 product=self.product, strict=self.strict, crl=c.crls if self.check_crl else None,
                                 collateral_source=c.source, require_crl=self.check_crl, also_pinned=also_pinned,
                                 revocation=None if self.check_crl else "not checked: disabled (check_crl=False, "
                                                                        "--no-crl)")
