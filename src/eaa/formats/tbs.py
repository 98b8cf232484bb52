"""The raw subject and extensions of a certificate, read from its TBSCertificate DER.

``cryptography`` builds Python objects for a whole Name or for every extension on first access; a cold
quote verification needs three raw facts from two certificates (the PCK leaf's subject and SGX
extension, its CA's basicConstraints), and building those objects costs more than the rest of the
chain handling together. The certificate itself has already been parsed (and its structure
validated) by ``cryptography``; callers fall back to its objects whenever this reader returns None.
"""

from __future__ import annotations

from dataclasses import field

from ..errors import FormatError
from ..records import record
from .der import TAG_BOOLEAN, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, encode_oid, read_header

BASIC_CONSTRAINTS = encode_oid("2.5.29.19")
_TAG_VERSION = 0xA0
_TAG_EXTENSIONS = 0xA3


@record(slots=True)
class TbsFields:
    """A certificate's issuer, subject and extensions as raw DER, read from its TBSCertificate without building
    cryptography's objects."""

    issuer: bytes  # DER of the issuer Name
    subject: bytes  # DER of the subject Name
    extensions: dict[bytes, tuple[bool, bytes]]  # raw OID -> (critical, extnValue contents)
    signature: bytes = field(default=b"", compare=False)  # DER of the signed signature AlgorithmIdentifier

    def basic_constraints(self) -> tuple[bool, int | None] | None:
        """(cA, pathLenConstraint): (False, None) when the extension is absent; None when its value is
        not the plain DER ``SEQUENCE { BOOLEAN TRUE, INTEGER }`` shape (the caller asks cryptography)."""
        ext = self.extensions.get(BASIC_CONSTRAINTS)
        if ext is None:
            return False, None
        value = ext[1]
        if len(value) < 2 or value[0] != TAG_SEQUENCE or value[1] != len(value) - 2:
            return None
        if len(value) == 2:
            return False, None
        if value[2] != TAG_BOOLEAN:  # cA DEFAULT FALSE, pathLenConstraint alone: leave it to cryptography
            return None
        if len(value) < 5 or value[3] != 1 or value[4] != 0xFF:  # DER: an explicit cA is TRUE, encoded 0xFF
            return None
        if len(value) == 5:
            return True, None
        # pathLenConstraint INTEGER (0..MAX): one short, minimal, non-negative content byte is all CAs use.
        if len(value) != 8 or value[5] != TAG_INTEGER or value[6] != 1 or value[7] & 0x80:
            return None
        return True, value[7]


def read_tbs(tbs: bytes) -> TbsFields | None:
    """Subject and extensions of a TBSCertificate, or None if it is not laid out as RFC 5280 says."""
    try:
        return _read(tbs)
    except (FormatError, IndexError):
        return None


def _der_header(data: bytes, pos: int, end: int, context: str) -> tuple[int, int]:
    """:func:`read_header`, refusing a long-form length that DER would have written shorter."""
    length = data[pos + 1]
    if length < 0x80 and pos + 2 + length <= end:  # short form, most headers: no call, no further checks
        return pos + 2, pos + 2 + length
    start, stop = read_header(data, pos, end, context)
    if data[pos + 1] & 0x80 and (stop - start < 0x80 or data[pos + 2] == 0):
        raise FormatError("DER length not in its shortest form", field=context, offset=pos + 1)
    return start, stop


def _read(tbs: bytes) -> TbsFields | None:
    if not tbs or tbs[0] != TAG_SEQUENCE:
        return None
    pos, end = _der_header(tbs, 0, len(tbs), "tbsCertificate")
    if end != len(tbs):
        return None
    if tbs[pos] == _TAG_VERSION:
        pos = _der_header(tbs, pos, end, "version")[1]
    # serialNumber, signature; then issuer, validity and subject.
    alg_start = _der_header(tbs, pos, end, "serialNumber")[1]
    pos = _der_header(tbs, alg_start, end, "signature")[1]
    signature = tbs[alg_start:pos]
    if tbs[pos] != TAG_SEQUENCE:
        return None
    issuer_end = _der_header(tbs, pos, end, "issuer")[1]
    issuer = tbs[pos:issuer_end]
    pos = _der_header(tbs, issuer_end, end, "validity")[1]
    if tbs[pos] != TAG_SEQUENCE:
        return None
    subject_end = _der_header(tbs, pos, end, "subject")[1]
    subject = tbs[pos:subject_end]
    pos = _der_header(tbs, subject_end, end, "subjectPublicKeyInfo")[1]
    extensions: dict[bytes, tuple[bool, bytes]] = {}
    while pos < end:
        tag = tbs[pos]
        start, stop = _der_header(tbs, pos, end, "tbsCertificate")
        pos = stop
        if tag != _TAG_EXTENSIONS:
            continue  # issuerUniqueID / subjectUniqueID
        if tbs[start] != TAG_SEQUENCE:
            return None
        p, seq_end = _der_header(tbs, start, stop, "extensions")
        while p < seq_end:
            # Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
            if tbs[p] != TAG_SEQUENCE:
                return None
            q, ext_end = _der_header(tbs, p, seq_end, "extension")
            if tbs[q] != TAG_OID:
                return None
            oid_start, q = _der_header(tbs, q, ext_end, "extnID")
            oid_end = q
            critical = False
            if tbs[q] == TAG_BOOLEAN:
                b_start, q = _der_header(tbs, q, ext_end, "critical")
                if q - b_start != 1 or tbs[b_start] != 0xFF:
                    return None  # DER: critical DEFAULT FALSE is omitted when false, and TRUE is 0xFF
                critical = True
            if tbs[q] != TAG_OCTET_STRING:
                return None
            v_start, v_end = _der_header(tbs, q, ext_end, "extnValue")
            if v_end != ext_end:
                return None
            oid = tbs[oid_start:oid_end]
            if oid in extensions:
                return None  # a duplicate extension: let cryptography reject it
            extensions[oid] = (critical, tbs[v_start:v_end])
            p = ext_end
    return TbsFields(issuer, subject, extensions, signature)


def signature_algorithms(der: bytes) -> tuple[bytes, bytes]:
    """A certificate's (signatureAlgorithm after the signed part, signature field inside it), as DER.

    RFC 5280 4.1.1.2 requires the two to be identical: the outer one is not covered by the signature, so
    a verifier that looks only at the signed bytes would accept a changed copy.
    """
    if not der or der[0] != TAG_SEQUENCE:
        raise FormatError("certificate is not a DER SEQUENCE", field="certificate")
    start, end = read_header(der, 0, len(der), "certificate")
    if start >= end or der[start] != TAG_SEQUENCE:
        raise FormatError("certificate has no signed part", field="certificate")
    pos, tbs_end = read_header(der, start, end, "tbsCertificate")
    if tbs_end >= end or der[tbs_end] != TAG_SEQUENCE:
        raise FormatError("certificate has no signatureAlgorithm", field="certificate")
    outer = der[tbs_end:read_header(der, tbs_end, end, "signatureAlgorithm")[1]]
    if pos < tbs_end and der[pos] == _TAG_VERSION:
        pos = read_header(der, pos, tbs_end, "version")[1]
    pos = read_header(der, pos, tbs_end, "serialNumber")[1]
    if pos >= tbs_end or der[pos] != TAG_SEQUENCE:
        raise FormatError("certificate has no signature field in its signed part", field="certificate")
    return outer, der[pos:read_header(der, pos, tbs_end, "signature")[1]]
