"""Intel DCAP ECDSA quotes: SGX v3, TDX v4 and v5 (body types 1-4).

Layouts follow DCAP ``sgx_quote_3.h``/``_4.h``/``_5.h`` (shared/docs/dcap-reference.md §1). The parser
is strict about everything it reads and lenient only about trailing bytes after the signature data,
which real quote buffers carry as padding.
"""

from __future__ import annotations

import binascii
import struct
from typing import TYPE_CHECKING

from ..errors import FormatError
from ..records import record
from .pem import pem_blocks
from .reader import Reader
from .report_body import (
    SGX_REPORT_BODY_SIZE,
    TD_REPORT10_SIZE,
    TD_REPORT15_SIZE,
    TD_REPORT15EX_SIZE,
    SgxReportBody,
)

if TYPE_CHECKING:
    from .td_report import TdReportBody

HEADER_SIZE = 48
_HEADER = struct.Struct("<HHIHH16s20s")  # version, att_key_type, tee_type, qe_svn, pce_svn, qe_vendor_id, user_data
ATT_KEY_TYPE_ECDSA_P256 = 2
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

CERT_PPID_CLEARTEXT = 1
CERT_PPID_RSA2048 = 2
CERT_PPID_RSA3072 = 3
CERT_PCK_CLEARTEXT = 4
CERT_PCK_CHAIN = 5
CERT_QE_REPORT = 6

BODY_SGX = 1
BODY_TD10 = 2
BODY_TD15 = 3
BODY_TD15EX = 4
BODY_SIZES = {BODY_SGX: SGX_REPORT_BODY_SIZE, BODY_TD10: TD_REPORT10_SIZE, BODY_TD15: TD_REPORT15_SIZE,
              BODY_TD15EX: TD_REPORT15EX_SIZE}

# Upper bound on a quote we are willing to parse; real quotes are < 16 KiB with a PEM chain.
MAX_QUOTE_SIZE = 1 << 20
_PPID_SIZES = {CERT_PPID_CLEARTEXT: 16, CERT_PPID_RSA2048: 256, CERT_PPID_RSA3072: 384}


@record(slots=True)
class QuoteHeader:
    """The 48-byte header of a DCAP quote (sgx_quote_3.h ``sgx_quote_header_t``), and its exact bytes."""

    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes
    raw: bytes

    @classmethod
    def parse(cls, r: Reader) -> QuoteHeader:
        if r.remaining() < HEADER_SIZE:  # field by field, to name the one that is cut short
            r.u16("version"), r.u16("att_key_type"), r.u32("tee_type"), r.u16("qe_svn"), r.u16("pce_svn")
            r.take(16, "qe_vendor_id"), r.take(20, "user_data")
        raw = r.take(HEADER_SIZE, "header")
        version, att_key_type, tee_type, qe_svn, pce_svn, qe_vendor_id, user_data = _HEADER.unpack(raw)
        return cls(version, att_key_type, tee_type, qe_svn, pce_svn, qe_vendor_id, user_data, raw)


@record(slots=True)
class PpidInfo:
    """Certification data types 1-3: what PCCS ``/pckcert`` needs to find the PCK certificate."""

    ppid: bytes
    cpu_svn: bytes
    pce_svn: int
    pce_id: bytes | None  # Intel's synthetic QVL sample omits it


@record(slots=True)
class CertificationData:
    """Certification data as a quote carries it (``sgx_ql_certification_data_t``): its type, 1-6, and its bytes,
    decoded on demand."""

    cert_type: int
    data: bytes

    @property
    def pem_chain(self) -> list[bytes]:
        """The PEM certificates of a type-5 chain, leaf first (NUL padding and blanks ignored)."""
        if self.cert_type != CERT_PCK_CHAIN:
            return []
        return pem_blocks(self.data)

    @property
    def ppid_info(self) -> PpidInfo | None:
        size = _PPID_SIZES.get(self.cert_type)
        if size is None:
            return None
        r = Reader(self.data, context="certification_data")
        ppid = r.take(size, "ppid")
        cpu_svn = r.take(16, "cpu_svn")
        pce_svn = r.u16("pce_svn")
        pce_id = r.take(2, "pce_id") if r.remaining() >= 2 else None
        return PpidInfo(ppid, cpu_svn, pce_svn, pce_id)

    @classmethod
    def parse(cls, r: Reader) -> CertificationData:
        cert_type = r.u16("cert_key_type")
        size = r.u32("cert_data_size")
        data = r.take(size, "cert_data")
        if not 1 <= cert_type <= 6:
            raise FormatError(f"unknown certification data type {cert_type}", field="cert_key_type",
                              offset=r.pos - size - 6)
        if cert_type in _PPID_SIZES and size < _PPID_SIZES[cert_type] + 18:
            raise FormatError(f"certification data type {cert_type} too short ({size} bytes)", field="cert_data",
                              offset=r.pos - size)
        return cls(cert_type, data)


@record(slots=True)
class QeReportCertificationData:
    """The QE report, its PCK signature, QE auth data and the nested certification data."""

    qe_report: SgxReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    certification_data: CertificationData

    @classmethod
    def parse(cls, r: Reader) -> QeReportCertificationData:
        report_raw = r.take(SGX_REPORT_BODY_SIZE, "qe_report")
        qe_report = SgxReportBody.parse(report_raw, context="qe_report")
        signature = r.take(64, "qe_report_signature")
        auth_size = r.u16("qe_auth_data_size")
        auth = r.take(auth_size, "qe_auth_data")
        cert = CertificationData.parse(r)
        return cls(qe_report, signature, auth, cert)


