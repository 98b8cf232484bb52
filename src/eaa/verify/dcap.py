"""Intel SGX / TDX ECDSA quote verification, step by step as Intel's QVL and QvE do it.

Read :meth:`QuoteVerifier.verify` top to bottom: each numbered step is one check with its own typed
error (shared/docs/dcap-reference.md §2.2). The verification time and the trust anchors are inputs.

Results of time-independent work (parsing, chain and collateral signatures, CRL signatures, and a QE
report already verified under the same PCK key) are cached under the exact bytes they were computed
from; validity windows, revocation lookups, TCB evaluation and the quote signature are redone on
every call. ``cache_size=0`` redoes everything.
"""

from __future__ import annotations

import hashlib

# threading.Lock is this function; importing threading would cost a one-shot command more than the lock
from _thread import allocate_lock
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ..checks import Check
from ..collateral.bundle import Collateral
from ..collateral.signed import checked_identity, checked_tcb_info
from ..errors import (
    CertificateChainError,
    CollateralExpired,
    CollateralInvalid,
    CollateralMissing,
    CrlError,
    EaaError,
    IdentityMismatch,
    UnsupportedCertificationData,
)
from ..formats.der import encode_oid
from ..formats.enclave_identity import EnclaveIdentity, EnclaveTcbLevel
from ..formats.pck_extensions import SGX_EXTENSION_OID, PckExtensions, parse_sgx_extension, sgx_extension_value
from ..formats.quote import CERT_PCK_CHAIN, INTEL_QE_VENDOR_ID, Quote, parse_quote
from ..formats.report_body import SgxReportBody
from ..formats.tcb_info import TcbInfo
from ..pki.chain import (
    ChainMemo,
    CheckedChain,
    CheckedCrl,
    Window,
    check_crl,
    check_windows,
    describe,
    load_pem_chain,
    public_key_from_raw,
    public_key_of,
    typed_certificate_errors,
    verify_raw_signature,
)
from ..pki.roles import PCK, PCK_CRL, QE_IDENTITY, TCB_INFO, ChainRole, RoleChain, check_role_chain, subject_der
from ..pki.trust import TrustAnchor, default_anchors
from ..timeutil import as_utc
from .measurements import SgxMeasurements
from .result import REVOKED, TcbStatus, VerificationResult
from .tcb import StatusWithAdvisory, check_qe_identity, evaluate_tcb, validate_statuses

if TYPE_CHECKING:
    from ..formats.td_report import TdReportBody
    from .tdx_measurements import TdxMeasurements

T = TypeVar("T")
_SGX_OID_RAW = encode_oid(SGX_EXTENSION_OID)


