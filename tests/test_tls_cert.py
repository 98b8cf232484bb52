"""Enclave-TLS certificates: DICE / legacy byte layout, CBOR quirks, lenient parsing (no sockets)."""

from __future__ import annotations

import hashlib
import struct
from datetime import datetime, timedelta, timezone

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from eaa.attest.null import NullAttester
from eaa.errors import UnsupportedQuoteFormat
from eaa.evidence import SGX_ECDSA, TDX_ECDSA
from eaa.sim import simulation_collateral
from eaa.tls import cert as certs
from eaa.tls.claims import decode_claims, encode_claims
from eaa.tls.crypto import OpenSslCrypto, crypto_wrappers
from eaa.tls.dice import (
    OID_ENDORSEMENT_MANIFEST,
    OID_TAGGED_EVIDENCE,
    TAG_SEV_SNP,
    cbor_head,
    classify_quote,
    decode_endorsements,
    decode_evidence,
    encode_endorsements,
    encode_evidence,
)
from eaa.tls.errors import ClaimsError, EvidenceFormatError, PeerCertificateError, UnknownEvidenceTag
from eaa.tls.peercert import parse_certificate
from eaa.tls.testing import FakeAttester, fake_sgx_quote, with_version_integer
from eaa.tls.wrappers import tls_wrappers
from eaa.verify.registry import verifiers

KNOWN_KEY = ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1())


def _spki(key) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(autouse=True)
def _sim_home(tmp_path, monkeypatch):
    monkeypatch.setenv("EAA_SIM_DIR", str(tmp_path / "sim"))
    monkeypatch.delenv("EAA_TRUST_SIMULATION", raising=False)


# ---------------- claims buffer ----------------
def test_claims_bytes_for_known_key_match_ratstls_layout():
    spki = _spki(KNOWN_KEY)
    assert len(spki) == 91
    h = hashlib.sha256(spki).digest()
    claims = encode_claims(spki)
    expected = bytes.fromhex("a1") + bytes.fromhex("6b") + b"pubkey-hash" + bytes.fromhex("5824 8201 5820") + h
    assert claims == expected
    assert len(claims) == 51


def test_claims_with_custom_claims_keep_insertion_order_and_nul():
    spki = _spki(KNOWN_KEY)
    claims = encode_claims(spki, {"key_0": b"value_0\0", "key_1": b"value_1\0"})
    assert claims[:1] == b"\xa3"
    assert claims[1:13] == b"\x6bpubkey-hash"
    tail = claims[13 + 2 + 36:]
    assert tail == b"\x65key_0\x48value_0\x00\x65key_1\x48value_1\x00"
    decoded = decode_claims(claims)
    assert dict(decoded.custom) == {"key_0": b"value_0\0", "key_1": b"value_1\0"}
    decoded.check_key(spki)


def test_claims_decoding_ignores_trailing_padding_but_hashes_it():
    spki = _spki(KNOWN_KEY)
    padded = encode_claims(spki).ljust(128, b"\xee")  # libcbor < 0.10 pads with heap bytes
    c = decode_claims(padded)
    assert c.raw == padded
    assert c.digest == hashlib.sha256(padded).digest() != hashlib.sha256(padded[:51]).digest()


@pytest.mark.parametrize("buf", [
    cbor2.dumps({"nope": b"x"}),                                   # no pubkey-hash
    cbor2.dumps({"pubkey-hash": b"\x82\x01\x41\x00"}),             # digest of the wrong size
    cbor2.dumps({"pubkey-hash": cbor2.dumps([2, b"\0" * 32])}),    # unknown hash algorithm
    cbor2.dumps({"pubkey-hash": cbor2.dumps([1, b"\0" * 32]), "k": "text"}),  # value not bstr
    cbor2.dumps({1: b"x"}),                                        # key not tstr
    cbor2.dumps([1, 2]),                                           # not a map
    bytes.fromhex("bf6b") + b"pubkey-hash" + bytes.fromhex("40ff"),  # indefinite map
    b"\xff\xff",
])
def test_bad_claims_buffers_are_rejected(buf):
    with pytest.raises(ClaimsError):
        decode_claims(buf)