@record(slots=True)
class SignatureData:
    """A quote's ECDSA signature data: the attestation key's signature over header and body, and what certifies it."""

    signature: bytes  # r || s over header+body, by the attestation key
    attestation_key: bytes  # x || y
    qe: QeReportCertificationData


@record(slots=True)
class Quote:
    """A parsed SGX or TDX quote and its exact bytes; the attestation key signed the first ``signed_length``."""

    header: QuoteHeader
    body_type: int
    body: SgxReportBody | TdReportBody
    signature_data: SignatureData
    signed_length: int
    trailing: int
    raw: bytes

    @property
    def signed_data(self) -> bytes:
        return self.raw[: self.signed_length]

    @property
    def is_tdx(self) -> bool:
        return self.header.tee_type == TEE_TYPE_TDX

    @property
    def tee(self) -> str:
        return "tdx" if self.is_tdx else "sgx"

    @property
    def report_data(self) -> bytes:
        return self.body.report_data

    @property
    def certification_data(self) -> CertificationData:
        return self.signature_data.qe.certification_data


def _parse_body(r: Reader, body_type: int) -> SgxReportBody | TdReportBody:
    size = BODY_SIZES[body_type]
    start = r.pos
    raw = r.take(size, "body")
    try:
        if body_type == BODY_SGX:
            return SgxReportBody.parse(raw)
        from .td_report import TdReportBody  # only TDX quotes need it (see eaa.formats.td_report)

        return TdReportBody.parse(raw, body_type)
    except FormatError as e:  # re-anchor offsets to the quote
        raise FormatError(str(e), field=e.field, offset=start + (e.offset or 0)) from None


def parse_quote(data: bytes) -> Quote:
    """Parse an SGX/TDX ECDSA quote; raise :class:`FormatError` naming the field and offset on any defect."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError("quote must be bytes")
    data = bytes(data)
    if len(data) > MAX_QUOTE_SIZE:
        raise FormatError(f"quote of {len(data)} bytes exceeds the {MAX_QUOTE_SIZE}-byte limit")
    r = Reader(data)
    header = QuoteHeader.parse(r)
    if header.version not in (3, 4, 5):
        raise FormatError(f"unsupported quote version {header.version}", field="version", offset=0)
    if header.att_key_type != ATT_KEY_TYPE_ECDSA_P256:
        raise FormatError(f"unsupported attestation key type {header.att_key_type}", field="att_key_type", offset=2)
    if header.version == 3:
        tee_type = TEE_TYPE_SGX
        if header.tee_type != 0:
            raise FormatError("v3 quote reserved field must be zero", field="att_key_data_0", offset=4)
    elif header.tee_type not in (TEE_TYPE_SGX, TEE_TYPE_TDX):
        raise FormatError(f"unknown TEE type {header.tee_type:#x}", field="tee_type", offset=4)
    else:
        tee_type = header.tee_type
    if header.version == 5:
        body_type = r.u16("body_type")
        body_size = r.u32("body_size")
        if body_type not in BODY_SIZES:
            raise FormatError(f"unknown quote body type {body_type}", field="body_type", offset=48)
        if body_size != BODY_SIZES[body_type]:
            raise FormatError(f"body size {body_size} does not match body type {body_type}", field="body_size",
                              offset=50)
    else:
        body_type = BODY_SGX if tee_type == TEE_TYPE_SGX else BODY_TD10
    if (body_type == BODY_SGX) != (tee_type == TEE_TYPE_SGX):
        raise FormatError(f"body type {body_type} does not match TEE type {tee_type:#x}", field="body_type",
                          offset=48)
    body = _parse_body(r, body_type)
    signed_length = r.pos
    sig_len = r.u32("signature_data_len")
    sig_start = r.pos
    sig_end = sig_start + sig_len
    if sig_end > len(data):
        raise FormatError(f"signature data length {sig_len} exceeds the quote", field="signature_data_len",
                          offset=sig_start - 4)
    s = Reader(data, sig_start, sig_end, context="signature_data")
    signature = s.take(64, "signature")
    attestation_key = s.take(64, "attestation_key")
    if header.version == 3:
        qe = QeReportCertificationData.parse(s)
    else:
        outer_type = s.u16("cert_key_type")
        outer_size = s.u32("cert_data_size")
        if outer_type != CERT_QE_REPORT:
            raise FormatError(f"v{header.version} quote needs certification data type 6, got {outer_type}",
                              field="signature_data.cert_key_type", offset=s.pos - 6)
        inner = Reader(data, s.pos, s.pos + outer_size, context="qe_report_certification_data")
        if inner.end > sig_end:
            raise FormatError("QE report certification data overruns the signature data",
                              field="signature_data.cert_data_size", offset=s.pos - 4)
        qe = QeReportCertificationData.parse(inner)
        if inner.remaining():
            raise FormatError(f"{inner.remaining()} unexpected bytes after QE certification data",
                              field="qe_report_certification_data", offset=inner.pos)
        s.pos = inner.end
    if s.remaining():
        raise FormatError(f"{s.remaining()} unexpected bytes inside signature data", field="signature_data",
                          offset=s.pos)
    return Quote(header, body_type, body, SignatureData(signature, attestation_key, qe), signed_length,
                 len(data) - sig_end, data)


def decode_quote_text(data: bytes) -> bytes:
    """Accept a quote file as raw bytes or as hex text (optionally ``0x``-prefixed), as the vectors ship them."""
    stripped = data.strip()
    if stripped[:2].lower() == b"0x":
        stripped = stripped[2:]
    if stripped and len(stripped) % 2 == 0 and all(c in b"0123456789abcdefABCDEF" for c in stripped[:4096]):
        try:
            return binascii.unhexlify(stripped)
        except binascii.Error:
            pass
    return data
