"""A minimal DER encoder: just enough to build the Intel SGX PCK certificate extension.

``cryptography`` takes an unknown extension as raw DER (``x509.UnrecognizedExtension``); the SGX
extension is a nested SEQUENCE of {OID, value} pairs, so tags, lengths, INTEGER, ENUMERATED,
BOOLEAN, OCTET STRING and OBJECT IDENTIFIER are all it needs. The reader is ``eaa.formats.der``.
"""

from __future__ import annotations

from ..formats.der import (
    TAG_BOOLEAN,
    TAG_ENUMERATED,
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    encode_oid,
)


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _length(len(value)) + value


def _int_body(n: int) -> bytes:
    """Minimal two's-complement big-endian encoding (X.690 8.3)."""
    magnitude = n if n >= 0 else -n - 1
    return n.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True)


def integer(n: int) -> bytes:
    return tlv(TAG_INTEGER, _int_body(n))


def enumerated(n: int) -> bytes:
    return tlv(TAG_ENUMERATED, _int_body(n))


def boolean(v: bool) -> bytes:
    return tlv(TAG_BOOLEAN, b"\xff" if v else b"\x00")


def octet_string(b: bytes) -> bytes:
    return tlv(TAG_OCTET_STRING, bytes(b))


def oid(dotted: str) -> bytes:
    return tlv(TAG_OID, encode_oid(dotted))


def sequence(*items: bytes) -> bytes:
    return tlv(TAG_SEQUENCE, b"".join(items))
