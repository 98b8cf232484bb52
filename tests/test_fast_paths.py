"""The shortcuts a cold verification takes agree with the general readers they stand in for, and step
aside (the general reader decides, with its error) on anything they were not written for."""

from __future__ import annotations

import binascii
import json
from datetime import datetime, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _vectors import anchors, collateral, get_vector, require_vectors
from eaa.collateral.bundle import Collateral, crl_to_der
from eaa.collateral.validate import validate_enclave_identity, validate_tcb_info
from eaa.errors import FormatError
from eaa.formats import signed_json
from eaa.formats.signed_json import DecodedText, join_signed, split_signed, top_level_spans
from eaa.formats.tcb_info import TcbInfo
from eaa.pki.chain import CheckedCrl
from eaa.pki.trust import default_anchors
from eaa.tls.errors import PeerCertificateError
from eaa.tls.peercert import _parse_time
from eaa.tls.testing import self_signed_der

SIG = "ab" * 64


def _strict(text: str, key: str) -> tuple[str, bytes]:
    """What split_signed returned before it had a shortcut: the spans of the strict reader."""
    spans = top_level_spans(text, key)
    return text[slice(*spans[key])], bytes.fromhex(json.loads(text[slice(*spans["signature"])]))


@pytest.mark.parametrize("text", [
    '{"tcbInfo":{"a":1},"signature":"' + SIG + '"}',
    '{"tcbInfo":{"a":"x,\\"signature\\":\\"y"},"signature":"' + SIG + '"}',  # the member text inside a string
    '{"tcbInfo":{"a":[1,{"b":null}]},"signature":"' + SIG + '"}',
    '{"tcbInfo": {"a":1}, "signature": "' + SIG + '"}',  # spaced: the strict reader's business
    '{"signature":"' + SIG + '","tcbInfo":{"a":1}}',  # other order: likewise
    '{"tcbInfo":{"a":1},"signature":"' + SIG + '\\n"}',  # an escape in the signature: likewise
])
def test_split_signed_agrees_with_the_strict_reader(text: str) -> None:
    assert split_signed(text, "tcbInfo") == _strict(text, "tcbInfo")


@pytest.mark.parametrize("text, message", [
    ('{"tcbInfo":{"a":1},"signature":"aa","signature":"' + SIG + '"}', "duplicate JSON key"),
    ('{"tcbInfo":{"a":1}},"signature":"' + SIG + '"}', "trailing data"),
    ('{"tcbInfo":{"a":1,"signature":"' + SIG + '"}', "not valid JSON"),
    ('{"tcbInfo":{"a":1},"signature":"' + SIG[:-2] + ' a"}', "not hex"),
    ('{"tcbInfo":{"a":1},"signature":"' + SIG[:-2] + '"}', "64 bytes"),
])
def test_split_signed_refuses_what_the_strict_reader_refuses(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        split_signed(text, "tcbInfo")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8),
       st.sampled_from(["", " ", "\n"]))
def test_split_signed_any_body(body_obj: object, space: str) -> None:
    body = json.dumps({"v": body_obj}, separators=(",", ":"))
    text = '{"tcbInfo":' + space + body + ',"signature":"' + SIG + '"}'
    got = split_signed(text, "tcbInfo")
    assert got == _strict(text, "tcbInfo")
    if type(got[0]) is DecodedText:  # the compact layout: the value it carries is the body's
        assert got[0].value == json.loads(body)
    joined = join_signed("tcbInfo", body, bytes.fromhex(SIG))  # the inverse, in the compact layout
    assert split_signed(joined, "tcbInfo") == (body, bytes.fromhex(SIG))
    assert type(split_signed(joined, "tcbInfo")[0]) is DecodedText


def _responses(vid: str) -> tuple[Collateral, str, str]:
    require_vectors()
    c, _ = collateral(get_vector(vid))
    return (c, join_signed("tcbInfo", c.tcb_info, c.tcb_info_signature),
            join_signed("enclaveIdentity", c.qe_identity, c.qe_identity_signature))


def test_signed_collateral_is_decoded_once_from_response_to_checked_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """The split decodes the inner object to find where it ends; checking its signature and reading it
    then takes that value (a cold TLS peer check decoded its peer's TCB info and QE identity twice)."""
    c, tcb_response, qe_response = _responses("dcap-qvl/tdx_v4")
    trusted = anchors(get_vector("dcap-qvl/tdx_v4")) or default_anchors()
    decoded: list[str] = []
    real_loads = signed_json.json.loads

    def counting(text: str | bytes, *args: object, **kwargs: object) -> object:
        decoded.append(text if isinstance(text, str) else text.decode())
        return real_loads(text, *args, **kwargs)

    monkeypatch.setattr(signed_json.json, "loads", counting)
    info = validate_tcb_info(tcb_response, c.tcb_info_issuer_chain, trusted)
    ident = validate_enclave_identity(qe_response, c.qe_identity_issuer_chain, trusted)
    assert decoded.count(c.tcb_info) == 1 and decoded.count(c.qe_identity) == 1
    monkeypatch.setattr(signed_json.json, "loads", real_loads)
    # the same values as decoding the authenticated bytes afresh
    assert info == TcbInfo.from_body(c.tcb_info.encode(), c.tcb_info_signature, authenticated=True)
    assert ident.tcb_levels and ident.mrsigner.hex() in c.qe_identity.lower()
    # collateral assembled from PCS responses (a peer's endorsements extension) keeps the decoded values
    parts = Collateral.from_pcs_parts(tcb_info_response=tcb_response, qe_identity_response=qe_response,
                                      tcb_info_issuer_chain=c.tcb_info_issuer_chain)
    assert type(parts.tcb_info) is DecodedText and type(parts.qe_identity) is DecodedText
    assert parts.tcb_info == c.tcb_info