# ---------------- evidence extension ----------------
def test_evidence_extension_heads_sgx():
    claims = encode_claims(_spki(KNOWN_KEY))
    quote = fake_sgx_quote(hashlib.sha256(claims).digest())
    ext = encode_evidence(60000, quote, claims)
    # tag(60000) array(2) bstr(436) | quote header: version 3, att_key_type 2
    assert ext[:11] == bytes.fromhex("d9ea60" "82" "5901b4" "0300" "0200")
    assert ext[3 + 1 + 3 + 436:3 + 1 + 3 + 436 + 2] == b"\x58\x33"
    assert ext.endswith(claims)
    assert len(ext) == 3 + 1 + 3 + 436 + 2 + 51
    te = decode_evidence(ext)
    assert (te.tag, te.evidence_type, te.evidence, te.claims) == (60000, SGX_ECDSA, quote, claims)


def test_evidence_extension_heads_snp_and_minimal_heads():
    ext = encode_evidence(TAG_SEV_SNP, b"\0" * 0x4A0, b"c")
    assert ext[:9] == bytes.fromhex("da001a7504 82 5904a0".replace(" ", ""))
    assert cbor_head(6, 60002) == bytes.fromhex("d9ea62")
    assert cbor_head(2, 23) == b"\x57" and cbor_head(2, 24) == b"\x58\x18"


def test_evidence_decoding_reads_only_the_first_item():
    ext = encode_evidence(60000, fake_sgx_quote(b""), b"claims") + b"\x00" * 300
    assert decode_evidence(ext).claims == b"claims"


@pytest.mark.parametrize("tag", [59999, 60003, 0x1A7507, 1, 55799])
def test_unknown_tags_are_rejected(tag):
    with pytest.raises(UnknownEvidenceTag):
        decode_evidence(cbor2.dumps(cbor2.CBORTag(tag, [b"q", b"c"])))


@pytest.mark.parametrize("value", [
    cbor2.dumps([b"q", b"c"]),                                    # untagged
    cbor2.dumps(cbor2.CBORTag(60000, [b"q"])),                    # one element
    cbor2.dumps(cbor2.CBORTag(60000, [b"q", "c"])),               # text claims
    bytes.fromhex("d9ea60 9f 41 71 41 63 ff".replace(" ", "")),  # indefinite array
    b"",
])
def test_malformed_evidence_extensions_are_rejected(value):
    with pytest.raises(EvidenceFormatError):
        decode_evidence(value)


def test_quote_classification_follows_ratstls():
    def hdr(version, akt, tee):
        return struct.pack("<HHI", version, akt, tee) + b"\0" * 40
    assert classify_quote(hdr(3, 2, 0)) == SGX_ECDSA
    assert classify_quote(hdr(4, 2, 0)) == SGX_ECDSA
    assert classify_quote(hdr(4, 2, 0x81)) == TDX_ECDSA
    for bad in (hdr(2, 0, 0), hdr(3, 0, 0), hdr(4, 2, 0x7)):
        with pytest.raises(UnsupportedQuoteFormat):
            classify_quote(bad)


# ---------------- endorsements ----------------
def test_endorsements_version_is_a_fixed_width_uint32_and_round_trips(tmp_path):
    coll = simulation_collateral("sgx", tmp_path / "sim")
    ext = encode_endorsements(coll, version=3)
    assert ext[:9] == bytes.fromhex("d9ea60 88 1a00000003".replace(" ", ""))
    items = cbor2.loads(ext[3:])
    assert len(items) == 8 and items[0] == 3 and all(isinstance(i, bytes) for i in items[1:])
    assert items[1].endswith(b"\x00") and items[1].startswith(b'{"tcbInfo":')
    back = decode_endorsements(ext)
    assert back.version == 3
    c = back.collateral
    assert (c.tcb_info, c.qe_identity, c.tcb_info_signature) == (coll.tcb_info, coll.qe_identity,
                                                                 coll.tcb_info_signature)
    assert (c.pck_crl, c.root_ca_crl) == (coll.pck_crl, coll.root_ca_crl)
    # the minimal-width version (what a naive encoder writes) is refused, as libcbor's parser does
    minimal = ext[:4] + b"\x03" + ext[9:]
    with pytest.raises(EvidenceFormatError):
        decode_endorsements(minimal)


