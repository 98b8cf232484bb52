"""The raw subject and extensions of a certificate, read from its TBSCertificate DER.

``cryptography`` builds Python objects for a whole Name or for every extension on first access; a cold
quote verification needs three raw facts from two certificates (the PCK leaf's subject and SGX
extension, its CA's basicConstraints), and building those objects costs more than the rest of the
chain handling together. The certificate itself has already been parsed (and its structure
validated) by ``cryptography``; callers fall back to its objects whenever this reader returns None.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormatError
from .der import TAG_BOOLEAN, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, encode_oid, read_header

BASIC_CONSTRAINTS = encode_oid("2.5.29.19")
_TAG_VERSION = 0xA0
_TAG_EXTENSIONS = 0xA3


@dataclass(frozen=True, slots=True)
class TbsFields:
    subject: bytes  # DER of the subject Name
    extensions: dict[bytes, tuple[bool, bytes]]  # raw OID -> (critical, extnValue contents)

    def basic_constraints_ca(self) -> bool | None:
        """The cA flag, False when the extension is absent; None if its value is not a plain SEQUENCE."""
        ext = self.extensions.get(BASIC_CONSTRAINTS)
        if ext is None:
            return False
        value = ext[1]
        if len(value) < 2 or value[0] != TAG_SEQUENCE or value[1] != len(value) - 2:
            return None
        if len(value) == 2 or value[2] != TAG_BOOLEAN:  # cA DEFAULT FALSE, maybe pathLenConstraint alone
            return False
        return len(value) >= 5 and value[3] == 1 and value[4] != 0


def read_tbs(tbs: bytes) -> TbsFields | None:
    """Subject and extensions of a TBSCertificate, or None if it is not laid out as RFC 5280 says."""
    try:
        return _read(tbs)
    except (FormatError, IndexError):
        return None


def _read(tbs: bytes) -> TbsFields | None:
    if not tbs or tbs[0] != TAG_SEQUENCE:
        return None
    pos, end = read_header(tbs, 0, len(tbs), "tbsCertificate")
    if end != len(tbs):
        return None
    if tbs[pos] == _TAG_VERSION:
        pos = read_header(tbs, pos, end, "version")[1]
    # serialNumber, signature, issuer, validity; then subject.
    for _ in range(4):
        pos = read_header(tbs, pos, end, "tbsCertificate")[1]
    if tbs[pos] != TAG_SEQUENCE:
        return None
    subject_end = read_header(tbs, pos, end, "subject")[1]
    subject = tbs[pos:subject_end]
    pos = read_header(tbs, subject_end, end, "subjectPublicKeyInfo")[1]
    extensions: dict[bytes, tuple[bool, bytes]] = {}
    while pos < end:
        tag = tbs[pos]
        start, stop = read_header(tbs, pos, end, "tbsCertificate")
        pos = stop
        if tag != _TAG_EXTENSIONS:
            continue  # issuerUniqueID / subjectUniqueID
        if tbs[start] != TAG_SEQUENCE:
            return None
        p, seq_end = read_header(tbs, start, stop, "extensions")
        while p < seq_end:
            # Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
            if tbs[p] != TAG_SEQUENCE:
                return None
            q, ext_end = read_header(tbs, p, seq_end, "extension")
            if tbs[q] != TAG_OID:
                return None
            oid_start, q = read_header(tbs, q, ext_end, "extnID")
            oid_end = q
            critical = False
            if tbs[q] == TAG_BOOLEAN:
                b_start, q = read_header(tbs, q, ext_end, "critical")
                critical = q - b_start == 1 and tbs[b_start] != 0
            if tbs[q] != TAG_OCTET_STRING:
                return None
            v_start, v_end = read_header(tbs, q, ext_end, "extnValue")
            if v_end != ext_end:
                return None
            oid = tbs[oid_start:oid_end]
            if oid in extensions:
                return None  # a duplicate extension: let cryptography reject it
            extensions[oid] = (critical, tbs[v_start:v_end])
            p = ext_end
    return TbsFields(subject, extensions)


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
