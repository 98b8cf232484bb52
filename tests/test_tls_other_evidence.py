"""Evidence rats-tls parses but eaa cannot verify (CSV 0x1a7506, SEV 0x1a7505, Intel TEE report 60001):
accepted with its claims under a named nullverifier, as rats-tls does, and refused with the reason by
any other verifier (automatic, by type, or named)."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from eaa.errors import PolicyViolation, UnsupportedEvidence
from eaa.formats.csv_report import parse_csv_report
from eaa.policy import Policy
from eaa.tls.cert import LEGACY_SUBJECT, OID_LEGACY_CSV, OID_LEGACY_SEV, build_dice_certificate, spki_der
from eaa.tls.claims import encode_claims
from eaa.tls.dice import TAG_CSV, TAG_SEV, TAG_TEE_REPORT, encode_evidence
from eaa.tls.errors import UnsupportedEvidenceType
from eaa.tls.peer import PeerVerifier

ANONCE = 0xA5C3_0F91
VM_ID, VM_VERSION, MEASURE, POLICY = b"\x01" * 16, b"\x02" * 16, bytes(range(32)), 0x3


def csv_evidence(user_data: bytes) -> bytes:
    """A csv_evidence (report + HSK/CEK certificates) whose masked fields are XORed with ANONCE, as Hygon's
    firmware does."""
    clear = bytearray(0xBC)
    clear[0x20:0x30], clear[0x30:0x40] = VM_ID, VM_VERSION
    clear[0x40:0x80] = user_data.ljust(64, b"\x00")
    clear[0x90:0xB0] = MEASURE
    clear[0xB0:0xB4] = struct.pack("<I", POLICY)
    mask = struct.pack("<I", ANONCE)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(clear))
    report = masked + mask + bytes(4096 - 0xC0)
    return report + b"\xcc" * (832 + 2084)


def dice_cert(tag: int, make_evidence) -> bytes:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1())
    claims = encode_claims(spki_der(key), {"key_0": b"value_0\x00"})
    evidence = make_evidence(hashlib.sha256(claims).digest())
    cert = build_dice_certificate(key, evidence_extension=encode_evidence(tag, evidence, claims))
    return cert.public_bytes(Encoding.DER)


def legacy_cert(oid: str, evidence: bytes) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(LEGACY_SUBJECT).issuer_name(LEGACY_SUBJECT)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), evidence), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.DER)


CASES = [
    ("csv", TAG_CSV, csv_evidence, "Hygon CSV"),
    ("sev", TAG_SEV, lambda rd: b"\x5e" * 2000, "SEV\\(-ES\\)"),  # sev_evidence_t: nothing rats-tls reads from it
    ("tee_report", TAG_TEE_REPORT, lambda rd: b"\x81" * 1024, "Intel TEE report"),
]


@pytest.mark.parametrize(("etype", "tag", "make", "reason"), CASES, ids=[c[0] for c in CASES])
def test_accepted_with_claims_under_nullverifier(etype: str, tag: int, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    der = dice_cert(tag, make)
    peer = PeerVerifier(verifier="nullverifier").verify_certificate(der)
    assert peer.evidence_type == etype and peer.cert_format == "dice"
    assert dict(peer.claims) == {"key_0": b"value_0\x00"}
    assert peer.result.status == "NotVerified" and peer.result.tee == "none"
    if etype == "csv":  # the fields rats-tls's callback gets, the anonce mask removed
        assert dict(peer.result.measurements) == {"vm_id": VM_ID.hex(), "vm_version": VM_VERSION.hex(),
                                                  "measure": MEASURE.hex(), "policy": POLICY}
    else:
        assert dict(peer.result.measurements) == {}
    # reference values never match unverified claims: NotVerified is not an accepted status
    with pytest.raises(PolicyViolation, match="NotVerified"):
        Policy.from_mapping({"reference": {"measurement": "00" * 48}}).check(peer.result)


@pytest.mark.parametrize(("etype", "tag", "make", "reason"), CASES, ids=[c[0] for c in CASES])
def test_refused_by_every_other_verifier(etype: str, tag: int, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    der = dice_cert(tag, make)
    for named in (None, "sev_snp", "sgx_ecdsa", "csv", "sev"):
        with pytest.raises(UnsupportedEvidenceType, match=reason):
            PeerVerifier(verifier=named).verify_certificate(der)


@pytest.mark.parametrize(("oid", "etype"), [(OID_LEGACY_CSV, "csv"), (OID_LEGACY_SEV, "sev")])
def test_legacy_oids(oid: str, etype: str) -> None:
    der = legacy_cert(oid, csv_evidence(b"") if etype == "csv" else b"\x5e" * 100)
    assert PeerVerifier(verifier="nullverifier").verify_certificate(der).evidence_type == etype
    with pytest.raises(UnsupportedEvidenceType, match="nullverifier"):
        PeerVerifier().verify_certificate(der)


def test_named_csv_and_sev_verifiers_refuse_with_the_reason() -> None:
    from eaa.verify.registry import verifiers

    for name in ("csv", "sev"):
        with pytest.raises(UnsupportedEvidence, match="cannot be verified"):
            verifiers.select(name).verify_evidence(b"x", evidence_type=name)


def test_csv_report_fields() -> None:
    r = parse_csv_report(csv_evidence(b"\x07" * 32))
    assert (r.vm_id, r.vm_version, r.measure, r.policy, r.anonce) == (VM_ID, VM_VERSION, MEASURE, POLICY, ANONCE)
    assert r.user_data == b"\x07" * 32 + bytes(32)
    short = parse_csv_report(b"\x01\x02")  # rats-tls copies evidence into a zeroed buffer: missing bytes read as 0
    assert short.anonce == 0 and short.vm_id == bytes(16)