def test_a_decoded_value_stands_in_only_for_authenticated_text() -> None:
    """Unauthenticated text is parsed strictly whatever it carries: the duplicate key the compact split's
    decoder let through is refused."""
    text = '{"tcbInfo":{"version":3,"version":2},"signature":"' + SIG + '"}'
    body, sig = split_signed(text, "tcbInfo")
    assert type(body) is DecodedText and body.value == {"version": 2}
    with pytest.raises(FormatError, match="duplicate JSON key 'version'"):
        TcbInfo.from_body(body, sig)


def _vector_crls() -> list[bytes]:
    require_vectors()
    c, _ = collateral(get_vector("dcap-qvl/tdx_v4"))
    return [d for d in (c.root_ca_crl, c.pck_crl) if d]


def _pem(der: bytes, label: bytes = b"X509 CRL", width: int = 64) -> bytes:
    body = binascii.b2a_base64(der, newline=False)
    lines = b"\n".join(body[i:i + width] for i in range(0, len(body), width))
    return b"-----BEGIN " + label + b"-----\n" + lines + b"\n-----END " + label + b"-----\n"


def test_pem_crl_is_decoded_to_the_der_cryptography_would_write() -> None:
    for der in _vector_crls():
        for pem in (_pem(der), _pem(der, width=76), _pem(der).replace(b"\n", b"\r\n")):
            assert crl_to_der(pem, "crl") == der == x509.load_pem_x509_crl(pem).public_bytes(Encoding.DER)


def test_pem_crl_that_is_not_one_clean_block_takes_the_full_reader() -> None:
    der = _vector_crls()[-1]
    bad_base64 = _pem(der).replace(b"\n", b"\n*", 1)
    with pytest.raises(FormatError, match="not valid PEM"):
        crl_to_der(bad_base64, "crl")
    with pytest.raises(FormatError, match="not valid PEM"):
        crl_to_der(_pem(der[:-1]), "crl")  # base64 of a truncated CRL: not one DER SEQUENCE
    with pytest.raises(FormatError, match="not valid PEM"):
        crl_to_der(_pem(der, b"CERTIFICATE"), "crl")
    two = _pem(der) + _pem(der)
    assert crl_to_der(two, "crl") == der  # cryptography reads the first block, as before


def test_revocation_lookup_finds_every_listed_serial_and_no_other() -> None:
    der = _vector_crls()[-1]
    crl = x509.load_der_x509_crl(der)
    assert len(crl) > 1
    checked = CheckedCrl(crl.last_update_utc, crl.next_update_utc, crl)
    serials = [r.serial_number for r in crl]
    assert all(checked.is_revoked(s) for s in serials)
    assert not checked.is_revoked(max(serials) + 1)
    assert not CheckedCrl(crl.last_update_utc, crl.next_update_utc).is_revoked(serials[0])


@pytest.mark.parametrize("tag, text, when", [
    (0x17, b"240101120000Z", datetime(2024, 1, 1, 12, tzinfo=timezone.utc)),
    (0x17, b"491231235959Z", datetime(2049, 12, 31, 23, 59, 59, tzinfo=timezone.utc)),
    (0x17, b"500101000000Z", datetime(1950, 1, 1, tzinfo=timezone.utc)),
    (0x18, b"20991231235959Z", datetime(2099, 12, 31, 23, 59, 59, tzinfo=timezone.utc)),
])
def test_certificate_times(tag: int, text: bytes, when: datetime) -> None:
    assert _parse_time(tag, text) == when


@pytest.mark.parametrize("tag, text", [
    (0x17, b"2401011200Z"), (0x17, b"241301120000Z"), (0x17, b"240230120000Z"), (0x17, b"2401 1120000Z"),
    (0x17, b"24010112000+Z"), (0x17, b"240101120060Z"), (0x17, b"240101120000+0000"),
    (0x18, b"240101120000Z"), (0x18, b"2024010112000Z0"), (0x04, b"240101120000Z"),
])
def test_malformed_certificate_times(tag: int, text: bytes) -> None:
    with pytest.raises(PeerCertificateError, match="malformed"):
        _parse_time(tag, text)


@pytest.mark.parametrize("kind", ["p256", "p384", "rsa"])
def test_peer_public_key_is_the_key_the_serialization_package_loads(kind: str) -> None:
    """An uncompressed P-256 key is read from its point (the one fixed SPKI encoding); others by cryptography."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import PublicFormat, load_der_public_key

    from eaa.tls.peercert import parse_certificate

    key = {"p256": lambda: ec.generate_private_key(ec.SECP256R1()),
           "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
           "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)}[kind]()
    peer = parse_certificate(self_signed_der(key))
    loaded = peer.public_key()
    assert loaded.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == peer.spki
    assert loaded.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == \
        load_der_public_key(peer.spki).public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    peer.check_self_signed()


def test_a_p256_point_off_the_curve_is_refused() -> None:
    import dataclasses

    from cryptography.hazmat.primitives.asymmetric import ec

    from eaa.tls.peercert import parse_certificate

    peer = parse_certificate(self_signed_der(ec.generate_private_key(ec.SECP256R1())))
    bad = peer.spki[:-1] + bytes([peer.spki[-1] ^ 1])  # y changed: no longer on the curve
    with pytest.raises(PeerCertificateError, match="public key cannot be loaded"):
        dataclasses.replace(peer, spki=bad).public_key()
