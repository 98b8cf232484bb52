"""A lenient reader for peer certificates.

``cryptography`` refuses certificates whose version INTEGER is 3 (what enclave-tls 0.6 and rats-tls
before 2023 write), so the fields Enclave-TLS needs are taken with a small DER walk: the TBS bytes,
the signature, names, validity, the SubjectPublicKeyInfo exactly as encoded, and the extensions. The
self-signature is then checked with the certificate's own key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from ..errors import FormatError
from ..formats.der import decode_int, decode_oid, read_tlv
from .errors import CertificateExpired, CertificateNotYetValid, PeerCertificateError

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_UTC_TIME = 0x17
TAG_GENERALIZED_TIME = 0x18
TAG_SEQUENCE = 0x30
TAG_CTX0 = 0xA0
TAG_CTX3 = 0xA3

MAX_CERTIFICATE_SIZE = 1 << 20

_SIG_ALGS = {
    "1.2.840.10045.4.3.2": ("ecdsa", hashes.SHA256),
    "1.2.840.10045.4.3.3": ("ecdsa", hashes.SHA384),
    "1.2.840.10045.4.3.4": ("ecdsa", hashes.SHA512),
    "1.2.840.113549.1.1.11": ("rsa", hashes.SHA256),
    "1.2.840.113549.1.1.12": ("rsa", hashes.SHA384),
    "1.2.840.113549.1.1.13": ("rsa", hashes.SHA512),
    "1.3.101.112": ("ed25519", None),
    "1.3.101.113": ("ed448", None),
}

# Extensions whose meaning we know; any *other* extension marked critical makes the certificate unusable.
KNOWN_EXTENSIONS = {
    "2.5.29.14": "subjectKeyIdentifier",
    "2.5.29.15": "keyUsage",
    "2.5.29.17": "subjectAltName",
    "2.5.29.19": "basicConstraints",
    "2.5.29.35": "authorityKeyIdentifier",
    "2.5.29.37": "extKeyUsage",
}


@dataclass(frozen=True)
class Extension:
    oid: str
    critical: bool
    value: bytes  # the extnValue OCTET STRING contents


@dataclass(frozen=True)
class PeerCertificate:
    der: bytes
    tbs: bytes
    version: int  # the raw INTEGER: 2 for X.509 v3, 3 for the enclave-tls quirk
    serial: int
    signature_oid: str
    signature: bytes
    issuer: bytes  # DER of the Name
    subject: bytes
    not_before: datetime
    not_after: datetime
    spki: bytes  # DER SubjectPublicKeyInfo, exactly as in the certificate
    extensions: tuple[Extension, ...]

    def extension(self, oid: str) -> Extension | None:
        for e in self.extensions:
            if e.oid == oid:
                return e
        return None

    def public_key(self):  # noqa: ANN201 - a cryptography public key
        try:
            return serialization.load_der_public_key(self.spki)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise PeerCertificateError(f"certificate public key cannot be loaded: {e}") from None

    def pkcs1_public_key(self) -> bytes:
        """DER RSAPublicKey (PKCS#1), what enclave-tls 0.6 hashes into the quote; RSA keys only."""
        key = self.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise PeerCertificateError("certificate key is not RSA")
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)

    def check_self_signed(self) -> None:
        """Issuer equals subject and the signature verifies with the certificate's own key."""
        if self.issuer != self.subject:
            raise PeerCertificateError("peer certificate is not self-signed (issuer differs from subject)")
        alg = _SIG_ALGS.get(self.signature_oid)
        if alg is None:
            raise PeerCertificateError(f"unsupported certificate signature algorithm {self.signature_oid}")
        kind, hash_cls = alg
        key = self.public_key()
        try:
            if kind == "ecdsa" and hash_cls is not None and isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(self.signature, self.tbs, ec.ECDSA(hash_cls()))
            elif kind == "rsa" and hash_cls is not None and isinstance(key, rsa.RSAPublicKey):
                key.verify(self.signature, self.tbs, padding.PKCS1v15(), hash_cls())
            elif kind == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(self.signature, self.tbs)
            elif kind == "ed448" and isinstance(key, ed448.Ed448PublicKey):
                key.verify(self.signature, self.tbs)
            else:
                raise PeerCertificateError(f"signature algorithm {self.signature_oid} does not fit the key type")
        except _CryptoInvalidSignature:
            raise PeerCertificateError("peer certificate self-signature is invalid") from None

    def check_validity(self, at: datetime) -> None:
        if at < self.not_before:
            raise CertificateNotYetValid(
                f"peer certificate is not valid before {self.not_before:%Y-%m-%dT%H:%M:%SZ} "
                f"(verification time {at:%Y-%m-%dT%H:%M:%SZ})")
        if at > self.not_after:
            raise CertificateExpired(
                f"peer certificate expired at {self.not_after:%Y-%m-%dT%H:%M:%SZ} "
                f"(verification time {at:%Y-%m-%dT%H:%M:%SZ})")

    def check_critical_extensions(self, understood: set[str]) -> None:
        for e in self.extensions:
            if e.critical and e.oid not in KNOWN_EXTENSIONS and e.oid not in understood:
                raise PeerCertificateError(f"peer certificate has an unknown critical extension {e.oid}")


