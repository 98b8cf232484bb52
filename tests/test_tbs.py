"""The raw TBSCertificate reader agrees with cryptography on every certificate we have, and steps aside
(returns None) on anything it does not understand."""

from __future__ import annotations

import binascii

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from eaa.formats.der import encode_oid
from eaa.formats.tbs import BASIC_CONSTRAINTS, TbsFields, read_tbs
from eaa.sim import der
from eaa.verify.x509chain import pem_bodies, tbs_of

from _vectors import manifest, quote_bytes, require_vectors, vectors_dir


def _vector_certs() -> list[tuple[str, bytes]]:
    d = vectors_dir()
    if d is None:
        return []
    from eaa.formats.quote import parse_quote

    out: dict[bytes, str] = {}
    for v in manifest():
        try:
            q = parse_quote(quote_bytes(v))
        except Exception:  # parse-only vectors that fail are covered elsewhere
            continue
        if q.certification_data.cert_type == 5:
            for i, d_ in enumerate(map(binascii.a2b_base64, pem_bodies(q.certification_data.data))):
                out.setdefault(d_, f"{v['id']}#{i}")
    return [(name, d_) for d_, name in out.items()]


CERTS = _vector_certs()


def _sim_certs() -> list[x509.Certificate]:
    from eaa.sim import pki

    key = pki.derive_key(b"seed", "ca")
    from datetime import datetime, timezone

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ca = pki.make_ca(pki.name("EAA SIMULATION CA", "t"), key, None, key, 1, now, 1)
    leaf = pki.make_leaf(pki.name("leaf", "t"), pki.derive_key(b"seed", "leaf"), ca, key, 2, now,
                         [pki.sgx_extension(b"\x30\x00")])
    return [ca, leaf]


def _agree(cert: x509.Certificate) -> None:
    fields = read_tbs(tbs_of(cert.public_bytes(Encoding.DER)))
    assert fields is not None
    assert fields.subject == cert.subject.public_bytes()
    theirs = {encode_oid(e.oid.dotted_string): e for e in cert.extensions}
    assert set(fields.extensions) == set(theirs)
    for oid, (critical, value) in fields.extensions.items():
        ext = theirs[oid]
        assert critical == ext.critical
        raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else ext.value.public_bytes()
        assert value == raw
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    assert fields.basic_constraints_ca() == ca


@pytest.mark.parametrize("name, der_", CERTS or [("<no vectors>", b"")])
def test_agrees_with_cryptography_on_real_certificates(name: str, der_: bytes) -> None:
    require_vectors()
    _agree(x509.load_der_x509_certificate(der_))


def test_agrees_with_cryptography_on_simulated_certificates() -> None:
    for cert in _sim_certs():
        _agree(cert)


def bc(value: bytes) -> TbsFields:
    return TbsFields(b"", {BASIC_CONSTRAINTS: (True, value)})


@pytest.mark.parametrize("value, expected", [
    (der.sequence(der.boolean(True)), True),
    (der.sequence(der.boolean(True), der.integer(0)), True),
    (der.sequence(der.boolean(False)), False),
    (der.sequence(), False),
    (der.sequence(der.integer(3)), False),  # pathLenConstraint alone: cA defaults to FALSE
    (b"\x30\x81\x03\x01\x01\xff", None),  # long-form length: left to cryptography
    (b"\x04\x00", None),
    (b"", None),
])
def test_basic_constraints(value: bytes, expected: bool | None) -> None:
    assert bc(value).basic_constraints_ca() is expected


def test_absent_basic_constraints_is_not_a_ca() -> None:
    assert TbsFields(b"", {}).basic_constraints_ca() is False


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
    f = read_tbs(tbs(ext("2.5.29.19", der.sequence(der.boolean(True)), True), ext("1.2.3", b"v", False),
                     ext("1.2.4", b"w")))
    assert f is not None and f.subject == der.sequence(der.octet_string(b"subject"))
    assert f.extensions == {BASIC_CONSTRAINTS: (True, der.sequence(der.boolean(True))),
                            encode_oid("1.2.3"): (False, b"v"), encode_oid("1.2.4"): (False, b"w")}
    assert f.basic_constraints_ca() is True
    assert read_tbs(tbs()) == TbsFields(der.sequence(der.octet_string(b"subject")), {})


@pytest.mark.parametrize("data", [
    tbs(ext("1.2.3", b"v"), ext("1.2.3", b"w")),  # duplicate extension
    tbs(der.sequence(der.integer(1), der.octet_string(b"v"))),  # extnID not an OID
    tbs(der.sequence(der.oid("1.2.3"), der.integer(1))),  # extnValue not an OCTET STRING
    tbs(der.sequence(der.oid("1.2.3"), der.octet_string(b"v"), der.integer(1))),  # trailing element
    tbs(der.octet_string(b"not an extension")),
    tbs(subject=der.octet_string(b"not a name")),
])
def test_unexpected_layouts_return_none(data: bytes) -> None:
    assert read_tbs(data) is None
