"""A lenient reader for peer certificates.

``cryptography`` refuses certificates whose version INTEGER is 3 (what enclave-tls 0.6 and rats-tls
before 2023 write), so the fields Enclave-TLS needs are taken with a small DER walk: the TBS bytes,
the signature, names, validity, the SubjectPublicKeyInfo exactly as encoded, and the extensions. The
self-signature is then checked with the certificate's own key.
"""

from __future__ import annotations

from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from ..errors import FormatError
from ..formats.der import decode_int, decode_oid, encode_oid, read_header
from ..pki.chain import VerifyingEcdsa
from ..records import record
from .errors import CertificateExpired, CertificateNotYetValid, PeerCertificateError

# SubjectPublicKeyInfo { id-ecPublicKey, prime256v1 } and the BIT STRING header of a 65-byte point (RFC 5480)
_P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
_P256_SPKI_SIZE = len(_P256_SPKI_PREFIX) + 65

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

# ECDSA with each hash, built once: the objects are immutable and every DICE certificate is ECDSA-signed.
_ECDSA = {oid: VerifyingEcdsa(h()) for oid, (kind, h) in _SIG_ALGS.items() if kind == "ecdsa" and h is not None}

# Extensions whose meaning we know; any *other* extension marked critical makes the certificate unusable.
KNOWN_EXTENSIONS = {
    "2.5.29.14": "subjectKeyIdentifier",
    "2.5.29.15": "keyUsage",
    "2.5.29.17": "subjectAltName",
    "2.5.29.19": "basicConstraints",
    "2.5.29.35": "authorityKeyIdentifier",
    "2.5.29.37": "extKeyUsage",
}

# The OIDs a peer certificate usually holds (signature algorithms, the extensions above, the DICE and
# legacy evidence arcs), by their DER content bytes: a fixed table, so the common ones are looked up
# rather than decoded arc by arc; any other OID is decoded.
_OID_NAMES = {encode_oid(o): o for o in (
    *_SIG_ALGS, *KNOWN_EXTENSIONS, "2.23.133.5.4.9", "2.23.133.5.4.2",
    *(f"1.2.840.113741.1337.{n}" for n in (6, 8, 14, 20, 22, 24)),
)}


def _oid(raw: bytes, what: str) -> str:
    return _OID_NAMES.get(raw) or decode_oid(raw, what)


@record
class Extension:
    """One certificate extension as encoded: its OID, whether it is critical, and its extnValue contents."""

    oid: str
    critical: bool
    value: bytes  # the extnValue OCTET STRING contents


@record
class PeerCertificate:
    """A peer certificate as the lenient DER walk reads it, every field as encoded (version INTEGER 3 accepted)."""

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
            if len(self.spki) == _P256_SPKI_SIZE and self.spki.startswith(_P256_SPKI_PREFIX):
                # The one DER encoding of an uncompressed P-256 key, what attested certificates carry: the
                # point alone, which cryptography checks is on the curve. Loading any SPKI needs the
                # serialization package, which a client that only verifies otherwise never imports.
                return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.spki[len(_P256_SPKI_PREFIX):])
            from cryptography.hazmat.primitives.serialization import load_der_public_key

            return load_der_public_key(self.spki)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise PeerCertificateError(f"certificate public key cannot be loaded: {e}") from None

    def pkcs1_public_key(self) -> bytes:
        """DER RSAPublicKey (PKCS#1), what enclave-tls 0.6 hashes into the quote; RSA keys only."""
        key = self.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise PeerCertificateError("certificate key is not RSA")
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return key.public_bytes(Encoding.DER, PublicFormat.PKCS1)

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
                key.verify(self.signature, self.tbs, _ECDSA[self.signature_oid])
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


