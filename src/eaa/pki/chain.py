"""Certificate chains, CRLs and raw ECDSA signatures, split into a time-free part that can be cached
and a per-call time check.

The split matters for speed and for correctness: signature checks depend only on bytes, so their
outcome can be cached under the exact bytes, while validity windows depend on the verification time
and are re-checked on every call.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, ParamSpec, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..errors import CertificateChainError, CrlError, EaaError, FormatError, InvalidSignature, UntrustedRoot
from ..formats.der import read_header
from ..formats.pem import pem_bodies
from ..formats.tbs import TbsFields, read_tbs, signature_algorithms
from ..formats.x509_errors import NAME_ERRORS, PARSE_ERRORS, READ_ERRORS
from .trust import TrustAnchor, basic_constraints, der_of

P = ParamSpec("P")
R = TypeVar("R")
_P256 = ec.SECP256R1()


class VerifyingEcdsa(ec.ECDSA):
    """``ec.ECDSA`` for verifying: the hash, and no deterministic signing.

    cryptography's own constructor imports its whole OpenSSL backend, ciphers included, only to check
    that deterministic signing is available, which verification never asks for: several milliseconds of
    every one-shot command's start. Verification reads the public ``algorithm`` property (cryptography's
    Rust code does too), so this is an ECDSA to every caller.
    """

    def __init__(self, algorithm: hashes.HashAlgorithm) -> None:  # no super().__init__(): see above
        self._verifying_hash = algorithm

    @property
    def algorithm(self) -> hashes.HashAlgorithm:
        return self._verifying_hash

    @property
    def deterministic_signing(self) -> bool:
        return False


_ECDSA_SHA256 = VerifyingEcdsa(hashes.SHA256())
# What makes an anchor not the issuer of a chain's last certificate.
_NOT_THIS_ANCHOR: tuple[type[Exception], ...] = (*READ_ERRORS, _CryptoInvalidSignature, FormatError)
# ECDSA signature algorithms by OID, so a link check needs no hash object built per certificate.
_ECDSA_BY_OID = {
    x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256: _ECDSA_SHA256,
    x509.SignatureAlgorithmOID.ECDSA_WITH_SHA384: VerifyingEcdsa(hashes.SHA384()),
    x509.SignatureAlgorithmOID.ECDSA_WITH_SHA512: VerifyingEcdsa(hashes.SHA512()),
}
# The same by the AlgorithmIdentifier's exact DER (no parameters, as RFC 5758 requires), which a link
# check has already sliced from the certificate; anything else is looked up by cryptography's OID.
_ECDSA_BY_DER = {
    b"\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03" + bytes([n]): alg
    for n, alg in ((2, _ECDSA_SHA256), (3, _ECDSA_BY_OID[x509.SignatureAlgorithmOID.ECDSA_WITH_SHA384]),
                   (4, _ECDSA_BY_OID[x509.SignatureAlgorithmOID.ECDSA_WITH_SHA512]))
}


class ChainMemo:
    """One verification's scratch space.

    Every certificate is parsed once (keyed by its DER, so a CA repeated in several chains is one
    object), its public key is loaded once, and each issuer-to-certificate link is verified once. The
    memo holds every object it has an ``id`` of, so the ids stay valid for its lifetime.
    """

    __slots__ = ("by_pem", "by_der", "der", "tbs", "keys", "links", "cas", "chains", "tbs_fields", "windows")

    def __init__(self) -> None:
        self.by_pem: dict[bytes, x509.Certificate] = {}
        self.by_der: dict[bytes, x509.Certificate] = {}
        self.der: dict[int, bytes] = {}
        self.tbs: dict[int, bytes] = {}
        self.keys: dict[int, Any] = {}
        self.links: set[tuple[int, int]] = set()
        self.cas: dict[int, tuple[bool, int | None]] = {}
        self.chains: dict[Any, Any] = {}  # the DCAP verifier's checked role chains
        self.tbs_fields: dict[int, TbsFields | None] = {}
        self.windows: dict[int, Window] = {}

    def certificate_pem(self, body: bytes, what: str) -> x509.Certificate:
        """The certificate whose PEM base64 text is ``body``."""
        cert = self.by_pem.get(body)
        if cert is None:
            try:
                der = binascii.a2b_base64(body)
            except binascii.Error as e:
                raise FormatError(f"{what}: bad PEM certificate ({e})", field=what) from None
            cert = self.by_pem[body] = self.certificate(der, what)
        return cert

    def certificate(self, der: bytes, what: str) -> x509.Certificate:
        cert = self.by_der.get(der)
        if cert is None:
            try:
                cert = x509.load_der_x509_certificate(der)
            except PARSE_ERRORS as e:
                raise FormatError(f"{what}: bad certificate ({e})", field=what) from None
            self.by_der[der] = cert
            self.der[id(cert)] = der
        return cert

    def public_key(self, cert: x509.Certificate) -> Any:
        key = self.keys.get(id(cert))
        if key is None:
            key = self.keys[id(cert)] = public_key_of(cert)
        return key

    def signed_bytes(self, cert: x509.Certificate) -> bytes:
        """The exact signed TBSCertificate bytes: sliced from the DER we parsed when we have it."""
        tbs = self.tbs.get(id(cert))
        if tbs is None:
            der = self.der.get(id(cert))
            tbs = self.tbs[id(cert)] = tbs_of(der) if der is not None else cert.tbs_certificate_bytes
        return tbs

    def fields(self, cert: x509.Certificate) -> TbsFields | None:
        """Raw subject and extensions, when the certificate came from DER this memo parsed."""
        key = id(cert)
        if key not in self.tbs_fields:
            self.tbs_fields[key] = read_tbs(self.signed_bytes(cert)) if key in self.der else None
        return self.tbs_fields[key]

    def signature_algorithms(self, cert: x509.Certificate) -> tuple[bytes, bytes]:
        """(outer signatureAlgorithm, signed signature field) as DER: the outer one sliced from the DER this
        memo holds right after the TBS it already found, the inner one from its TBS fields; else read anew."""
        der = self.der.get(id(cert))
        fields = self.fields(cert) if der is not None else None
        if der is None or fields is None or not fields.signature:
            return signature_algorithms(der if der is not None else der_of(cert))
        outer_start = (2 + (der[1] & 0x7F if der[1] & 0x80 else 0)) + len(self.signed_bytes(cert))
        return der[outer_start:read_header(der, outer_start, len(der), "signatureAlgorithm")[1]], fields.signature

    def window(self, cert: x509.Certificate) -> Window:
        w = self.windows.get(id(cert))
        if w is None:
            w = self.windows[id(cert)] = (cert, cert.not_valid_before_utc, cert.not_valid_after_utc)
        return w

    def constraints(self, cert: x509.Certificate) -> tuple[bool, int | None]:
        """(cA, pathLenConstraint), read from the DER this memo holds, else by cryptography."""
        bc = self.cas.get(id(cert))
        if bc is None:
            fields = self.fields(cert)
            raw = fields.basic_constraints() if fields is not None else None
            bc = self.cas[id(cert)] = basic_constraints(cert) if raw is None else raw
        return bc

    def is_ca(self, cert: x509.Certificate) -> bool:
        return self.constraints(cert)[0]


def typed_certificate_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Report a certificate that cryptography cannot read as a :class:`FormatError`.

    cryptography parses names, keys and extensions on first use, so a malformed certificate surfaces
    as a ValueError (or InvalidVersion, UnsupportedAlgorithm) deep inside whatever touched it first; a
    verifier's callers must see a typed error instead, whichever check that was.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except EaaError:
            raise
        except READ_ERRORS as e:  # a name compared or printed fails with TypeError
            raise FormatError(f"a certificate or CRL cannot be read ({e})", field="certificate") from None

    return wrapper


def check_signature_algorithm(cert: x509.Certificate, what: str, der: bytes | None = None, *,
                              check: str | None = None) -> None:
    """RFC 5280 4.1.1.2: a certificate's unsigned signatureAlgorithm must repeat the signed one exactly
    (cryptography checks this for CRLs when loading them, not for certificates). ``der``: the
    certificate's bytes when the caller already has them. The name is only built for the message."""
    outer, inner = signature_algorithms(der if der is not None else der_of(cert))
    _same_signature_algorithms(cert, what, outer, inner, check)


