"""Byte-exact SGX v3 and TDX v4 ECDSA quotes (DCAP ``sgx_quote_3.h`` / ``sgx_quote_4.h``).

Integers are little-endian; signatures are raw r||s and keys x||y (64 bytes each). Layouts are in
shared/docs/dcap-reference.md §1; :func:`eaa.formats.quote.parse_quote` reads what these functions write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import ec

from ..formats.quote import (
    ATT_KEY_TYPE_ECDSA_P256,
    CERT_PCK_CHAIN,
    CERT_QE_REPORT,
    INTEL_QE_VENDOR_ID,
    TEE_TYPE_SGX,
    TEE_TYPE_TDX,
)
from ..formats.report_body import SGX_FLAGS_DEBUG, SGX_REPORT_BODY_SIZE, TD_ATTR_DEBUG, TD_REPORT10_SIZE
from ..records import record
from .pki import raw_public_key, sign_raw
from .tcbinfo import QE_ATTRIBUTES, QE_MISCSELECT

SGX_FLAGS_INIT = 0x01
SGX_FLAGS_MODE64BIT = 0x04
SGX_XFRM = 0xE7  # x87, SSE, AVX, AVX-512 state
TD_ATTR_SEPT_VE_DISABLE = 1 << 28
TD_XFAM = 0x00000000000602E7
QE_AUTH_DATA = bytes(range(32))  # what Intel's QE puts there; 32 bytes as dcap-qvl requires


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "little")


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "little")


def _fixed(value: bytes, size: int, what: str) -> bytes:
    if len(value) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(value)}")
    return bytes(value)


def header(version: int, tee_type: int, qe_svn: int, pce_svn: int, qe_id: bytes) -> bytes:
    """The 48-byte quote header; v4 keeps bytes 8..12 reserved (zero) as real TDX quotes do."""
    svns = _u16(qe_svn) + _u16(pce_svn) if version == 3 else bytes(4)
    out = (_u16(version) + _u16(ATT_KEY_TYPE_ECDSA_P256) + _u32(tee_type) + svns + INTEL_QE_VENDOR_ID
           + _fixed(qe_id, 16, "QE ID") + bytes(4))
    assert len(out) == 48
    return out


def sgx_report_body(*, cpu_svn: bytes, misc_select: int, attributes: bytes, mr_enclave: bytes, mr_signer: bytes,
                    isv_prod_id: int, isv_svn: int, report_data: bytes, config_svn: int = 0,
                    isv_ext_prod_id: bytes = bytes(16), config_id: bytes = bytes(64),
                    isv_family_id: bytes = bytes(16)) -> bytes:
    """``sgx_report_body_t`` (384 bytes): the SGX quote body and the QE report."""
    out = (
        _fixed(cpu_svn, 16, "cpu_svn") + _u32(misc_select) + bytes(12) + _fixed(isv_ext_prod_id, 16, "isv_ext_prod_id")
        + _fixed(attributes, 16, "attributes") + _fixed(mr_enclave, 32, "mr_enclave") + bytes(32)
        + _fixed(mr_signer, 32, "mr_signer") + bytes(32) + _fixed(config_id, 64, "config_id")
        + _u16(isv_prod_id) + _u16(isv_svn) + _u16(config_svn) + bytes(42)
        + _fixed(isv_family_id, 16, "isv_family_id") + _fixed(report_data, 64, "report_data")
    )
    assert len(out) == SGX_REPORT_BODY_SIZE
    return out


def sgx_attributes(debug: bool) -> bytes:
    flags = SGX_FLAGS_INIT | SGX_FLAGS_MODE64BIT | (SGX_FLAGS_DEBUG if debug else 0)
    return flags.to_bytes(8, "little") + SGX_XFRM.to_bytes(8, "little")


def td_report10_body(*, tee_tcb_svn: bytes, mr_seam: bytes, mrsigner_seam: bytes, seam_attributes: bytes,
                     td_attributes: int, xfam: int, mr_td: bytes, rtmrs: Sequence[bytes], report_data: bytes,
                     mr_config_id: bytes = bytes(48), mr_owner: bytes = bytes(48),
                     mr_owner_config: bytes = bytes(48)) -> bytes:
    """``sgx_report2_body_t`` (TD report 1.0, 584 bytes): the TDX v4 quote body."""
    if len(rtmrs) != 4:
        raise ValueError("a TD report has exactly four RTMRs")
    out = (
        _fixed(tee_tcb_svn, 16, "tee_tcb_svn") + _fixed(mr_seam, 48, "mr_seam")
        + _fixed(mrsigner_seam, 48, "mrsigner_seam") + _fixed(seam_attributes, 8, "seam_attributes")
        + td_attributes.to_bytes(8, "little") + xfam.to_bytes(8, "little") + _fixed(mr_td, 48, "mr_td")
        + _fixed(mr_config_id, 48, "mr_config_id") + _fixed(mr_owner, 48, "mr_owner")
        + _fixed(mr_owner_config, 48, "mr_owner_config")
        + b"".join(_fixed(r, 48, f"rtmr{i}") for i, r in enumerate(rtmrs)) + _fixed(report_data, 64, "report_data")
    )
    assert len(out) == TD_REPORT10_SIZE
    return out


def td_attributes(debug: bool) -> int:
    return TD_ATTR_SEPT_VE_DISABLE | (TD_ATTR_DEBUG if debug else 0)


@record
class QuotingEnclave:
    """What signs a quote: the QE's attestation key and report, certified by the PCK key and chain."""

    attestation_key: ec.EllipticCurvePrivateKey
    pck_key: ec.EllipticCurvePrivateKey
    pck_chain_pem: bytes  # leaf, PCK CA, root
    cpu_svn: bytes
    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int

    def qe_report(self) -> bytes:
        binding = hashlib.sha256(raw_public_key(self.attestation_key) + QE_AUTH_DATA).digest()
        return sgx_report_body(cpu_svn=self.cpu_svn, misc_select=QE_MISCSELECT, attributes=QE_ATTRIBUTES,
                               mr_enclave=self.mr_enclave, mr_signer=self.mr_signer, isv_prod_id=self.isv_prod_id,
                               isv_svn=self.isv_svn, report_data=binding + bytes(32))

    def qe_certification(self) -> bytes:
        """QE report ‖ its PCK signature ‖ QE auth data ‖ certification data type 5 (the PEM chain)."""
        report = self.qe_report()
        return (report + sign_raw(self.pck_key, report) + _u16(len(QE_AUTH_DATA)) + QE_AUTH_DATA
                + _u16(CERT_PCK_CHAIN) + _u32(len(self.pck_chain_pem)) + self.pck_chain_pem)

    def sign(self, signed: bytes, version: int) -> bytes:
        """The full quote: ``signed`` (header ‖ body) ‖ u32 signature data length ‖ signature data."""
        sig = sign_raw(self.attestation_key, signed) + raw_public_key(self.attestation_key)
        qe = self.qe_certification()
        if version == 3:
            data = sig + qe
        else:
            data = sig + _u16(CERT_QE_REPORT) + _u32(len(qe)) + qe
        return signed + _u32(len(data)) + data


def sgx_quote(qe: QuotingEnclave, *, qe_id: bytes, pce_svn: int, body: bytes) -> bytes:
    return qe.sign(header(3, TEE_TYPE_SGX, qe.isv_svn, pce_svn, qe_id) + _fixed(body, SGX_REPORT_BODY_SIZE, "body"), 3)


def tdx_quote(qe: QuotingEnclave, *, qe_id: bytes, body: bytes) -> bytes:
    return qe.sign(header(4, TEE_TYPE_TDX, 0, 0, qe_id) + _fixed(body, TD_REPORT10_SIZE, "body"), 4)