def _expect(data: bytes, pos: int, tag: int, what: str) -> tuple[bytes, int]:
    t, value, nxt = read_tlv(data, pos, what)
    if t != tag:
        raise PeerCertificateError(f"certificate {what}: expected DER tag {tag:#04x}, found {t:#04x}")
    return value, nxt


def _parse_time(tag: int, value: bytes) -> datetime:
    text = value.decode("ascii", "replace")
    try:
        if tag == TAG_UTC_TIME:
            if len(text) != 13 or not text.endswith("Z"):
                raise ValueError(text)
            dt = datetime.strptime(text, "%y%m%d%H%M%SZ")
            # RFC 5280: YY >= 50 means 19YY
            if dt.year >= 2050:
                dt = dt.replace(year=dt.year - 100)
        elif tag == TAG_GENERALIZED_TIME:
            if len(text) != 15 or not text.endswith("Z"):
                raise ValueError(text)
            dt = datetime.strptime(text, "%Y%m%d%H%M%SZ")
        else:
            raise ValueError(f"tag {tag:#x}")
    except ValueError:
        raise PeerCertificateError(f"certificate validity time {text!r} is malformed") from None
    return dt.replace(tzinfo=timezone.utc)


def parse_certificate(der: bytes) -> PeerCertificate:
    """Read the fields Enclave-TLS needs from a DER certificate (X.509 version INTEGER 0, 2 or 3)."""
    der = bytes(der)
    if len(der) > MAX_CERTIFICATE_SIZE:
        raise PeerCertificateError(f"certificate of {len(der)} bytes is too large")
    try:
        return _parse(der)
    except FormatError as e:
        raise PeerCertificateError(f"peer certificate is not valid DER: {e}") from None