def _same_signature_algorithms(cert: x509.Certificate, what: str, outer: bytes, inner: bytes,
                               check: str | None) -> None:
    if outer != inner:
        raise CertificateChainError(f"{what}: the signature algorithm of {describe(cert)} differs from the one "
                                    "inside its signed part", check=check)


def describe(cert: x509.Certificate) -> str:
    """A certificate's subject for a message; cryptography parses names lazily, and an error message must
    not itself fail on a malformed one."""
    return describe_name(lambda: cert.subject, cert)


def describe_name(name: Any, cert: x509.Certificate | None = None) -> str:
    try:
        return str(name().rfc4514_string())
    except NAME_ERRORS:
        return f"a certificate with a malformed name (serial {cert.serial_number:#x})" if cert is not None \
            else "a malformed name"


def public_key_of(cert: x509.Certificate) -> Any:
    try:
        return cert.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:  # parsed on first use: malformed or unsupported
        raise FormatError(f"{describe(cert)} has a malformed public key ({e})", field="certificate") from None


def tbs_of(der: bytes) -> bytes:
    """The first element of a signed DER structure (the to-be-signed part of a certificate or CRL)."""
    if len(der) < 4 or der[0] != 0x30:
        raise FormatError("signed structure is not one DER SEQUENCE", field="der")
    header, end = read_header(der, 0, len(der), "der")
    if end != len(der) or der[header] != 0x30:
        raise FormatError("signed structure is not one DER SEQUENCE", field="der")
    return der[header:read_header(der, header, end, "tbs")[1]]