# ---------------- DICE certificate ----------------
def test_dice_certificate_fields_and_extension_order():
    att = FakeAttester()
    creds = OpenSslCrypto().create_credentials(att, custom_claims={"key_0": b"value_0\0"})
    cert = creds.certificate
    assert cert.version == x509.Version.v3
    assert cert.serial_number == 1
    assert cert.subject == cert.issuer == certs.DICE_SUBJECT
    assert cert.subject.rfc4514_string() == "CN=RATS-TLS,O=Inclavare Containers"
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.signature_algorithm_oid.dotted_string == "1.2.840.10045.4.3.2"
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life == timedelta(days=365, hours=1)
    oids = [e.oid.dotted_string for e in cert.extensions]
    assert oids == ["2.5.29.19", "2.5.29.14", "2.5.29.35", OID_TAGGED_EVIDENCE]
    assert not any(e.critical for e in cert.extensions)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(OID_TAGGED_EVIDENCE)).value.value
    te = decode_evidence(ext)
    claims = decode_claims(te.claims)
    claims.check_key(_spki(creds.private_key))
    assert te.evidence[368:400] == hashlib.sha256(te.claims).digest()
    assert te.evidence[400:432] == b"\0" * 32
    assert att.calls == 1


def test_dice_certificate_with_sim_endorsements(tmp_path):
    from eaa.sim.attesters import SimSgxEcdsaAttester

    att = SimSgxEcdsaAttester(tmp_path / "sim")
    creds = OpenSslCrypto().create_credentials(att, endorsements=True)
    oids = [e.oid.dotted_string for e in creds.certificate.extensions]
    assert oids[-2:] == [OID_TAGGED_EVIDENCE, OID_ENDORSEMENT_MANIFEST]
    pc = parse_certificate(creds.der)
    ev = pc.extension(OID_TAGGED_EVIDENCE).value
    assert ev[:4] == bytes.fromhex("d9ea6082") and ev[4] == 0x59
    assert struct.unpack(">H", ev[5:7])[0] == len(decode_evidence(ev).evidence)
    assert decode_endorsements(pc.extension(OID_ENDORSEMENT_MANIFEST).value).collateral.tcb_info


def test_nullattester_dice_certificate_has_no_evidence_extension():
    creds = OpenSslCrypto().create_credentials(NullAttester())
    oids = [e.oid.dotted_string for e in creds.certificate.extensions]
    assert oids == ["2.5.29.19", "2.5.29.14", "2.5.29.35"]
    assert creds.evidence is None


# ---------------- legacy certificate ----------------
def test_legacy_certificate_fields_and_key_hash():
    creds = OpenSslCrypto().create_credentials(FakeAttester(), cert_format="legacy")
    cert = creds.certificate
    assert cert.serial_number == 9527
    assert cert.subject.rfc4514_string() == \
        "CN=Enclave TLS,OU=Enclave Attestation Architecture,O=Inclavare Containers"
    assert cert.public_key().key_size == 3072
    assert cert.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.11"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=3650)
    [ext] = list(cert.extensions)
    assert ext.oid.dotted_string == "1.2.840.113741.1337.6" and not ext.critical
    quote = ext.value.value
    pkcs1 = cert.public_key().public_bytes(Encoding.DER, PublicFormat.PKCS1)
    assert len(pkcs1) == 398
    assert quote[368:400] == hashlib.sha256(pkcs1).digest()
    assert quote[368:400] != hashlib.sha256(_spki(creds.private_key)).digest()


