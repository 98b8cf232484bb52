"""The Intel SGX extension of PCK certificates (OID 1.2.840.113741.1.13.1).

It carries the platform's TCB (16 component SVNs, PCESVN, CPUSVN), FMSPC and PCE-ID, which the
verifier matches against TCB info (shared/docs/dcap-reference.md §2.3).
"""

from __future__ import annotations

from cryptography import x509

from ..errors import FormatError
from ..records import record
from .der import (
    TAG_BOOLEAN,
    TAG_ENUMERATED,
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    decode_oid,
    encode_oid,
    read_header,
)

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_P = SGX_EXTENSION_OID
SGX_TYPES = {0: "Standard", 1: "Scalable", 2: "ScalableWithIntegrity"}
_SGX_OID = x509.ObjectIdentifier(SGX_EXTENSION_OID)


@record(slots=True)
class PckExtensions:
    """The decoded SGX extension of a PCK certificate: the platform's TCB, FMSPC and PCE-ID, to match TCB info."""

    ppid: bytes | None
    tcb_components: tuple[int, ...]  # 16 SVNs, .2.1 .. .2.16
    pce_svn: int
    cpu_svn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int | None
    platform_instance_id: bytes | None
    configuration: dict[str, bool]


# Each entry is (DER tag, value start, value end) within the extension bytes: values are sliced only
# when used, since a cold verification parses the extension of every quote's PCK certificate.
_Entry = tuple[int, int, int]


def _pairs(data: bytes, pos: int, end: int, context: str) -> dict[bytes, _Entry]:
    """The {OID, value} SEQUENCEs between ``pos`` and ``end``, by raw OID bytes.

    Short-form lengths (all the extension uses) are read inline; anything else goes through
    :func:`read_header`, which also bounds-checks.
    """
    out: dict[bytes, _Entry] = {}
    while pos < end:
        # Fast path: SEQUENCE, OID and value all short-form and well nested, as Intel encodes them.
        if pos + 6 <= end and data[pos] == TAG_SEQUENCE and data[pos + 1] < 0x80 and data[pos + 2] == TAG_OID:
            seq_end = pos + 2 + data[pos + 1]
            oid_start = pos + 4
            oid_end = oid_start + data[pos + 3]
            if data[pos + 3] < 0x80 and oid_end + 2 <= seq_end <= end and data[oid_end + 1] < 0x80 \
                    and oid_end + 2 + data[oid_end + 1] == seq_end:
                oid = data[oid_start:oid_end]
                if oid in out:
                    raise FormatError(f"duplicate SGX extension entry {_name(oid)}", field=context, offset=oid_start)
                out[oid] = (data[oid_end], oid_end + 2, seq_end)
                pos = seq_end
                continue
        if data[pos] != TAG_SEQUENCE:
            raise FormatError("expected SEQUENCE {OID, value}", field=context, offset=pos)
        pos, seq_end = read_header(data, pos, end, context)
        if pos + 2 > seq_end or data[pos] != TAG_OID:
            raise FormatError("expected {OID, value} pair", field=context, offset=pos)
        oid_start, oid_end = read_header(data, pos, seq_end, context)
        if oid_end >= seq_end:
            raise FormatError("expected {OID, value} pair", field=context, offset=oid_end)
        tag = data[oid_end]
        value_start, value_end = read_header(data, oid_end, seq_end, context)
        if value_end != seq_end:
            raise FormatError("expected {OID, value} pair", field=context, offset=value_end)
        oid = data[oid_start:oid_end]
        if oid in out:
            raise FormatError(f"duplicate SGX extension entry {_name(oid)}", field=context, offset=oid_start)
        out[oid] = (tag, value_start, value_end)
        pos = seq_end
    return out


def _name(raw_oid: bytes) -> str:
    return _KNOWN.get(raw_oid) or decode_oid(raw_oid, "oid")


_KNOWN = {encode_oid(o): o for o in (
    [f"{_P}.{i}" for i in range(1, 8)] + [f"{_P}.2.{i}" for i in range(1, 19)] + [f"{_P}.7.{i}" for i in range(1, 4)]
)}
_RAW = {o: raw for raw, o in _KNOWN.items()}
_TCB_COMPONENTS = tuple(_RAW[f"{_P}.2.{i}"] for i in range(1, 17))
_CONFIG_NAMES = {_RAW[f"{_P}.7.1"]: "dynamic_platform", _RAW[f"{_P}.7.2"]: "cached_keys",
                 _RAW[f"{_P}.7.3"]: "smt_enabled"}