class _Lru:
    """A small thread-safe LRU keyed by exact bytes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._d: OrderedDict[Any, Any] = OrderedDict()
        self._lock = allocate_lock()

    def get_or(self, key: Any, make: Callable[[], T]) -> T:
        if self.size <= 0:
            return make()
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]  # type: ignore[no-any-return]
        value = make()
        with self._lock:
            self._d[key] = value
            if len(self._d) > self.size:
                self._d.popitem(last=False)
        return value


# A NamedTuple, not a dataclass: an internal record, and defining a frozen dataclass costs a one-shot
# command's start several times more.
class _PckRecord(NamedTuple):
    """A PCK chain checked up to an anchor, with what the per-quote steps need from it."""

    chain: CheckedChain
    leaf: x509.Certificate
    key: ec.EllipticCurvePublicKey
    serial: int
    ca: x509.Certificate  # the PCK leaf's issuer
    ca_fp: bytes  # its SHA-256 fingerprint when records are cached (empty otherwise)
    ext: PckExtensions
    intermediates: tuple[x509.Certificate, ...]
    fingerprint: bytes


class _CollateralRecord(NamedTuple):
    """TCB info, QE identity and CRLs with every signature checked; only time checks remain."""

    anchor: TrustAnchor
    tcb_info: TcbInfo
    qe_identity: EnclaveIdentity
    windows: tuple[Window, ...]  # certificates and signed items: not before / not after
    root_crl: CheckedCrl | None
    pck_crl: CheckedCrl | None
    crl_issuer: x509.Certificate | None  # the certificate whose key signed the PCK CRL
    crl_issuer_fp: bytes
    revocable: tuple[x509.Certificate, ...]  # intermediates the root CRL must not list


class QuoteVerifier:
    """Verifies DCAP ECDSA quotes against collateral; reuse one instance to keep its caches warm."""

    def __init__(self, trust_anchors: Sequence[TrustAnchor] | None = None, *, check_crl: bool = True,
                 cache_size: int = 256) -> None:
        self.anchors = tuple(trust_anchors) if trust_anchors else default_anchors()
        self.check_crl = check_crl
        self._cache = _Lru(cache_size)

    # ---- time-independent pieces, cached under their exact bytes ----
    def _chain(self, pem: str | bytes, role: ChainRole, memo: ChainMemo) -> RoleChain:
        """Chains repeat within one quote's collateral (TCB info and QE identity share one): check each once
        per role it plays."""
        key = (pem, role.signer)
        chain: RoleChain | None = memo.chains.get(key)
        if chain is None:
            chain = memo.chains[key] = check_role_chain(load_pem_chain(pem, role.what, memo), self.anchors, role,
                                                        memo)
        return chain

    def _pck_record(self, pem: str | bytes, memo: ChainMemo) -> _PckRecord:
        return self._cache.get_or(("pck", pem), lambda: self._make_pck_record(pem, memo))

    def _make_pck_record(self, pem: str | bytes, memo: ChainMemo) -> _PckRecord:
        # [PCK leaf, PCK Processor/Platform CA, root], each named as its role (eaa.pki.roles).
        chain = self._chain(pem, PCK, memo).chain
        leaf, ca = chain.certs
        key = memo.public_key(leaf)
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise CertificateChainError("PCK certificate does not hold an EC key", check=Check.PCK_LEAF_SUBJECT)
        fields = memo.fields(leaf)
        sgx = fields.extensions.get(_SGX_OID_RAW) if fields is not None else None
        cached = self._cache.size > 0
        return _PckRecord(chain, leaf, key, leaf.serial_number, ca,
                          ca.fingerprint(hashes.SHA256()) if cached else b"",
                          parse_sgx_extension(sgx[1] if sgx is not None else _sgx_extension(leaf)),
                          (ca,), leaf.fingerprint(hashes.SHA256()) if cached else b"")

    def _collateral_record(self, c: Collateral, memo: ChainMemo) -> _CollateralRecord:
        return self._cache.get_or(("coll", self.check_crl, c), lambda: self._make_collateral_record(c, memo))

    def _make_collateral_record(self, c: Collateral, memo: ChainMemo) -> _CollateralRecord:
        if not c.tcb_info or not c.qe_identity:
            raise CollateralMissing("collateral lacks TCB info or QE identity")
        # Signed by the TCB Signing certificate directly under the root, and by no other (eaa.pki.roles).
        tcb_role = self._chain(c.tcb_info_issuer_chain, TCB_INFO, memo)
        qe_role = self._chain(c.qe_identity_issuer_chain or c.tcb_info_issuer_chain, QE_IDENTITY, memo)
        tcb_chain, qe_chain = tcb_role.chain, qe_role.chain
        if qe_chain.anchor is not tcb_chain.anchor:
            raise CertificateChainError("TCB info and QE identity lead to different roots", check=Check.SAME_ROOT)
        tcb_info = checked_tcb_info(c.tcb_info, c.tcb_info_signature, tcb_role, memo)
        qe_identity = checked_identity(c.qe_identity, c.qe_identity_signature, qe_role, memo)
        validate_statuses(tcb_info, qe_identity)
        windows = [*tcb_chain.windows, *qe_chain.windows,
                   ("TCB info", tcb_info.issue_date, tcb_info.next_update),
                   ("QE identity", qe_identity.issue_date, qe_identity.next_update)]
        revocable = [*tcb_chain.certs, *qe_chain.certs]
        root_crl = pck_crl = None
        crl_issuer = None
        if self.check_crl:
            if not c.root_ca_crl or not c.pck_crl:
                raise CollateralMissing("collateral lacks the root CA CRL or the PCK CRL (use --no-crl to skip)",
                                        check=Check.CRL_MISSING)
            if not c.pck_crl_issuer_chain:
                raise CollateralMissing("collateral lacks the PCK CRL issuer chain", check=Check.CRL_MISSING)
            anchor = tcb_chain.anchor
            assert anchor.names is not None  # the role checks refused a root without role names
            root_crl = check_crl(c.root_ca_crl, anchor.certificate, "root CA CRL", anchor.public_key,
                                 issuer_name=anchor.names.root, issuer_check=Check.ROOT_CA_CRL_ISSUER,
                                 signature_check=Check.ROOT_CA_CRL_SIGNATURE)
            crl_chain = self._chain(c.pck_crl_issuer_chain, PCK_CRL, memo).chain
            if crl_chain.anchor is not anchor:
                raise CertificateChainError("PCK CRL issuer chain leads to a different root", check=Check.SAME_ROOT)
            crl_issuer = crl_chain.leaf
            pck_crl = check_crl(c.pck_crl, crl_issuer, "PCK CRL", memo.public_key(crl_issuer),
                                issuer_name=subject_der(memo, crl_issuer), issuer_check=Check.PCK_CRL_ISSUER,
                                signature_check=Check.PCK_CRL_SIGNATURE)
            windows += [*crl_chain.windows, ("root CA CRL", root_crl.this_update, root_crl.next_update),
                        ("PCK CRL", pck_crl.this_update, pck_crl.next_update)]
            revocable += crl_chain.certs
            if root_crl.is_revoked(anchor.certificate.serial_number):
                raise CertificateChainError("the root CA is revoked by its own CRL", check=Check.ROOT_CA_REVOKED)
        return _CollateralRecord(tcb_chain.anchor, tcb_info, qe_identity, tuple(windows), root_crl, pck_crl,
                                 crl_issuer, crl_issuer.fingerprint(hashes.SHA256())
                                 if crl_issuer is not None and self._cache.size > 0 else b"",
                                 tuple(revocable))

    # ---- the verification ----
    @typed_certificate_errors
    def verify(self, quote: bytes | Quote, collateral: Collateral, *, at: datetime | int | float,
               strict: bool = False) -> VerificationResult:
        """Steps 0-6 and 8 depend only on bytes and are prepared once per (quote, collateral); the checks
        that depend on the time (validity windows, strict expiry) and the quote signature run every call."""
        now = as_utc(at)
        if isinstance(quote, Quote):
            p = self._cache.get_or(("quote", quote.raw, collateral), lambda: self._prepare(quote, collateral))
        else:
            raw = bytes(quote)
            p = self._cache.get_or(("quote", raw, collateral), lambda: self._prepare(parse_quote(raw), collateral))
        q = p.quote

        not_yet_valid: list[str] = []
        expiries = [check_windows(p.pck.chain.windows, now, not_yet_valid),
                    check_windows(p.coll.windows, now, not_yet_valid)]

        # 7. Quote signature by the attestation key over header and body.
        verify_raw_signature(p.attestation_key, q.signature_data.signature, q.signed_data, "quote",
                             check=Check.QUOTE_SIGNATURE)
        if isinstance(p.tcb, EaaError):  # step 8 failed: reported after the signature, as the steps are ordered
            raise _fresh(p.tcb)
        tcb, tcb_info, ext = p.tcb, p.coll.tcb_info, p.pck.ext

        # 9. Collateral time: expiry is flagged as Intel's QvE does (QVL never checks issue dates); in
        #    strict mode expired or not-yet-valid collateral is an error.
        earliest = min(expiries)
        expired = earliest <= now
        if expired and strict:
            raise CollateralExpired(f"collateral expired at {earliest:%Y-%m-%dT%H:%M:%SZ}",
                                    check=Check.COLLATERAL_EXPIRED)
        if not_yet_valid and strict:
            raise CollateralExpired(f"collateral not yet valid: {not_yet_valid[0]}",
                                    check=Check.COLLATERAL_NOT_YET_VALID)
        anchor = p.pck.chain.anchor
        return VerificationResult(
            tee=q.tee,
            status=REVOKED if p.pck_revoked else TcbStatus(tcb.status),
            advisory_ids=tcb.advisory_ids,
            measurements=p.measurements,
            report_data=q.body.report_data,
            fmspc=ext.fmspc.hex(),
            tcb_date=tcb.tcb_date,
            collateral_expired=expired,
            simulated=anchor.simulated or anchor.names_simulation,
            debug=q.body.debug,
            earliest_expiration=earliest,
            details={
                "quote_version": q.header.version,
                "body_type": q.body_type,
                "qe_status": p.qe_level.status,
                "qe_isvsvn": q.signature_data.qe.qe_report.isv_svn,
                "pce_svn": ext.pce_svn,
                "tcb_evaluation_data_number": tcb_info.tcb_evaluation_data_number,
                "root": anchor.name,
                **({"not_yet_valid": not_yet_valid} if not_yet_valid else {}),
            },
        )

    def _prepare(self, q: Quote, collateral: Collateral) -> _Prepared:
        memo = ChainMemo()

        # 0. Quote header: Intel QE, ECDSA P-256 (the parser already checked version and key type).
        if q.header.qe_vendor_id != INTEL_QE_VENDOR_ID:
            raise IdentityMismatch(f"unknown QE vendor ID {q.header.qe_vendor_id.hex()}", check=Check.QE_VENDOR_ID)

        # 1. PCK certificate chain: from the quote (type 5) or supplied with the collateral (types 1-4).
        cd = q.certification_data
        if cd.cert_type == CERT_PCK_CHAIN:
            pck_pem: str | bytes = cd.data
        elif collateral.pck_certificate_chain:
            pck_pem = collateral.pck_certificate_chain
            if pck_pem.count("BEGIN CERTIFICATE") == 1:  # a bare PCK leaf (PCCS /pckcert): its CA comes along
                pck_pem = pck_pem.rstrip("\n") + "\n" + collateral.pck_crl_issuer_chain
        else:
            raise UnsupportedCertificationData(
                f"certification data type {cd.cert_type} carries no PCK certificate; fetch it from a PCCS")
        pck = self._pck_record(pck_pem, memo)
        anchor = pck.chain.anchor

        # 2-3. TCB info and QE identity (issuer chains, signatures over the exact bytes, status strings);
        #      CRLs signed by their issuers. All to the same root as the PCK chain.
        coll = self._collateral_record(collateral, memo)
        if coll.anchor is not anchor:
            raise CertificateChainError("collateral and PCK certificate chain lead to different roots",
                                        check=Check.SAME_ROOT)
        pck_revoked = False
        if self.check_crl:
            assert coll.root_crl is not None and coll.pck_crl is not None
            if not _same_issuer(coll, pck):
                raise CrlError("PCK CRL issuer is not the issuer of the PCK certificate", check=Check.PCK_CRL_ISSUER)
            for cert in (*pck.intermediates, *coll.revocable):
                if coll.root_crl.is_revoked(cert.serial_number):
                    raise CertificateChainError(f"{describe(cert)} is revoked by the root CA CRL",
                                                check=Check.CA_REVOKED)
            pck_revoked = coll.pck_crl.is_revoked(pck.serial)

        # 4. QE report signature by the PCK key. One QE report serves every quote made with its attestation
        #    key, so a verified (report, signature, PCK) triple is remembered under its exact bytes.
        qe = q.signature_data.qe
        def qe_report_signed() -> bool:
            verify_raw_signature(pck.key, qe.qe_report_signature, qe.qe_report.raw, "QE report",
                                 check=Check.QE_REPORT_SIGNATURE)
            return True

        self._cache.get_or(("qe-report", pck.fingerprint, qe.qe_report.raw, qe.qe_report_signature), qe_report_signed)

        # 5. QE report data binds the attestation key and QE auth data.
        expected = hashlib.sha256(q.signature_data.attestation_key + qe.qe_auth_data).digest()
        if qe.qe_report.report_data[:32] != expected:
            raise IdentityMismatch("QE report data does not bind the attestation key", check=Check.QE_REPORT_DATA)

        # 6. QE identity: the right identity for this TEE, then signer, product, masked fields, TCB level.
        qe_identity = coll.qe_identity
        want_qe = "TD_QE" if q.is_tdx else "QE"
        if qe_identity.id != want_qe:
            raise CollateralInvalid(f"QE identity is {qe_identity.id!r}, a {q.tee.upper()} quote needs {want_qe!r}",
                                    check=Check.QE_IDENTITY_ID)
        qe_level = check_qe_identity(qe.qe_report, qe_identity)

        # 7. (every call) The attestation key the quote signature is checked with.
        att_key = public_key_from_raw(q.signature_data.attestation_key, "attestation key", check=Check.ATTESTATION_KEY)

        # 8. Platform TCB: FMSPC, PCE-ID, TEE type, then TCB level, TDX module, relaunch; merged with the QE.
        #    A failure here is kept and reported after the quote signature, in step order.
        try:
            tcb: StatusWithAdvisory | EaaError = _platform_tcb(q, pck.ext, coll.tcb_info, qe_level)
        except EaaError as e:
            tcb = e
        return _Prepared(q, pck, coll, pck_revoked, qe_level, att_key, tcb, _measurements(q.body))


def _fresh(e: EaaError) -> EaaError:
    """A new exception object equal to a cached one (one raised object must not be shared by threads)."""
    copy = e.__class__.__new__(e.__class__)
    copy.__dict__.update(e.__dict__)
    copy.args = e.args
    return copy


def _platform_tcb(q: Quote, ext: PckExtensions, tcb_info: TcbInfo, qe_level: EnclaveTcbLevel) -> StatusWithAdvisory:
    if ext.fmspc != tcb_info.fmspc:
        raise IdentityMismatch(f"PCK FMSPC {ext.fmspc.hex()} does not match TCB info FMSPC {tcb_info.fmspc.hex()}",
                               check=Check.FMSPC)
    if ext.pce_id != tcb_info.pce_id:
        raise IdentityMismatch("PCK PCE-ID does not match the TCB info", check=Check.PCE_ID)
    want_tcb = "TDX" if q.is_tdx else "SGX"
    if tcb_info.id != want_tcb:
        raise CollateralInvalid(f"TCB info is for {tcb_info.id}, the quote is {want_tcb}", check=Check.TCB_INFO_TEE)
    return evaluate_tcb(tcb_info, ext, q.body, qe_level)


class _Prepared(NamedTuple):
    """Everything about one (quote, collateral) pair that does not depend on the time."""

    quote: Quote
    pck: _PckRecord
    coll: _CollateralRecord
    pck_revoked: bool
    qe_level: EnclaveTcbLevel
    attestation_key: ec.EllipticCurvePublicKey
    tcb: StatusWithAdvisory | EaaError  # step 8's outcome
    measurements: SgxMeasurements | TdxMeasurements


def _same_issuer(coll: _CollateralRecord, pck: _PckRecord) -> bool:
    """The PCK CRL must come from the PCK certificate's own CA: the same certificate (the usual case, and
    cheap to compare), or one with the same name and key (a re-issued CA)."""
    crl_issuer, pck_ca = coll.crl_issuer, pck.ca
    if crl_issuer is None:
        return False
    if crl_issuer is pck_ca or (coll.crl_issuer_fp and coll.crl_issuer_fp == pck.ca_fp):
        return True
    try:
        return crl_issuer.subject == pck_ca.subject and public_key_of(crl_issuer) == public_key_of(pck_ca)
    except ValueError:  # a name cryptography cannot parse is not the same name
        return False


def _sgx_extension(leaf: x509.Certificate) -> bytes:
    value = sgx_extension_value(leaf)
    if value is None:
        raise CertificateChainError("PCK certificate lacks the SGX extension", check=Check.PCK_LEAF_SUBJECT)
    return value


def _measurements(body: SgxReportBody | TdReportBody) -> SgxMeasurements | TdxMeasurements:
    if isinstance(body, SgxReportBody):
        return SgxMeasurements(
            mrenclave=body.mr_enclave.hex(),
            mrsigner=body.mr_signer.hex(),
            isv_prod_id=body.isv_prod_id,
            isv_svn=body.isv_svn,
            attributes=body.attributes.hex(),
            misc_select=body.misc_select,
            config_svn=body.config_svn,
            config_id=body.config_id.hex(),
        )
    from .tdx_measurements import TdxMeasurements  # only TDX quotes need it (see eaa.formats.td_report)

    return TdxMeasurements(
        mrtd=body.mr_td.hex(),
        rtmr0=body.rtmr[0].hex(),
        rtmr1=body.rtmr[1].hex(),
        rtmr2=body.rtmr[2].hex(),
        rtmr3=body.rtmr[3].hex(),
        mr_seam=body.mr_seam.hex(),
        mrsigner_seam=body.mrsigner_seam.hex(),
        td_attributes=body.td_attributes.hex(),
        xfam=body.xfam.hex(),
        mr_config_id=body.mr_config_id.hex(),
        mr_owner=body.mr_owner.hex(),
        mr_owner_config=body.mr_owner_config.hex(),
        tee_tcb_svn=body.tee_tcb_svn.hex(),
        mr_servicetd=body.mr_servicetd.hex() if body.mr_servicetd is not None else None,
    )


def verify_quote(quote: bytes | Quote, collateral: Collateral, *, at: datetime | int | float,
                 trust_anchors: Sequence[TrustAnchor] | None = None, check_crl: bool = True,
                 strict: bool = False) -> VerificationResult:
    """Verify one quote with a fresh verifier (no cache shared between calls)."""
    return QuoteVerifier(trust_anchors, check_crl=check_crl, cache_size=0).verify(
        quote, collateral, at=at, strict=strict)