def test_legacy_version_integer_3_quirk_parses_and_self_signature_checks():
    creds = OpenSslCrypto().create_credentials(FakeAttester(), cert_format="legacy")
    quirk = with_version_integer(creds.der, 3, creds.private_key)
    with pytest.raises(x509.InvalidVersion):
        x509.load_der_x509_certificate(quirk)
    pc = parse_certificate(quirk)
    assert pc.version == 3 and pc.serial == 9527
    pc.check_self_signed()
    assert pc.extension("1.2.840.113741.1337.6").value == creds.evidence.data
    # a flipped signature byte is caught by the self-signature check
    broken = bytearray(quirk)
    broken[-5] ^= 1
    with pytest.raises(PeerCertificateError):
        parse_certificate(bytes(broken)).check_self_signed()


def test_parser_agrees_with_cryptography_on_a_normal_certificate():
    creds = OpenSslCrypto().create_credentials(FakeAttester())
    pc = parse_certificate(creds.der)
    c = creds.certificate
    assert pc.version == 2
    assert pc.not_before == c.not_valid_before_utc and pc.not_after == c.not_valid_after_utc
    assert pc.spki == _spki(creds.private_key)
    assert [e.oid for e in pc.extensions] == [e.oid.dotted_string for e in c.extensions]
    pc.check_self_signed()
    with pytest.raises(PeerCertificateError):
        parse_certificate(creds.der + b"\0")


def test_certificate_times_are_checked():
    key = certs.generate_key(certs.EC_P256)
    then = datetime(2020, 1, 1, tzinfo=timezone.utc)
    c = certs.build_dice_certificate(key, now=then)
    pc = parse_certificate(c.public_bytes(Encoding.DER))
    pc.check_validity(then)
    from eaa.tls.errors import CertificateExpired, CertificateNotYetValid
    with pytest.raises(CertificateExpired):
        pc.check_validity(then + timedelta(days=366))
    with pytest.raises(CertificateNotYetValid):
        pc.check_validity(then - timedelta(hours=2))


# ---------------- registries ----------------
def test_registries_have_the_original_names_and_priorities():
    pri = {e.name: e.priority for e in verifiers.ordered()}
    assert pri == {"nullverifier": 0, "sgx_la": 15, "csv": 20, "sev": 35, "tdx_ecdsa": 42, "sev_snp": 42,
                   "sgx_ecdsa": 52, "sgx_ecdsa_qve": 53}
    assert verifiers.names()[:2] == ["sgx_ecdsa_qve", "sgx_ecdsa"]
    assert {e.name: (e.priority, e.auto) for e in tls_wrappers.ordered()} == {"openssl": (25, True),
                                                                              "nulltls": (0, False)}
    assert {e.name: e.priority for e in crypto_wrappers.ordered()} == {"openssl": 25, "nullcrypto": 0}
    assert tls_wrappers.select().name == "openssl"  # nulltls is never chosen automatically
    assert crypto_wrappers.select().name == "openssl"
    assert verifiers.select("sgx_ecdsa_qve").evidence_types == (SGX_ECDSA, TDX_ECDSA)  # cross-TEE, rats-tls #162
    assert verifiers.select("tdx_ecdsa").evidence_types == (TDX_ECDSA,)


def test_sgx_la_verifier_is_unsupported_and_sev_snp_rejects_garbage():
    from eaa.errors import FormatError, UnsupportedEvidence

    with pytest.raises(UnsupportedEvidence):
        verifiers.select("sgx_la").verify_evidence(b"x", evidence_type="sgx_la", report_data_hash=None,
                                                   collateral=None, at=datetime.now(timezone.utc))
    with pytest.raises(FormatError):
        verifiers.select("sev_snp", kds=False).verify_evidence(b"x", evidence_type="sev_snp", report_data_hash=None,
                                                               collateral=None, at=datetime.now(timezone.utc))


def test_custom_claims_cannot_override_pubkey_hash():
    from eaa.errors import ConfigError

    with pytest.raises(ConfigError):
        encode_claims(_spki(KNOWN_KEY), {"pubkey-hash": b"x"})
