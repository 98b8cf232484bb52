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

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..errors import CertificateChainError, IdentityMismatch, InvalidSignature
from ..formats.snp_report import SIGNING_KEY_NONE, SIGNING_KEY_VLEK, SnpReport, normalize_product
from ..formats.snp_vek import VCEK, VLEK
from ..pki.amd import AnchorInput, CertInput, CrlInput, check_vek_chain, common_name, crl_list
from ..pki.chain import VerifyingEcdsa, typed_certificate_errors
from .result import UP_TO_DATE, VerificationResult
from .snp_collateral import hwid_matches
from .snp_measurements import SnpMeasurements

TEE = "sev-snp"
ECDSA_SHA384 = VerifyingEcdsa(hashes.SHA384())
DEFAULT_V2_PRODUCT = "Milan"  # go-sev-guest abi.DefaultSevProduct(): what a v2 report is taken to be


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
    signer = signer_of(r)

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
    if common_name(vc.ark) != f"ARK-{line}" or common_name(vc.intermediate) != want_ask:
        raise CertificateChainError(f"chain names {common_name(vc.intermediate)!r} <- {common_name(vc.ark)!r} are "
                                    f"not AMD's {want_ask!r} <- 'ARK-{line}'")

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
        if not hwid_matches(ext.hwid, r.chip_id, line):
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
            "revocation": revocation if revocation is not None and not crl_list(crl) else vc.revocation,
            **({"not_yet_valid": list(vc.not_yet_valid)} if vc.not_yet_valid else {}),
            "status_meaning": "signed by a genuine AMD key for the reported TCB; SNP has no TCB status collateral",
        },
    )


def signer_of(r: SnpReport) -> str:
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


def _measurements(r: SnpReport, product: str) -> SnpMeasurements:
    tcbs: dict[str, Any] = {}
    for which in ("reported", "current", "committed", "launch"):
        tcb = r.tcb(which, product)
        tcbs[f"{which}_tcb"] = f"0x{tcb.encode():016x}"
        tcbs[f"{which}_tcb_spl"] = tcb.as_dict()
    return SnpMeasurements(
        measurement=r.measurement.hex(),
        host_data=r.host_data.hex(),
        id_key_digest=r.id_key_digest.hex(),
        author_key_digest=r.author_key_digest.hex(),
        policy=r.policy,
        vmpl=r.vmpl,
        guest_svn=r.guest_svn,
        family_id=r.family_id.hex(),
        image_id=r.image_id.hex(),
        chip_id=r.chip_id.hex(),
        report_id=r.report_id.hex(),
        report_id_ma=r.report_id_ma.hex(),
        platform_info=r.platform_info,
        signer_info=r.signer_info,
        current_firmware=f"{r.current_major}.{r.current_minor}.{r.current_build}",
        committed_firmware=f"{r.committed_major}.{r.committed_minor}.{r.committed_build}",
        launch_mit_vector=r.launch_mit_vector,
        current_mit_vector=r.current_mit_vector if r.launch_mit_vector is not None else None,
        **tcbs,
    )
