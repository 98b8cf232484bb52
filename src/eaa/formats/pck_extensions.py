"""The Intel SGX extension of PCK certificates (OID 1.2.840.113741.1.13.1).

It carries the platform's TCB (16 component SVNs, PCESVN, CPUSVN), FMSPC and PCE-ID, which the
verifier matches against TCB info (shared/docs/dcap-reference.md §2.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormatError
from .der import (
    TAG_BOOLEAN,
    TAG_ENUMERATED,
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    decode_int,
    decode_oid,
    encode_oid,
    read_children,
    read_tlv,
)

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_P = SGX_EXTENSION_OID
SGX_TYPES = {0: "Standard", 1: "Scalable", 2: "ScalableWithIntegrity"}


@dataclass(frozen=True, slots=True)
class PckExtensions:
    ppid: bytes | None
    tcb_components: tuple[int, ...]  # 16 SVNs, .2.1 .. .2.16
    pce_svn: int
    cpu_svn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int | None
    platform_instance_id: bytes | None
    configuration: dict[str, bool]


def _pairs(value: bytes, context: str) -> dict[str, tuple[int, bytes]]:
    out: dict[str, tuple[int, bytes]] = {}
    for tag, seq in read_children(value, context):
        if tag != TAG_SEQUENCE:
            raise FormatError("expected SEQUENCE {OID, value}", field=context)
        items = read_children(seq, context)
        if len(items) != 2 or items[0][0] != TAG_OID:
            raise FormatError("expected {OID, value} pair", field=context)
        raw = items[0][1]
        oid = _KNOWN.get(raw) or decode_oid(raw, context)
        if oid in out:
            raise FormatError(f"duplicate SGX extension entry {oid}", field=context)
        out[oid] = items[1]
    return out


_KNOWN = {encode_oid(o): o for o in (
    [f"{_P}.{i}" for i in range(1, 8)] + [f"{_P}.2.{i}" for i in range(1, 19)] + [f"{_P}.7.{i}" for i in range(1, 4)]
)}


def _need(pairs: dict[str, tuple[int, bytes]], oid: str, tag: int, name: str) -> bytes:
    if oid not in pairs:
        raise FormatError(f"PCK SGX extension lacks {name} ({oid})", field=name)
    t, v = pairs[oid]
    if t != tag:
        raise FormatError(f"PCK SGX extension {name} has DER tag {t:#x}, expected {tag:#x}", field=name)
    return v


def parse_sgx_extension(der_value: bytes) -> PckExtensions:
    """Parse the DER value of the SGX extension (a SEQUENCE of {OID, value})."""
    tag, body, end = read_tlv(der_value, 0, "sgx_extension")
    if tag != TAG_SEQUENCE or end != len(der_value):
        raise FormatError("SGX extension is not one SEQUENCE", field="sgx_extension")
    top = _pairs(body, "sgx_extension")
    tcb = _pairs(_need(top, f"{_P}.2", TAG_SEQUENCE, "tcb"), "tcb")
    comps = tuple(decode_int(_need(tcb, f"{_P}.2.{i}", TAG_INTEGER, f"tcb_comp{i:02d}_svn"), "svn")
                  for i in range(1, 17))
    pce_svn = decode_int(_need(tcb, f"{_P}.2.17", TAG_INTEGER, "pcesvn"), "pcesvn")
    cpu_svn = _need(tcb, f"{_P}.2.18", TAG_OCTET_STRING, "cpusvn")
    pce_id = _need(top, f"{_P}.3", TAG_OCTET_STRING, "pceid")
    fmspc = _need(top, f"{_P}.4", TAG_OCTET_STRING, "fmspc")
    if len(fmspc) != 6 or len(pce_id) != 2 or len(cpu_svn) != 16:
        raise FormatError("PCK SGX extension has a wrongly sized FMSPC, PCE-ID or CPUSVN", field="sgx_extension")
    ppid = top[f"{_P}.1"][1] if f"{_P}.1" in top else None
    sgx_type = None
    if f"{_P}.5" in top:
        sgx_type = decode_int(_need(top, f"{_P}.5", TAG_ENUMERATED, "sgx_type"), "sgx_type")
    pi = top[f"{_P}.6"][1] if f"{_P}.6" in top else None
    config: dict[str, bool] = {}
    if f"{_P}.7" in top:
        names = {f"{_P}.7.1": "dynamic_platform", f"{_P}.7.2": "cached_keys", f"{_P}.7.3": "smt_enabled"}
        for oid, (t, v) in _pairs(_need(top, f"{_P}.7", TAG_SEQUENCE, "configuration"), "configuration").items():
            if oid in names and t == TAG_BOOLEAN:
                config[names[oid]] = v != b"\x00"
    return PckExtensions(ppid, comps, pce_svn, cpu_svn, pce_id, fmspc, sgx_type, pi, config)