def _parse(der: bytes) -> PeerCertificate:
    cert, end = _expect(der, 0, TAG_SEQUENCE, "Certificate")
    if end != len(der):
        raise PeerCertificateError("trailing bytes after the certificate")
    # TBSCertificate, kept as its full TLV because that is what is signed
    t, tbs_value, pos = read_tlv(cert, 0, "tbsCertificate")
    if t != TAG_SEQUENCE:
        raise PeerCertificateError("certificate tbsCertificate is not a SEQUENCE")
    tbs = cert[:pos]
    sigalg, pos = _expect(cert, pos, TAG_SEQUENCE, "signatureAlgorithm")
    sig_bits, pos = _expect(cert, pos, TAG_BIT_STRING, "signatureValue")
    if pos != len(cert):
        raise PeerCertificateError("unexpected fields after the certificate signature")
    if not sig_bits or sig_bits[0] != 0:
        raise PeerCertificateError("certificate signature BIT STRING has unused bits")
    sig_oid_value, _ = _expect(sigalg, 0, TAG_OID, "signatureAlgorithm")
    signature_oid = decode_oid(sig_oid_value, "signatureAlgorithm")

    p = 0
    version = 0
    t, value, nxt = read_tlv(tbs_value, p, "version")
    if t == TAG_CTX0:
        v, rest = _expect(value, 0, TAG_INTEGER, "version")
        if rest != len(value):
            raise PeerCertificateError("certificate version has trailing bytes")
        version = decode_int(v, "version")
        if version not in (0, 1, 2, 3):
            raise PeerCertificateError(f"certificate version INTEGER {version} is not supported")
        p = nxt
    serial_v, p = _expect(tbs_value, p, TAG_INTEGER, "serialNumber")
    inner_sigalg, p = _expect(tbs_value, p, TAG_SEQUENCE, "signature")
    inner_oid, _ = _expect(inner_sigalg, 0, TAG_OID, "signature")
    if decode_oid(inner_oid, "signature") != signature_oid:
        raise PeerCertificateError("certificate signature algorithms disagree (TBS vs outer)")
    start = p
    _, p = _expect(tbs_value, p, TAG_SEQUENCE, "issuer")
    issuer = tbs_value[start:p]
    validity, p = _expect(tbs_value, p, TAG_SEQUENCE, "validity")
    t1, nb, vp = read_tlv(validity, 0, "notBefore")
    t2, na, vp = read_tlv(validity, vp, "notAfter")
    if vp != len(validity):
        raise PeerCertificateError("certificate validity has trailing bytes")
    start = p
    _, p = _expect(tbs_value, p, TAG_SEQUENCE, "subject")
    subject = tbs_value[start:p]
    start = p
    _, p = _expect(tbs_value, p, TAG_SEQUENCE, "subjectPublicKeyInfo")
    spki = tbs_value[start:p]

    extensions: list[Extension] = []
    seen: set[str] = set()
    while p < len(tbs_value):
        t, value, p = read_tlv(tbs_value, p, "tbsCertificate")
        if t in (0x81, 0x82, 0xA1, 0xA2):  # issuer/subject unique IDs
            continue
        if t != TAG_CTX3:
            raise PeerCertificateError(f"unexpected field {t:#04x} in tbsCertificate")
        exts, rest = _expect(value, 0, TAG_SEQUENCE, "extensions")
        if rest != len(value):
            raise PeerCertificateError("certificate extensions have trailing bytes")
        q = 0
        while q < len(exts):
            ext, q = _expect(exts, q, TAG_SEQUENCE, "extension")
            oid_v, r = _expect(ext, 0, TAG_OID, "extnID")
            oid = decode_oid(oid_v, "extnID")
            critical = False
            t, v, r2 = read_tlv(ext, r, "extension")
            if t == TAG_BOOLEAN:
                if len(v) != 1:
                    raise PeerCertificateError("extension critical flag is not a BOOLEAN")
                critical = v != b"\x00"
                r = r2
            octets, r = _expect(ext, r, TAG_OCTET_STRING, "extnValue")
            if r != len(ext):
                raise PeerCertificateError(f"extension {oid} has trailing fields")
            if oid in seen:
                raise PeerCertificateError(f"certificate repeats extension {oid}")
            seen.add(oid)
            extensions.append(Extension(oid, critical, octets))
    return PeerCertificate(
        der=der, tbs=tbs, version=version, serial=decode_int(serial_v, "serialNumber"),
        signature_oid=signature_oid, signature=sig_bits[1:], issuer=issuer, subject=subject,
        not_before=_parse_time(t1, nb), not_after=_parse_time(t2, na), spki=spki, extensions=tuple(extensions))