def _need(pairs: dict[bytes, _Entry], oid: str, tag: int, name: str) -> _Entry:
    entry = pairs.get(_RAW[oid])
    if entry is None:
        raise FormatError(f"PCK SGX extension lacks {name} ({oid})", field=name)
    if entry[0] != tag:
        raise FormatError(f"PCK SGX extension {name} has DER tag {entry[0]:#x}, expected {tag:#x}", field=name)
    return entry


def _int(data: bytes, entry: _Entry, name: str) -> int:
    tag, start, end = entry
    if start == end:
        raise FormatError("empty INTEGER", field=name, offset=start)
    return int.from_bytes(data[start:end], "big", signed=True)


_PPID, _TCB, _PCEID, _FMSPC, _TYPE, _PLATFORM_ID, _CONFIG = (f"{_P}.{i}" for i in range(1, 8))
_PCESVN, _CPUSVN = f"{_P}.2.17", f"{_P}.2.18"


def sgx_extension_value(cert: x509.Certificate) -> bytes | None:
    """The raw DER of a certificate's SGX extension, or None when it has none; a certificate whose
    extensions cryptography cannot read raises :class:`FormatError`."""
    try:
        ext = cert.extensions.get_extension_for_oid(_SGX_OID)
    except x509.ExtensionNotFound:
        return None
    except ValueError as e:
        raise FormatError(f"PCK certificate extensions are malformed: {e}", field="pck_certificate") from None
    return ext.value.value  # type: ignore[attr-defined,no-any-return]


def parse_sgx_extension(der_value: bytes) -> PckExtensions:
    """Parse the DER value of the SGX extension (a SEQUENCE of {OID, value})."""
    data = bytes(der_value)
    if not data or data[0] != TAG_SEQUENCE:
        raise FormatError("SGX extension is not one SEQUENCE", field="sgx_extension")
    body, end = read_header(data, 0, len(data), "sgx_extension")
    if end != len(data):
        raise FormatError("SGX extension is not one SEQUENCE", field="sgx_extension", offset=end)
    top = _pairs(data, body, end, "sgx_extension")
    _, tcb_start, tcb_end = _need(top, _TCB, TAG_SEQUENCE, "tcb")
    tcb = _pairs(data, tcb_start, tcb_end, "tcb")
    comps = []
    for i, raw in enumerate(_TCB_COMPONENTS, 1):
        entry = tcb.get(raw)
        if entry is None or entry[0] != TAG_INTEGER or entry[1] == entry[2]:
            entry = _need(tcb, f"{_P}.2.{i}", TAG_INTEGER, f"tcb_comp{i:02d}_svn")
            _int(data, entry, "svn")
        comps.append(int.from_bytes(data[entry[1]:entry[2]], "big", signed=True))
    pce_svn = _int(data, _need(tcb, _PCESVN, TAG_INTEGER, "pcesvn"), "pcesvn")
    _, s, e = _need(tcb, _CPUSVN, TAG_OCTET_STRING, "cpusvn")
    cpu_svn = data[s:e]
    _, s, e = _need(top, _PCEID, TAG_OCTET_STRING, "pceid")
    pce_id = data[s:e]
    _, s, e = _need(top, _FMSPC, TAG_OCTET_STRING, "fmspc")
    fmspc = data[s:e]
    if len(fmspc) != 6 or len(pce_id) != 2 or len(cpu_svn) != 16:
        raise FormatError("PCK SGX extension has a wrongly sized FMSPC, PCE-ID or CPUSVN", field="sgx_extension")
    ppid = _value(data, top.get(_RAW[_PPID]))
    sgx_type = None
    if _RAW[_TYPE] in top:
        sgx_type = _int(data, _need(top, _TYPE, TAG_ENUMERATED, "sgx_type"), "sgx_type")
    pi = _value(data, top.get(_RAW[_PLATFORM_ID]))
    config: dict[str, bool] = {}
    if _RAW[_CONFIG] in top:
        _, s, e = _need(top, _CONFIG, TAG_SEQUENCE, "configuration")
        for raw, (t, vs, ve) in _pairs(data, s, e, "configuration").items():
            if raw in _CONFIG_NAMES and t == TAG_BOOLEAN:
                config[_CONFIG_NAMES[raw]] = data[vs:ve] != b"\x00"
    return PckExtensions(ppid, tuple(comps), pce_svn, cpu_svn, pce_id, fmspc, sgx_type, pi, config)


def _value(data: bytes, entry: _Entry | None) -> bytes | None:
    return None if entry is None else data[entry[1]:entry[2]]
