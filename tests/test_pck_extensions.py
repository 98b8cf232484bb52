"""The PCK SGX extension parser: real certificates, every required entry, and malformed DER."""

from __future__ import annotations

import pytest
from cryptography import x509

from _vectors import manifest, quote_bytes, require_vectors
from eaa.errors import FormatError
from eaa.formats.pck_extensions import SGX_EXTENSION_OID, parse_sgx_extension
from eaa.formats.quote import parse_quote
from eaa.sim import der
from eaa.sim.pki import sgx_extension_der

P = SGX_EXTENSION_OID
COMPONENTS = list(range(1, 17))


def ext(**over: object) -> bytes:
    args: dict[str, object] = dict(ppid=b"\x11" * 16, tcb_components=COMPONENTS, pce_svn=13, cpu_svn=b"\x22" * 16,
                                   pce_id=b"\x00\x00", fmspc=b"\x00\x90\x6e\xa1\x00\x00", sgx_type=0)
    args.update(over)
    return sgx_extension_der(**args)  # type: ignore[arg-type]


def pair(oid: str, value: bytes) -> bytes:
    return der.sequence(der.oid(oid), value)


def tcb(*, skip: int | None = None, extra: bytes = b"", svn_tag: int = der.TAG_INTEGER) -> bytes:
    items = [pair(f"{P}.2.{i}", der.tlv(svn_tag, bytes([i]))) for i in range(1, 17) if i != skip]
    items += [pair(f"{P}.2.17", der.integer(13)), pair(f"{P}.2.18", der.octet_string(b"\x22" * 16))]
    return pair(f"{P}.2", der.sequence(*items, extra))


def top(*entries: bytes) -> bytes:
    return der.sequence(*entries)


PPID = pair(f"{P}.1", der.octet_string(b"\x11" * 16))
PCEID = pair(f"{P}.3", der.octet_string(b"\x00\x00"))
FMSPC = pair(f"{P}.4", der.octet_string(b"\x00\x90\x6e\xa1\x00\x00"))
TYPE = pair(f"{P}.5", der.enumerated(1))


def test_simulated_extension_round_trips() -> None:
    e = parse_sgx_extension(ext())
    assert e.tcb_components == tuple(COMPONENTS)
    assert (e.pce_svn, e.cpu_svn, e.pce_id, e.fmspc, e.ppid) == (13, b"\x22" * 16, b"\x00\x00",
                                                                   b"\x00\x90\x6e\xa1\x00\x00", b"\x11" * 16)


def test_hand_built_extension_in_any_order() -> None:
    e = parse_sgx_extension(top(TYPE, FMSPC, tcb(), PCEID, PPID))
    assert e.sgx_type == 1 and e.tcb_components == tuple(range(1, 17)) and e.pce_svn == 13


def test_platform_entries_and_configuration() -> None:
    config = pair(f"{P}.7", der.sequence(pair(f"{P}.7.1", der.boolean(True)), pair(f"{P}.7.3", der.boolean(False))))
    e = parse_sgx_extension(top(PPID, tcb(), PCEID, FMSPC, TYPE, pair(f"{P}.6", der.octet_string(b"\x33" * 16)),
                                config))
    assert e.platform_instance_id == b"\x33" * 16
    assert e.configuration == {"dynamic_platform": True, "smt_enabled": False}


def test_long_form_lengths_parse_like_short_ones() -> None:
    """A value with a long-form length takes the general path and gives the same result."""
    padded_ppid = pair(f"{P}.1", b"\x04\x81\x10" + b"\x11" * 16)
    assert parse_sgx_extension(top(padded_ppid, tcb(), PCEID, FMSPC)).ppid == b"\x11" * 16


# Vectors whose quote carries its PCK chain (certification data type 5, or 6 nesting 5), with the FMSPC the
# manifest records.
PCK_VECTORS = [v for v in manifest()
               if v.get("quote_info", {}).get("cd") in ("5", "6->5") and v["quote_info"].get("fmspc")]


@pytest.mark.parametrize("vid", [v["id"] for v in PCK_VECTORS] or ["<no vectors>"])
def test_real_pck_certificates(vid: str) -> None:
    require_vectors()
    v = next(v for v in PCK_VECTORS if v["id"] == vid)
    q = parse_quote(quote_bytes(v))
    leaf = x509.load_pem_x509_certificate(q.certification_data.pem_chain[0])
    raw = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(P)).value.value  # type: ignore[attr-defined]
    e = parse_sgx_extension(raw)
    assert e.fmspc.hex() == v["quote_info"]["fmspc"].lower()
    assert len(e.tcb_components) == 16 and len(e.cpu_svn) == 16 and len(e.pce_id) == 2
    assert e.pce_svn >= 0 and all(0 <= c <= 255 for c in e.tcb_components)


@pytest.mark.parametrize("data, message", [
    (top(PPID, tcb(), PCEID), "lacks fmspc"),
    (top(PPID, PCEID, FMSPC), "lacks tcb"),
    (top(PPID, tcb(skip=7), PCEID, FMSPC), "lacks tcb_comp07_svn"),
    (top(PPID, tcb(svn_tag=der.TAG_OCTET_STRING), PCEID, FMSPC), "tcb_comp01_svn has DER tag 0x4"),
    (top(PPID, tcb(), PCEID, FMSPC, FMSPC), "duplicate SGX extension entry 1.2.840.113741.1.13.1.4"),
    (top(PPID, tcb(extra=pair(f"{P}.2.3", der.integer(1))), PCEID, FMSPC), "duplicate SGX extension entry"),
    (top(PPID, tcb(), pair(f"{P}.3", der.octet_string(b"\x00")), FMSPC), "wrongly sized"),
    (top(PPID, tcb(), PCEID, FMSPC) + b"\x00", "not one SEQUENCE"),
    (der.tlv(0x31, b""), "not one SEQUENCE"),
    (top(PPID, tcb(), PCEID, der.sequence(der.oid(f"{P}.4"))), "expected {OID, value} pair"),
    (top(PPID, tcb(), PCEID, der.sequence(der.integer(4), der.octet_string(b"x"))), "expected {OID, value} pair"),
    (top(PPID, tcb(), PCEID, der.sequence(der.oid(f"{P}.4"), der.octet_string(b"\x00" * 6), der.integer(1))),
     "expected {OID, value} pair"),
    (top(PPID, tcb(), PCEID, der.octet_string(b"\x00" * 6)), "expected SEQUENCE"),
    (top(PPID, tcb(), PCEID, b"\x30\x85\x01\x00\x00\x00\x00"), "bad DER length"),
    (top(PPID, tcb(), PCEID, b"\x30\x10\x06\x01"), "overruns"),
    (top(PPID, tcb(), PCEID, FMSPC, pair(f"{P}.5", der.integer(1))), "sgx_type has DER tag"),
])
def test_malformed_extensions_are_format_errors(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_sgx_extension(data)


def test_every_truncation_is_a_format_error() -> None:
    data = ext()
    for n in range(len(data)):
        with pytest.raises(FormatError):
            parse_sgx_extension(data[:n])