def load_pem_chain(text: str | bytes, what: str, memo: ChainMemo | None = None) -> tuple[x509.Certificate, ...]:
    """The certificates of a PEM chain, leaf first.

    With ``memo`` a certificate appearing in several chains is decoded and parsed once and is the same
    object everywhere, so links between objects are verified only once.
    """
    data = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    bodies = pem_bodies(data)
    if not bodies:
        raise CertificateChainError(f"{what}: no PEM certificate found")
    memo = memo if memo is not None else ChainMemo()
    return tuple(memo.certificate_pem(body, what) for body in bodies)


def public_key_from_raw(xy: bytes, what: str, *, check: str | None = None) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_P256, b"\x04" + xy)
    except ValueError:
        raise InvalidSignature(f"{what} is not a valid P-256 point", check=check) from None


def verify_raw_signature(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, what: str, *,
                         check: str | None = None) -> None:
    """ECDSA-P256-SHA256 with a raw r||s signature, as quotes and Intel's JSON collateral carry them."""
    if len(signature) != 64:
        raise InvalidSignature(f"{what}: signature must be 64 bytes", check=check)
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
    except _CryptoInvalidSignature:
        raise InvalidSignature(f"{what}: signature does not verify", check=check) from None
    except (ValueError, TypeError):
        raise InvalidSignature(f"{what}: malformed signature", check=check) from None


# (what: a certificate or a name, not valid before, not valid after)
Window = tuple[x509.Certificate | str, datetime, datetime]


