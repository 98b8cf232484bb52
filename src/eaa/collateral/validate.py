"""Checks applied to collateral on its way in from an upstream, before anything is cached.

A cache that stores whatever an upstream returned turns one bad response into a lasting outage (or
worse, into data served as if it were Intel's). So every response is checked here against the trust
anchors first: issuer chains up to a trusted root with the shape and signer names Intel's QVL requires
(:mod:`eaa.pki.roles`: TCB info only from the TCB Signing certificate, CRLs only from their CA), the
signature over the exact signed JSON bytes, CRL signatures, and that the response is the one that was
asked for (FMSPC, TEE, identity, CA).
Validity windows are deliberately *not* checked: whether expired collateral is acceptable is the
verifier's decision, taken at its own verification time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from cryptography import x509

from ..checks import Check
from ..errors import EaaError
from ..formats.enclave_identity import EnclaveIdentity
from ..formats.pck_extensions import parse_sgx_extension, sgx_extension_value
from ..formats.signed_json import split_signed
from ..formats.tcb_info import TcbInfo
from ..formats.x509_errors import READ_ERRORS
from ..pki.chain import ChainMemo, CheckedCrl, check_crl, crl_issuer_der, load_pem_chain
from ..pki.roles import PCK, PCK_CRL, QE_IDENTITY, TCB_INFO, ChainRole, RoleChain, check_role_chain, subject_der
from ..pki.trust import TrustAnchor
from ..records import record
from .errors import CorruptCollateral
from .signed import checked_identity, checked_tcb_info

T = TypeVar("T")
CA_TYPES = ("processor", "platform")
IDENTITY_IDS = {("sgx", "qe"): "QE", ("tdx", "qe"): "TD_QE", ("sgx", "qve"): "QVE"}


def _checked(what: str, fn: Callable[[], T]) -> T:
    """Run one validation and report any failure as :class:`CorruptCollateral` naming ``what``."""
    try:
        return fn()
    except CorruptCollateral:
        raise
    except EaaError as e:  # most messages already start with what they are about
        raise CorruptCollateral(str(e) if str(e).startswith(what) else f"{what}: {e}", check=e.check) from e
    except READ_ERRORS as e:  # cryptography parses lazily
        raise CorruptCollateral(f"{what}: {e}") from e


def _role_chain(issuer_chain: str, anchors: Sequence[TrustAnchor], role: ChainRole,
                memo: ChainMemo | None = None) -> RoleChain:
    memo = memo if memo is not None else ChainMemo()
    return check_role_chain(load_pem_chain(issuer_chain, role.what, memo), anchors, role, memo)


def validate_tcb_info(response: str | bytes, issuer_chain: str, anchors: Sequence[TrustAnchor], *,
                      tee: str | None = None, fmspc: str | bytes | None = None) -> TcbInfo:
    """Parse and check a full TCB info response (``{"tcbInfo":…,"signature":…}``)."""

    def run() -> TcbInfo:
        body, signature = split_signed(response, "tcbInfo")
        memo = ChainMemo()
        info = checked_tcb_info(body, signature, _role_chain(issuer_chain, anchors, TCB_INFO, memo), memo)
        if tee is not None and info.id != tee.upper():
            raise CorruptCollateral(f"TCB info is for {info.id}, {tee.upper()} was requested")
        if fmspc is not None:
            want = bytes.fromhex(fmspc) if isinstance(fmspc, str) else fmspc
            if info.fmspc != want:
                raise CorruptCollateral(f"TCB info is for FMSPC {info.fmspc.hex()}, {want.hex()} was requested")
        return info

    return _checked("TCB info", run)


def validate_enclave_identity(response: str | bytes, issuer_chain: str, anchors: Sequence[TrustAnchor], *,
                              identity_id: str | None = None) -> EnclaveIdentity:
    """Parse and check a full enclave identity response (QE, TD_QE or QVE)."""

    def run() -> EnclaveIdentity:
        body, signature = split_signed(response, "enclaveIdentity")
        memo = ChainMemo()
        ident = checked_identity(body, signature, _role_chain(issuer_chain, anchors, QE_IDENTITY, memo), memo)
        if identity_id is not None and ident.id != identity_id:
            raise CorruptCollateral(f"enclave identity is {ident.id!r}, {identity_id!r} was requested")
        return ident

    return _checked("enclave identity", run)


def pck_ca_type(cert: x509.Certificate) -> str:
    """"processor" or "platform", from the CA's common name as Intel (and the simulator) spell it."""
    cns = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    name = str(cns[0]) if cns else ""
    for ca in CA_TYPES:
        if ca in name.lower():
            return ca
    raise CorruptCollateral(f"{name or cert.subject.rfc4514_string()} is neither a PCK Processor nor Platform CA")


