"""Certificate chains, CRLs and raw ECDSA signatures, split into a time-free part that can be cached
and a per-call time check.

The split matters for speed and for correctness: signature checks depend only on bytes, so their
outcome can be cached under the exact bytes, while validity windows depend on the verification time
and are re-checked on every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..errors import CertificateChainError, CrlError, FormatError, InvalidSignature, UntrustedRoot
from .trust import TrustAnchor

_P256 = ec.SECP256R1()
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_SHA256 = hashes.SHA256()


_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


def _pem_blocks(data: bytes) -> list[bytes]:
    """Each BEGIN..END CERTIFICATE block, in order (found with bytes.find: chains are parsed on every cold
    verification, and a regex over the whole text costs more than the parse)."""
    out = []
    pos = 0
    while True:
        start = data.find(_PEM_BEGIN, pos)
        if start < 0:
            return out
        end = data.find(_PEM_END, start)
        if end < 0:
            return out
        pos = end + len(_PEM_END)
        out.append(data[start:pos])


def load_pem_chain(text: str | bytes, what: str, memo: dict[Any, Any] | None = None) -> tuple[x509.Certificate, ...]:
    """The certificates of a PEM chain, leaf first.

    With ``memo`` (one verification's scratch space) a certificate appearing in several chains is parsed
    once and is the same object everywhere, so links between objects are verified only once.
    """
    data = text.encode("ascii", "replace") if isinstance(text, str) else bytes(text)
    blocks = _pem_blocks(data)
    if not blocks:
        raise CertificateChainError(f"{what}: no PEM certificate found")
    out = []
    for block in blocks:
        key = ("pem", block)
        cert = memo.get(key) if memo is not None else None
        if cert is None:
            try:
                cert = x509.load_pem_x509_certificate(block)
            except ValueError as e:
                raise FormatError(f"{what}: bad PEM certificate ({e})", field=what) from None
            if memo is not None:
                memo[key] = cert
        out.append(cert)
    return tuple(out)


def public_key_from_raw(xy: bytes, what: str) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_P256, b"\x04" + xy)
    except ValueError:
        raise InvalidSignature(f"{what} is not a valid P-256 point") from None


def verify_raw_signature(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, what: str) -> None:
    """ECDSA-P256-SHA256 with a raw r||s signature, as quotes and Intel's JSON collateral carry them."""
    if len(signature) != 64:
        raise InvalidSignature(f"{what}: signature must be 64 bytes")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, _ECDSA_SHA256)
    except _CryptoInvalidSignature:
        raise InvalidSignature(f"{what}: signature does not verify") from None
    except (ValueError, TypeError):
        raise InvalidSignature(f"{what}: malformed signature") from None


def _memo(memo: dict[Any, Any] | None, key: Any, make: Any) -> Any:
    if memo is None:
        return make()
    if key not in memo:
        memo[key] = make()
    return memo[key]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


# (what: a certificate or a name, not valid before, not valid after)
Window = tuple[x509.Certificate | str, datetime, datetime]


@dataclass(frozen=True)
class CheckedChain:
    """A chain whose signatures were verified up to ``anchor``; times still to be checked per call."""

    certs: tuple[x509.Certificate, ...]  # leaf first, anchor excluded
    anchor: TrustAnchor
    windows: tuple[Window, ...]  # (certificate, not_before, not_after) incl. anchor

    @property
    def leaf(self) -> x509.Certificate:
        return self.certs[0] if self.certs else self.anchor.certificate


def check_chain_signatures(
    certs: Sequence[x509.Certificate], anchors: Sequence[TrustAnchor], what: str,
    links: dict[Any, Any] | None = None,
) -> CheckedChain:
    """Verify each link up to a trusted anchor.

    ``links`` memoises links verified in this call by object identity; it must be the ``memo`` that
    :func:`load_pem_chain` filled, which keeps every certificate alive and one object per certificate.
    """
    if not certs:
        raise CertificateChainError(f"{what}: empty certificate chain")
    chain = list(certs)
    anchor: TrustAnchor | None = None
    last = chain[-1]
    last_fp = _memo(links, ("fp", id(last)), lambda: last.fingerprint(_SHA256))
    # A chain usually ends with a copy of the root: matched to an anchor by its exact bytes. A re-issued
    # root (same key, other bytes) is handled below as a certificate issued by the anchor.
    for a in anchors:
        if last_fp == a.fingerprint:
            anchor = a
            chain = chain[:-1]
            break
    if anchor is None:
        for a in anchors:
            if last.issuer == a.certificate.subject:
                try:
                    last.verify_directly_issued_by(a.certificate)
                except (ValueError, TypeError, _CryptoInvalidSignature):
                    continue
                anchor = a
                break
    if anchor is None:
        raise UntrustedRoot(f"{what}: chain does not lead to a trusted root ({last.issuer.rfc4514_string()})")
    for i, cert in enumerate(chain):
        issuer = chain[i + 1] if i + 1 < len(chain) else anchor.certificate
        key = ("link", id(cert), id(issuer))
        if links is not None and key in links:
            continue
        if not _memo(links, ("ca", id(issuer)), lambda issuer=issuer: _is_ca(issuer)):
            raise CertificateChainError(f"{what}: {issuer.subject.rfc4514_string()} is not a CA")
        # The link is the issuer's key verifying this certificate's signature; names are not compared
        # (building them costs more than the check is worth when the key already decides).
        issuer_key = issuer.public_key()
        hash_alg = cert.signature_hash_algorithm
        if not isinstance(issuer_key, ec.EllipticCurvePublicKey) or hash_alg is None:
            raise CertificateChainError(f"{what}: {issuer.subject.rfc4514_string()} does not hold an ECDSA key")
        try:
            issuer_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hash_alg))
        except _CryptoInvalidSignature:
            raise InvalidSignature(f"{what}: signature of {cert.subject.rfc4514_string()} does not verify") from None
        if links is not None:
            links[key] = True
    windows = tuple((c, c.not_valid_before_utc, c.not_valid_after_utc) for c in (*chain, anchor.certificate))
    return CheckedChain(tuple(chain), anchor, windows)


def check_windows(windows: Sequence[Window], at: datetime, not_yet_valid: list[str]) -> datetime:
    """The earliest expiry (the caller flags it if past); items not yet valid at ``at`` are appended to
    ``not_yet_valid``. Intel's QVL checks only expiry, so an early clock is reported, not fatal."""
    earliest = None
    for item, not_before, not_after in windows:
        if at < not_before:
            name = item if isinstance(item, str) else item.subject.rfc4514_string()
            not_yet_valid.append(f"{name} is not valid before {not_before:%Y-%m-%dT%H:%M:%SZ}")
        if earliest is None or not_after < earliest:
            earliest = not_after
    assert earliest is not None
    return earliest


@dataclass(frozen=True)
class CheckedCrl:
    this_update: datetime
    next_update: datetime
    revoked: frozenset[int]

    def is_revoked(self, serial: int) -> bool:
        return serial in self.revoked


def check_crl(der: bytes, issuer: x509.Certificate, what: str) -> CheckedCrl:
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError:
        raise FormatError(f"{what} is not a DER CRL", field=what) from None
    if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
        if crl.issuer != issuer.subject:
            raise CrlError(f"{what} is issued by {crl.issuer.rfc4514_string()}, "
                           f"expected {issuer.subject.rfc4514_string()}")
        raise InvalidSignature(f"{what}: signature does not verify")
    if crl.next_update_utc is None:
        raise CrlError(f"{what} has no nextUpdate")
    return CheckedCrl(crl.last_update_utc, crl.next_update_utc, frozenset(r.serial_number for r in crl))