# A NamedTuple, not a dataclass: an internal record, and defining a frozen dataclass costs a one-shot
# command's start several times more.
class CheckedChain(NamedTuple):
    """A chain whose signatures were verified up to ``anchor``; times still to be checked per call."""

    certs: tuple[x509.Certificate, ...]  # leaf first, anchor excluded
    anchor: TrustAnchor
    windows: tuple[Window, ...]  # (certificate, not_before, not_after) incl. anchor
    with_root: bool = True  # the chain as given ended with (a copy of) the root

    @property
    def leaf(self) -> x509.Certificate:
        return self.certs[0] if self.certs else self.anchor.certificate


def _find_anchor(last: x509.Certificate, anchors: Sequence[TrustAnchor],
                 memo: ChainMemo) -> tuple[TrustAnchor | None, bool]:
    """(anchor, whether ``last`` is a copy of it). A chain usually ends with a copy of the root, matched by
    its exact bytes; a re-issued root (same key, other bytes) is a certificate issued by the anchor."""
    der = memo.der.get(id(last))
    for a in anchors:
        if (der == a.der) if der is not None else (last == a.certificate):
            return a, True
    for a in anchors:
        try:
            if last.issuer != a.certificate.subject:
                continue
            last.verify_directly_issued_by(a.certificate)
            reissued_root = last.subject == last.issuer and memo.public_key(last) == a.public_key
        except _NOT_THIS_ANCHOR:
            continue  # a name or key cryptography cannot read is not this anchor's
        return a, reissued_root
    return None, False


def check_chain_signatures(
    certs: Sequence[x509.Certificate], anchors: Sequence[TrustAnchor], what: str,
    memo: ChainMemo | None = None, *, check: str | None = None,
) -> CheckedChain:
    """Verify each link up to a trusted anchor; ``check`` is the identifier its errors carry.

    Only keys and CA flags are checked here; which certificate may hold which place is the business of
    :mod:`eaa.pki.roles`. ``memo`` must be the one :func:`load_pem_chain` filled (it keeps one object
    per certificate); links already verified in it are not verified again.
    """
    if not certs:
        raise CertificateChainError(f"{what}: empty certificate chain", check=check)
    memo = memo if memo is not None else ChainMemo()
    chain = list(certs)
    anchor, is_copy = _find_anchor(chain[-1], anchors, memo)
    if anchor is None:
        raise UntrustedRoot(f"{what}: chain does not lead to a trusted root "
                            f"({describe_name(lambda: chain[-1].issuer)})", check=check)
    if is_copy:
        chain.pop()
    for i, cert in enumerate(chain):
        last = i + 1 == len(chain)
        issuer = anchor.certificate if last else chain[i + 1]
        link = (id(cert), id(issuer))
        if link in memo.links:
            continue
        if not (anchor.is_ca if last else memo.is_ca(issuer)):
            raise CertificateChainError(f"{what}: {describe(issuer)} is not a CA", check=check)
        # The link is the issuer's key verifying this certificate's signature; names are compared by
        # the role checks (eaa.pki.roles), on the DER they already hold.
        issuer_key = anchor.public_key if last else memo.public_key(issuer)
        outer, inner = memo.signature_algorithms(cert)
        alg = _ECDSA_BY_DER.get(outer) or _ECDSA_BY_OID.get(cert.signature_algorithm_oid)
        if not isinstance(issuer_key, ec.EllipticCurvePublicKey) or alg is None:
            raise CertificateChainError(f"{what}: {describe(issuer)} does not hold an ECDSA key", check=check)
        _same_signature_algorithms(cert, what, outer, inner, check)
        try:
            issuer_key.verify(cert.signature, memo.signed_bytes(cert), alg)
        except _CryptoInvalidSignature:
            raise InvalidSignature(f"{what}: signature of {describe(cert)} does not verify", check=check) from None
        memo.links.add(link)
    windows = (*map(memo.window, chain), anchor.window)
    return CheckedChain(tuple(chain), anchor, windows, is_copy)


