"""The raw TBSCertificate reader agrees with cryptography on every certificate we have, and steps aside
(returns None) on anything it does not understand."""

from __future__ import annotations

import binascii
from datetime import datetime, timezone
from functools import lru_cache

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from _vectors import manifest, quote_bytes, require_vectors
from eaa.errors import FormatError
from eaa.formats.der import encode_oid
from eaa.formats.quote import parse_quote
from eaa.formats.tbs import BASIC_CONSTRAINTS, TbsFields, read_tbs
from eaa.pki.chain import pem_bodies, tbs_of
from eaa.sim import der, pki


def _vector_certs() -> list[tuple[str, bytes]]:
    """Every distinct certificate in the PCK chains the vectors' quotes carry (certification data type 5)."""
    out: dict[bytes, str] = {}
    for v in manifest():
        if v.get("quote_info", {}).get("cd") not in ("5", "6->5"):
            continue
        q = parse_quote(quote_bytes(v))
        for i, d_ in enumerate(map(binascii.a2b_base64, pem_bodies(q.certification_data.data))):
            out.setdefault(d_, f"{v['id']}#{i}")
    return [(name, d_) for d_, name in out.items()]


CERTS = _vector_certs()


@lru_cache(maxsize=1)
def _sim_certs() -> tuple[x509.Certificate, x509.Certificate]:
    key = pki.derive_key(b"seed", "ca")
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ca = pki.make_ca(pki.name("EAA SIMULATION CA", "t"), key, None, key, 1, now, 1)
    leaf = pki.make_leaf(pki.name("leaf", "t"), pki.derive_key(b"seed", "leaf"), ca, key, 2, now,
                         [pki.sgx_extension(b"\x30\x00")])
    return ca, leaf


def _agree(cert: x509.Certificate) -> None:
    fields = read_tbs(tbs_of(cert.public_bytes(Encoding.DER)))
    assert fields is not None
    assert fields.subject == cert.subject.public_bytes()
    assert fields.issuer == cert.issuer.public_bytes()
    theirs = {encode_oid(e.oid.dotted_string): e for e in cert.extensions}
    assert set(fields.extensions) == set(theirs)
    for oid, (critical, value) in fields.extensions.items():
        ext = theirs[oid]
        assert critical == ext.critical
        raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else ext.value.public_bytes()
        assert value == raw
    try:
        bcv = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        expected = (bcv.ca, bcv.path_length)
    except x509.ExtensionNotFound:
        expected = (False, None)
    assert fields.basic_constraints() == expected


@pytest.mark.parametrize("name, der_", CERTS or [("<no vectors>", b"")])
def test_agrees_with_cryptography_on_real_certificates(name: str, der_: bytes) -> None:
    require_vectors()
    _agree(x509.load_der_x509_certificate(der_))


def test_agrees_with_cryptography_on_simulated_certificates() -> None:
    for cert in _sim_certs():
        _agree(cert)


def bc(value: bytes) -> TbsFields:
    return TbsFields(b"", b"", {BASIC_CONSTRAINTS: (True, value)})


@pytest.mark.parametrize("value, expected", [
    (der.sequence(der.boolean(True)), (True, None)),
    (der.sequence(der.boolean(True), der.integer(0)), (True, 0)),
    (der.sequence(der.boolean(True), der.integer(1)), (True, 1)),
    (der.sequence(), (False, None)),
    # Anything but plain DER is left to cryptography:
    (der.sequence(der.boolean(False)), None),  # an explicit DEFAULT value
    (b"\x30\x03\x01\x01\x01", None),  # TRUE encoded as 0x01 (BER, not DER)
    (der.sequence(der.integer(3)), None),  # pathLenConstraint alone
    (der.sequence(der.boolean(True), der.integer(200)), None),  # a two-byte INTEGER
    (b"\x30\x06\x01\x01\xff\x02\x01\x80", None),  # a negative path length
    (b"\x30\x81\x03\x01\x01\xff", None),  # long-form length
    (b"\x04\x00", None),
    (b"", None),
])
def test_basic_constraints(value: bytes, expected: tuple[bool, int | None] | None) -> None:
    assert bc(value).basic_constraints() == expected