def validate_pck_crl(der: bytes, issuer_chain: str, anchors: Sequence[TrustAnchor], *,
                     ca: str | None = None) -> CheckedCrl:
    """Check a PCK CRL against its issuer chain; ``ca`` must match the issuing CA's kind."""

    def run() -> CheckedCrl:
        memo = ChainMemo()
        chain = _role_chain(issuer_chain, anchors, PCK_CRL, memo)
        if ca is not None and chain.ca_kind != ca:
            raise CorruptCollateral(f"PCK CRL is issued by the {chain.ca_kind} CA, the {ca} CA was requested",
                                    check=Check.PCK_CRL_ISSUER)
        return check_crl(der, chain.signer, "PCK CRL", issuer_name=subject_der(memo, chain.signer),
                         issuer_check=Check.PCK_CRL_ISSUER, signature_check=Check.PCK_CRL_SIGNATURE)

    return _checked("PCK CRL", run)


def validate_root_ca_crl(der: bytes, anchors: Sequence[TrustAnchor]) -> CheckedCrl:
    """Check a root CA CRL: it must be signed by one of the trust anchors."""

    def run() -> CheckedCrl:
        issuer = crl_issuer_der(der)
        for anchor in anchors:
            if anchor.names is not None and anchor.names.root == issuer:
                try:
                    return check_crl(der, anchor.certificate, "root CA CRL", anchor.public_key, issuer_name=issuer,
                                     issuer_check=Check.ROOT_CA_CRL_ISSUER, signature_check=Check.ROOT_CA_CRL_SIGNATURE)
                except EaaError:
                    continue  # another anchor with the same name may be the signer
        raise CorruptCollateral("root CA CRL is not issued and signed by a trusted root",
                                check=Check.ROOT_CA_CRL_ISSUER)

    return _checked("root CA CRL", run)


@record
class PckCertInfo:
    """What a PCK certificate says about its platform (the PCCS ``/pckcert`` headers come from it)."""

    fmspc: bytes
    pce_id: bytes
    cpu_svn: bytes
    pce_svn: int
    ca_type: str
    not_after: datetime

    @property
    def tcbm(self) -> str:
        """``SGX-TCBm``: CPUSVN (16 bytes) then PCESVN (2 bytes, little-endian), upper-case hex."""
        return (self.cpu_svn + self.pce_svn.to_bytes(2, "little")).hex().upper()


def pck_certificate_info(leaf: x509.Certificate) -> PckCertInfo:
    """Read FMSPC, PCE-ID, TCB and CA type from a PCK leaf (no signature check)."""
    raw = _checked("PCK certificate", lambda: sgx_extension_value(leaf))
    if raw is None:
        raise CorruptCollateral("PCK certificate lacks the SGX extension")
    sgx = _checked("PCK certificate", lambda: parse_sgx_extension(raw))
    issuer_cn = leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    name = str(issuer_cn[0].value).lower() if issuer_cn else ""
    ca = next((c for c in CA_TYPES if c in name), None)
    if ca is None:
        raise CorruptCollateral("PCK certificate issuer is neither a Processor nor a Platform CA")
    return PckCertInfo(sgx.fmspc, sgx.pce_id, sgx.cpu_svn, sgx.pce_svn, ca, leaf.not_valid_after_utc)


def validate_pck_certificate(leaf_pem: str | bytes, issuer_chain: str, anchors: Sequence[TrustAnchor]) -> PckCertInfo:
    """Check a PCK leaf (PCCS ``/pckcert`` body) against its issuer chain header."""

    def run() -> PckCertInfo:
        memo = ChainMemo()
        leaves = load_pem_chain(leaf_pem, "PCK certificate", memo)
        if len(leaves) != 1:
            raise CorruptCollateral(f"PCK certificate response holds {len(leaves)} certificates, expected 1",
                                    check=Check.PCK_CHAIN_SHAPE)
        chain = load_pem_chain(issuer_chain, "PCK certificate issuer chain", memo)
        check_role_chain((leaves[0], *chain), anchors, PCK, memo)
        return pck_certificate_info(leaves[0])

    return _checked("PCK certificate", run)