def check_windows(windows: Sequence[Window], at: datetime, not_yet_valid: list[str]) -> datetime:
    """The earliest expiry (the caller flags it if past); items not yet valid at ``at`` are appended to
    ``not_yet_valid``. Intel's QVL checks only expiry, so an early clock is reported, not fatal."""
    earliest = None
    for item, not_before, not_after in windows:
        if at < not_before:
            name = item if isinstance(item, str) else describe(item)
            not_yet_valid.append(f"{name} is not valid before {not_before:%Y-%m-%dT%H:%M:%SZ}")
        if earliest is None or not_after < earliest:
            earliest = not_after
    assert earliest is not None
    return earliest


class CheckedCrl(NamedTuple):
    """A CRL whose issuer and signature were checked. Its revoked entries were validated when cryptography
    loaded it (the whole revokedCertificates sequence is parsed then); a lookup scans them in Rust for
    the serials asked about, rather than building a Python object for every entry (Intel's PCK CRLs list
    dozens, and a verification asks about two or three serials)."""

    this_update: datetime
    next_update: datetime
    crl: x509.CertificateRevocationList | None = None  # None: empty

    def is_revoked(self, serial: int) -> bool:
        return self.crl is not None and self.crl.get_revoked_certificate_by_serial_number(serial) is not None


def check_crl(der: bytes, issuer: x509.Certificate, what: str, key: Any = None, *,
              issuer_name: bytes | None = None, issuer_check: str | None = None,
              signature_check: str | None = None) -> CheckedCrl:
    """A CRL issued by ``issuer``: its issuer name is the certificate's subject (``issuer_name``, its DER,
    when the caller already holds it) and the certificate's key (``key``, likewise) signed it."""
    try:  # cryptography also refuses a CRL whose two signature algorithms differ (RFC 5280 5.1.1.2)
        crl = x509.load_der_x509_crl(der)
    except PARSE_ERRORS as e:
        raise FormatError(f"{what} is not a valid DER CRL ({e})", field=what) from None
    if issuer_name is None:
        try:
            issuer_name = issuer.subject.public_bytes()
        except NAME_ERRORS:
            raise FormatError(f"the issuer of {what} has a malformed name", field=what) from None
    if crl_issuer_der(der) != issuer_name:
        raise CrlError(f"{what} is issued by {describe_name(lambda: crl.issuer)}, expected {describe(issuer)}",
                       check=issuer_check)
    key = public_key_of(issuer) if key is None else key
    alg = _ECDSA_BY_OID.get(crl.signature_algorithm_oid)
    if alg is not None and isinstance(key, ec.EllipticCurvePublicKey):
        # Over the exact TBSCertList bytes as received, rather than a re-encoding of them.
        try:
            key.verify(crl.signature, tbs_of(der), alg)
            valid = True
        except _CryptoInvalidSignature:
            valid = False
    else:
        valid = crl.is_signature_valid(key)
    if not valid:
        raise InvalidSignature(f"{what}: signature does not verify", check=signature_check)
    try:  # the revoked entries are parsed on first use
        if crl.next_update_utc is None:
            raise CrlError(f"{what} has no nextUpdate", check=issuer_check)
        return CheckedCrl(crl.last_update_utc, crl.next_update_utc, crl if len(crl) else None)
    except ValueError as e:
        raise FormatError(f"{what} is malformed ({e})", field=what) from None


def crl_issuer_der(der: bytes) -> bytes:
    """The issuer Name of a DER CRL, as its exact bytes: TBSCertList is ``SEQUENCE { version INTEGER
    OPTIONAL, signature AlgorithmIdentifier, issuer Name, ... }``."""
    tbs = tbs_of(der)
    pos, end = read_header(tbs, 0, len(tbs), "tbsCertList")
    if pos < end and tbs[pos] == 0x02:  # version
        pos = read_header(tbs, pos, end, "version")[1]
    pos = read_header(tbs, pos, end, "signature")[1]
    if pos >= end or tbs[pos] != 0x30:
        raise FormatError("CRL has no issuer name", field="tbsCertList")
    return tbs[pos:read_header(tbs, pos, end, "issuer")[1]]