def _expect(data: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """(value start, value end) of the element at ``pos``, which must have ``tag`` and lie within ``end``."""
    if pos < end and data[pos] != tag:
        raise PeerCertificateError(f"certificate {what}: expected DER tag {tag:#04x}, found {data[pos]:#04x}")
    return read_header(data, pos, end, what)


def _parse_time(tag: int, value: bytes) -> datetime:
    """UTCTime ``YYMMDDHHMMSSZ`` or GeneralizedTime ``YYYYMMDDHHMMSSZ``, digits only, as RFC 5280 requires.

    Read by slicing rather than ``strptime``: this runs twice per peer certificate, and strptime's
    pattern machinery costs more than the rest of the certificate walk."""
    text = value.decode("ascii", "replace")
    try:
        if tag == TAG_UTC_TIME:
            if len(text) != 13 or not text.endswith("Z") or not text[:12].isdigit():
                raise ValueError(text)
            yy = int(text[0:2])
            year, rest = (2000 + yy if yy < 50 else 1900 + yy), text[2:12]  # RFC 5280: YY >= 50 means 19YY
        elif tag == TAG_GENERALIZED_TIME:
            if len(text) != 15 or not text.endswith("Z") or not text[:14].isdigit():
                raise ValueError(text)
            year, rest = int(text[0:4]), text[4:14]
        else:
            raise ValueError(f"tag {tag:#x}")
        return datetime(year, int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8]), int(rest[8:10]),
                        tzinfo=timezone.utc)
    except ValueError:
        raise PeerCertificateError(f"certificate validity time {text!r} is malformed") from None


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
    # Positions into ``der`` throughout: the certificate is read in place, and only the fields kept are
    # sliced (a DICE certificate with endorsements is some 15 kB, most of it in two extensions).
    c_start, c_end = _expect(der, 0, len(der), TAG_SEQUENCE, "Certificate")
    if c_end != len(der):
        raise PeerCertificateError("trailing bytes after the certificate")
    # TBSCertificate, kept as its full TLV because that is what is signed
    if c_start < c_end and der[c_start] != TAG_SEQUENCE:
        raise PeerCertificateError("certificate tbsCertificate is not a SEQUENCE")
    t_start, t_end = read_header(der, c_start, c_end, "tbsCertificate")
    tbs = der[c_start:t_end]
    a_start, a_end = _expect(der, t_end, c_end, TAG_SEQUENCE, "signatureAlgorithm")
    s_start, pos = _expect(der, a_end, c_end, TAG_BIT_STRING, "signatureValue")
    if pos != c_end:
        raise PeerCertificateError("unexpected fields after the certificate signature")
    if s_start == pos or der[s_start] != 0:
        raise PeerCertificateError("certificate signature BIT STRING has unused bits")
    signature = der[s_start + 1:pos]
    o_start, o_end = _expect(der, a_start, a_end, TAG_OID, "signatureAlgorithm")
    signature_oid = _oid(der[o_start:o_end], "signatureAlgorithm")

    p = t_start
    version = 0
    if p < t_end and der[p] == TAG_CTX0:
        v_start, v_end = read_header(der, p, t_end, "version")
        i_start, i_end = _expect(der, v_start, v_end, TAG_INTEGER, "version")
        if i_end != v_end:
            raise PeerCertificateError("certificate version has trailing bytes")
        version = decode_int(der[i_start:i_end], "version")
        if version not in (0, 1, 2, 3):
            raise PeerCertificateError(f"certificate version INTEGER {version} is not supported")
        p = v_end
    serial_start, p = _expect(der, p, t_end, TAG_INTEGER, "serialNumber")
    serial_v = der[serial_start:p]
    inner_start, p = _expect(der, p, t_end, TAG_SEQUENCE, "signature")
    io_start, io_end = _expect(der, inner_start, p, TAG_OID, "signature")
    if _oid(der[io_start:io_end], "signature") != signature_oid:
        raise PeerCertificateError("certificate signature algorithms disagree (TBS vs outer)")
    start = p
    _, p = _expect(der, p, t_end, TAG_SEQUENCE, "issuer")
    issuer = der[start:p]
    val_start, p = _expect(der, p, t_end, TAG_SEQUENCE, "validity")
    t1 = der[val_start] if val_start < p else 0
    nb_start, nb_end = read_header(der, val_start, p, "notBefore")
    t2 = der[nb_end] if nb_end < p else 0
    na_start, vp = read_header(der, nb_end, p, "notAfter")
    if vp != p:
        raise PeerCertificateError("certificate validity has trailing bytes")
    not_before, not_after = _parse_time(t1, der[nb_start:nb_end]), _parse_time(t2, der[na_start:vp])
    start = p
    _, p = _expect(der, p, t_end, TAG_SEQUENCE, "subject")
    subject = der[start:p]
    start = p
    _, p = _expect(der, p, t_end, TAG_SEQUENCE, "subjectPublicKeyInfo")
    spki = der[start:p]

    extensions: list[Extension] = []
    seen: set[str] = set()
    while p < t_end:
        t = der[p]
        x_start, p = read_header(der, p, t_end, "tbsCertificate")
        if t in (0x81, 0x82, 0xA1, 0xA2):  # issuer/subject unique IDs
            continue
        if t != TAG_CTX3:
            raise PeerCertificateError(f"unexpected field {t:#04x} in tbsCertificate")
        q, rest = _expect(der, x_start, p, TAG_SEQUENCE, "extensions")
        if rest != p:
            raise PeerCertificateError("certificate extensions have trailing bytes")
        while q < rest:
            e_start, q = _expect(der, q, rest, TAG_SEQUENCE, "extension")
            oid_start, r = _expect(der, e_start, q, TAG_OID, "extnID")
            oid = _oid(der[oid_start:r], "extnID")
            critical = False
            if r < q and der[r] == TAG_BOOLEAN:
                b_start, b_end = read_header(der, r, q, "extension")
                if b_end - b_start != 1:
                    raise PeerCertificateError("extension critical flag is not a BOOLEAN")
                critical = der[b_start] != 0
                r = b_end
            elif r >= q:
                read_header(der, r, q, "extension")  # raises: the extension ends after its OID
            v_start, r = _expect(der, r, q, TAG_OCTET_STRING, "extnValue")
            if r != q:
                raise PeerCertificateError(f"extension {oid} has trailing fields")
            if oid in seen:
                raise PeerCertificateError(f"certificate repeats extension {oid}")
            seen.add(oid)
            extensions.append(Extension(oid, critical, der[v_start:r]))
    return PeerCertificate(
        der=der, tbs=tbs, version=version, serial=decode_int(serial_v, "serialNumber"),
        signature_oid=signature_oid, signature=signature, issuer=issuer, subject=subject,
        not_before=not_before, not_after=not_after, spki=spki, extensions=tuple(extensions))