def test_absent_basic_constraints_is_not_a_ca() -> None:
    assert TbsFields(b"", b"", {}).basic_constraints() == (False, None)


def test_unreadable_input_returns_none() -> None:
    cert = _sim_certs()[1]
    tbs = tbs_of(cert.public_bytes(Encoding.DER))
    assert read_tbs(tbs) is not None
    for bad in (b"", b"\x31\x00", tbs + b"\x00", tbs[:-1], tbs[:40], b"\x30\x03\x02\x01\x01"):
        assert read_tbs(bad) is None


def tbs(*extensions: bytes, subject: bytes = der.sequence(der.octet_string(b"subject"))) -> bytes:
    """A TBSCertificate whose fields are placeholders: the reader only walks their headers."""
    fields = [der.tlv(0xA0, der.integer(2)), der.integer(1), der.sequence(), der.sequence(), der.sequence(), subject,
              der.sequence()]
    if extensions:
        fields.append(der.tlv(0xA3, der.sequence(*extensions)))
    return der.sequence(*fields)


def ext(oid: str, value: bytes, critical: bool | None = None) -> bytes:
    return der.sequence(der.oid(oid), *([der.boolean(critical)] if critical is not None else []),
                        der.octet_string(value))


def test_hand_built_tbs() -> None:
    f = read_tbs(tbs(ext("2.5.29.19", der.sequence(der.boolean(True)), True), ext("1.2.3", b"v"),
                     ext("1.2.4", b"w")))
    assert f is not None and f.subject == der.sequence(der.octet_string(b"subject"))
    assert f.extensions == {BASIC_CONSTRAINTS: (True, der.sequence(der.boolean(True))),
                            encode_oid("1.2.3"): (False, b"v"), encode_oid("1.2.4"): (False, b"w")}
    assert f.basic_constraints() == (True, None)
    assert read_tbs(tbs()) == TbsFields(der.sequence(), der.sequence(der.octet_string(b"subject")), {})


@pytest.mark.parametrize("data", [
    tbs(ext("1.2.3", b"v", False)),  # critical FALSE written out: DER omits a DEFAULT value
    tbs(der.sequence(der.oid("1.2.3"), b"\x01\x01\x01", der.octet_string(b"v"))),  # TRUE as 0x01: BER
    tbs(der.sequence(der.oid("1.2.3"), b"\x04\x81\x01v")),  # a long-form length DER writes short
    tbs(ext("1.2.3", b"v"), ext("1.2.3", b"w")),  # duplicate extension
    tbs(der.sequence(der.integer(1), der.octet_string(b"v"))),  # extnID not an OID
    tbs(der.sequence(der.oid("1.2.3"), der.integer(1))),  # extnValue not an OCTET STRING
    tbs(der.sequence(der.oid("1.2.3"), der.octet_string(b"v"), der.integer(1))),  # trailing element
    tbs(der.octet_string(b"not an extension")),
    tbs(subject=der.octet_string(b"not a name")),
])
def test_unexpected_layouts_return_none(data: bytes) -> None:
    assert read_tbs(data) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    assert read_tbs(data) is None or isinstance(read_tbs(data), TbsFields)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_real_tbs_never_raises(data: st.DataObject) -> None:
    cert = _sim_certs()[1]
    tbs = bytearray(tbs_of(cert.public_bytes(Encoding.DER)))
    pos = data.draw(st.integers(0, len(tbs) - 1))
    tbs[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(tbs)))
    fields = read_tbs(bytes(tbs[:cut]))
    assert fields is None or isinstance(fields, TbsFields)


def test_signature_algorithms() -> None:
    from eaa.formats.tbs import signature_algorithms

    for cert in _sim_certs():
        der_ = cert.public_bytes(Encoding.DER)
        outer, inner = signature_algorithms(der_)
        assert outer == inner == bytes.fromhex("300a06082a8648ce3d040302")
    for bad in (b"", b"\x30\x00", b"\x30\x03\x02\x01\x00", der.sequence(tbs()),
                der.sequence(der.sequence(), der.sequence())):
        with pytest.raises(FormatError):
            signature_algorithms(bad)
