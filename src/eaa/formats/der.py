"""A minimal DER TLV reader for the Intel SGX certificate extension.

``cryptography`` hands unknown extensions over as raw DER; the SGX extension is a nested
SEQUENCE of (OID, value) pairs, which needs only tag/length walking and OID decoding.
"""

from __future__ import annotations

from ..errors import FormatError

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_SEQUENCE = 0x30


def read_tlv(data: bytes, pos: int, context: str) -> tuple[int, bytes, int]:
    """Return (tag, value, next position) of the TLV at ``pos``."""
    if pos + 2 > len(data):
        raise FormatError("truncated DER element", field=context, offset=pos)
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise FormatError("bad DER length", field=context, offset=pos - 1)
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise FormatError("DER element overruns its container", field=context, offset=pos)
    return tag, data[pos : pos + length], pos + length


def read_header(data: bytes, pos: int, end: int, context: str) -> tuple[int, int]:
    """(value start, value end) of the TLV at ``pos``, which must lie within ``end``; the tag is not read.

    Index-based so that hot parsers slice only the values they keep."""
    if pos + 2 > end:
        raise FormatError("truncated DER element", field=context, offset=pos)
    length = data[pos + 1]
    if length < 0x80 and pos + 2 + length <= end:  # short form, the common case
        return pos + 2, pos + 2 + length
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise FormatError("bad DER length", field=context, offset=pos - 1)
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise FormatError("DER element overruns its container", field=context, offset=pos)
    return pos, pos + length


def read_children(data: bytes, context: str) -> list[tuple[int, bytes]]:
    out = []
    pos = 0
    while pos < len(data):
        tag, value, pos = read_tlv(data, pos, context)
        out.append((tag, value))
    return out


def decode_oid(value: bytes, context: str = "oid") -> str:
    if not value:
        raise FormatError("empty OID", field=context)
    arcs: list[int] = []
    n = 0
    for i, b in enumerate(value):
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(n)
            n = 0
        elif i == len(value) - 1:
            raise FormatError("unterminated OID arc", field=context)
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def decode_int(value: bytes, context: str) -> int:
    if not value:
        raise FormatError("empty INTEGER", field=context)
    return int.from_bytes(value, "big", signed=True)


def encode_oid(dotted: str) -> bytes:
    """DER content bytes of an OID, so lookups can compare raw bytes instead of decoding each OID."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or any(a < 0 for a in arcs):
        raise ValueError(f"bad OBJECT IDENTIFIER {dotted!r}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)
