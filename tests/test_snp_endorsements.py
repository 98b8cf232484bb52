"""SEV-SNP certificates travel with the evidence: the host's certificate table (and the simulated platform's
CRL) in the Enclave-TLS endorsements extension and in the EAA protocol relay. The verifier uses them with
no certificates on disk and no KDS, but trusts only its own ARK: a chain an attacker put in the evidence
fails, each way with its own check."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _checks import fails
from eaa.attest.snp import SevSnpAttester
from eaa.checks import Check
from eaa.errors import (
    CertificateChainError,
    CrlError,
    EaaError,
    FormatError,
    InvalidSignature,
    ProtocolError,
    UntrustedRoot,
)
from eaa.evidence import SEV_SNP, Evidence
from eaa.formats.snp_certs import ARK_GUID, ASK_GUID, VCEK_GUID, SnpEndorsements, build_cert_table, parse_cert_table
from eaa.formats.snp_report import TcbVersion
from eaa.pki.trust import TrustAnchor
from eaa.services import protocol
from eaa.services.workload import v2_response
from eaa.sim.snp import SimSnpPlatform, init_snp_platform
from eaa.sim.snp_attester import SimSevSnpAttester
from eaa.timeutil import utc_now
from eaa.tls.crypto import OpenSslCrypto
from eaa.tls.dice import OID_ENDORSEMENT_MANIFEST, TAG_SEV_SNP, TAG_SGX_TDX_QUOTE
from eaa.tls.errors import EvidenceFormatError
from eaa.tls.peer import PeerVerifier
from eaa.tls.peercert import parse_certificate
from eaa.tls.snp_endorsements import decode_snp_endorsements, encode_snp_endorsements
from eaa.verify.registry import verifiers
from eaa.verify.snp_verifier import SevSnpVerifier
from test_snp_support import PSS, VekSpec, build_report, ca_cert, der, make_pki, rsa_key


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimSnpPlatform:
    return init_snp_platform(tmp_path_factory.mktemp("snp-endorse") / "sim")


@pytest.fixture(scope="module")
def nowhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulator directory with no platform: the verifier has no certificates on disk."""
    return tmp_path_factory.mktemp("no-sim")


def _verifier(anchor: TrustAnchor | None, nowhere: Path, **kw: object) -> SevSnpVerifier:
    """No KDS (kds=False: nothing can be fetched), no simulated platform, only the given ARK trusted."""
    v = verifiers.select("sev_snp", kds=False, amd_anchors=None if anchor is None else [anchor], **kw)
    assert isinstance(v, SevSnpVerifier)
    return v


def _anchor(sim: SimSnpPlatform) -> TrustAnchor:
    return TrustAnchor(sim.ark, "the simulated ARK, given as an input", simulated=True)


def test_sim_attester_carries_the_table_and_crl(sim: SimSnpPlatform, nowhere: Path) -> None:
    ev = SimSevSnpAttester(platform=sim, measurement=b"\x42" * 48).collect_evidence(b"\x01" * 32)
    assert isinstance(ev.collateral, SnpEndorsements)
    assert [e.name for e in ev.collateral.table.entries] == ["vcek", "ask", "ark"]
    assert ev.collateral.crls == (sim.crl,)
    res = _verifier(_anchor(sim), nowhere).verify_evidence(ev.data, collateral=ev.collateral, at=utc_now(),
                                                           report_data_hash=b"\x01" * 32)
    assert res.details["collateral_source"] == "evidence"
    assert res.details["revocation"].startswith("checked") and res.simulated
    # the same evidence without its certificates: nothing on disk, no KDS
    with pytest.raises(Exception, match="no KDS"):
        _verifier(_anchor(sim), nowhere).verify_evidence(ev.data, at=utc_now())


def test_real_attester_puts_the_hosts_table_in_its_evidence(sim: SimSnpPlatform) -> None:
    table = build_cert_table([(VCEK_GUID, der(sim.vcek)), (ASK_GUID, der(sim.ask))])

    class Tsm:
        def report(self, rd: bytes, read_auxblob: bool = False):  # type: ignore[no-untyped-def]
            class R:
                outblob = sim.report(rd, sim.guest(measurement=bytes(48)))
                auxblob = table
            return R()

    att = SevSnpAttester(tsm=Tsm())  # type: ignore[arg-type]
    ev = att.collect_evidence(b"\x07" * 64)
    assert isinstance(ev.collateral, SnpEndorsements) and ev.collateral.table.raw == table
    assert ev.collateral.crls == ()  # a real host supplies no CRL: the verifier fetches it (or --no-crl)
    bad = SevSnpAttester(tsm=type("T", (), {"report": lambda self, rd, read_auxblob=False: type(  # type: ignore[misc]
        "R", (), {"outblob": sim.report(rd, sim.guest(measurement=bytes(48))), "auxblob": table[:30]})()})())
    assert bad.collect_evidence(b"\x07" * 64).collateral is None  # a host's malformed table is dropped


def _attacker_evidence(chip_id: bytes, *, with_ark: bool = True):  # type: ignore[no-untyped-def]
    """A report signed by the attacker's own VCEK, with the attacker's chain (AMD's names) in the evidence."""
    pki = make_pki("Milan")
    key = ec.generate_private_key(ec.SECP384R1())
    tcb = TcbVersion("Milan", bl=3, tee=0, snp=8, ucode=115)
    vek, _ = pki.vek(VekSpec(key=key, tcb=tcb, hwid=chip_id))
    entries = [(VCEK_GUID, der(vek)), (ASK_GUID, der(pki.ask))] + ([(ARK_GUID, der(pki.ark))] if with_ark else [])
    report = build_report(key, reported_tcb=tcb, chip_id=chip_id, report_data=RD)
    return report, SnpEndorsements(parse_cert_table(build_cert_table(entries))), pki


RD = b"\x01" * 32 + bytes(32)


def test_an_attackers_chain_in_the_evidence_is_refused(sim: SimSnpPlatform, nowhere: Path) -> None:
    report, carried, pki = _attacker_evidence(sim.chip_id)
    for anchor in (_anchor(sim), None):  # the simulated ARK, or AMD's pinned ARKs: never the evidence's own
        with fails(Check.SNP_ARK_TRUSTED, UntrustedRoot):
            _verifier(anchor, nowhere, check_crl=False).verify_evidence(report, collateral=carried, at=utc_now())
    # without its ARK, the attacker's ASK names a trusted ARK (called ARK-Milan too) that did not sign it
    report, carried, _ = _attacker_evidence(bytes(range(64)), with_ark=False)
    other = ca_cert("ARK-Milan", rsa_key(7), "ARK-Milan", rsa_key(7))
    assert other.subject == pki.ark.subject
    with fails(Check.SNP_ARK_TRUSTED, UntrustedRoot):
        _verifier(TrustAnchor(other, "trusted"), nowhere, check_crl=False).verify_evidence(
            report, collateral=carried, at=utc_now())


def test_a_vcek_the_trusted_ask_did_not_sign_is_refused(sim: SimSnpPlatform, nowhere: Path) -> None:
    """The genuine ARK, ASK and CRL, and a VCEK the attacker issued under the ASK's exact name."""
    key = ec.generate_private_key(ec.SECP384R1())
    b = (x509.CertificateBuilder().subject_name(sim.vcek.subject).issuer_name(sim.vcek.issuer)
         .public_key(key.public_key()).serial_number(7)
         .not_valid_before(sim.vcek.not_valid_before_utc).not_valid_after(sim.vcek.not_valid_after_utc))
    for ext in sim.vcek.extensions:
        b = b.add_extension(ext.value, ext.critical)
    forged = b.sign(rsa_key(8), hashes.SHA384(), rsa_padding=PSS)
    report = build_report(key, version=4, reported_tcb=TcbVersion.decode(sim.tcb, "Milan"), chip_id=sim.chip_id,
                          report_data=RD)
    carried = SnpEndorsements(parse_cert_table(build_cert_table(
        [(VCEK_GUID, der(forged)), (ASK_GUID, der(sim.ask)), (ARK_GUID, der(sim.ark))])), (sim.crl,))
    with fails(Check.SNP_VEK_SIGNATURE, InvalidSignature):
        _verifier(_anchor(sim), nowhere).verify_evidence(report, collateral=carried, at=utc_now())


# ---------------- the endorsements extension ----------------

def _carried(sim: SimSnpPlatform) -> SnpEndorsements:
    ev = SimSevSnpAttester(platform=sim, measurement=bytes(48)).collect_evidence(b"")
    assert isinstance(ev.collateral, SnpEndorsements)
    return ev.collateral


def test_extension_round_trip_and_exact_bytes(sim: SimSnpPlatform) -> None:
    carried = _carried(sim)
    value = encode_snp_endorsements(carried)
    # tag 0x1A7504, array(3), version as a fixed-width uint32, then the two byte strings
    assert value[:11] == bytes.fromhex("da001a7504" "83" "1a00000001")
    assert list(cbor2.loads(value).value[1:]) == [carried.table.raw, sim.crl]
    back = decode_snp_endorsements(value)
    assert back.table.raw == carried.table.raw and back.crls == (sim.crl,)
    empty = decode_snp_endorsements(encode_snp_endorsements(SnpEndorsements(parse_cert_table(b""))))
    assert empty.empty


def _ext(version: bytes, *items: object, tag: int = TAG_SEV_SNP) -> bytes:
    from eaa.tls.dice import cbor_head

    return cbor_head(6, tag) + cbor_head(4, 1 + len(items)) + version + b"".join(cbor2.dumps(i) for i in items)


def test_malformed_extension_gives_typed_errors(sim: SimSnpPlatform) -> None:
    raw = _carried(sim).table.raw
    v1 = bytes.fromhex("1a00000001")
    for bad in (b"", b"\xff\x00", _ext(v1, raw, b"", tag=TAG_SGX_TDX_QUOTE), _ext(bytes.fromhex("01"), raw, b""),
                _ext(bytes.fromhex("1a00000002"), raw, b""), _ext(v1, raw), _ext(v1, "text", b""),
                _ext(v1, raw, b"")[:-40]):
        with fails(Check.SNP_ENDORSEMENTS, EvidenceFormatError):
            decode_snp_endorsements(bad)
    # a well-formed extension whose certificate table is truncated, or garbage
    for table in (raw[:40], raw[:-100], b"\x13" * 200):
        with fails(Check.SNP_CERT_TABLE, FormatError):
            decode_snp_endorsements(_ext(v1, table, b""))
    # a table whose entries parse but whose certificates are garbage: typed when the verifier reads them
    junk = build_cert_table([(VCEK_GUID, b"\x30\x03junk"), (ASK_GUID, b"nothing")])
    with fails(Check.SNP_CERT_TABLE, FormatError):
        SevSnpVerifier(kds=False).verify_evidence(SimSevSnpAttester(platform=sim, measurement=bytes(48))
                                                  .collect_evidence(b"").data,
                                                  collateral=decode_snp_endorsements(_ext(v1, junk, b"")),
                                                  at=utc_now())


def test_tls_certificate_carries_them_with_e_and_verifies_with_no_kds(sim: SimSnpPlatform, nowhere: Path) -> None:
    attester = SimSevSnpAttester(platform=sim, measurement=b"\x42" * 48)
    plain = OpenSslCrypto().create_credentials(attester)
    assert parse_certificate(plain.der).extension(OID_ENDORSEMENT_MANIFEST) is None  # rats-tls peers refuse them
    creds = OpenSslCrypto().create_credentials(attester, endorsements=True)
    ext = parse_certificate(creds.der).extension(OID_ENDORSEMENT_MANIFEST)
    assert ext is not None and not ext.critical
    pv = PeerVerifier(verifier="sev_snp", trust_anchors=[_anchor(sim)], sim_dir=nowhere,
                      verifier_options={"kds": False})
    peer = pv.verify_certificate(creds.der)
    assert peer.collateral_from == "endorsements" and peer.result.details["collateral_source"] == "evidence"
    with pytest.raises(Exception, match="no KDS"):  # without them: nothing on disk and no KDS
        PeerVerifier(verifier="sev_snp", trust_anchors=[_anchor(sim)], sim_dir=nowhere,
                     verifier_options={"kds": False}).verify_certificate(plain.der)


# ---------------- the protocol relay ----------------

def test_relay_carries_them_and_refuses_malformed_ones(sim: SimSnpPlatform, nowhere: Path) -> None:
    nonce = b"\x05" * 32
    line = v2_response(SimSevSnpAttester(platform=sim, measurement=bytes(48)), None, nonce)
    obj = json.loads(line)
    assert obj["collateral"] is None and set(obj["snp_certificates"]) == {"cert_table", "crls"}
    w = protocol.WorkloadEvidence.from_workload_reply(line, None)
    assert isinstance(w.collateral, SnpEndorsements)
    relayed = protocol.WorkloadEvidence.from_obj(json.loads(json.dumps(w.to_obj())))  # inclavared -> shelter
    assert relayed.collateral == w.collateral
    res = relayed.verify(_verifier(_anchor(sim), nowhere), nonce, at=utc_now())
    assert res.details["collateral_source"] == "evidence"

    def with_certs(value: object, etype: str = SEV_SNP) -> bytes:
        o = dict(obj, snp_certificates=value, evidence_type=etype)
        return json.dumps(o).encode()

    table = base64.b64decode(obj["snp_certificates"]["cert_table"])
    for bad_table in (table[:50], b"\x99" * 64):
        with fails(Check.SNP_CERT_TABLE, ProtocolError):
            protocol.WorkloadEvidence.from_workload_reply(
                with_certs({"cert_table": base64.b64encode(bad_table).decode(), "crls": []}), None)
    for bad in ("x", {"cert_table": "not base64!"}, {"cert_table": "", "crls": "x"},
                {"cert_table": "", "crls": [""] * 9}):
        with pytest.raises(ProtocolError):
            protocol.WorkloadEvidence.from_workload_reply(with_certs(bad), None)
    with pytest.raises(ProtocolError, match="only with sev_snp"):
        protocol.WorkloadEvidence.from_workload_reply(with_certs(obj["snp_certificates"], "sgx_ecdsa"), None)


def test_evidence_without_certificates_still_relays() -> None:
    ev = Evidence(SEV_SNP, b"r", bytes(64))
    assert protocol.endorsements_obj(ev.collateral) == {"collateral": None}


def test_a_crl_that_came_with_the_evidence_is_checked(sim: SimSnpPlatform, nowhere: Path,
                                                       tmp_path: Path) -> None:
    ev = SimSevSnpAttester(platform=sim, measurement=bytes(48)).collect_evidence(b"")
    assert isinstance(ev.collateral, SnpEndorsements)
    other = init_snp_platform(tmp_path / "other")
    for crls, kind in (((b"garbage",), FormatError), ((other.crl,), CrlError)):  # not the trusted ARK's CRL
        with pytest.raises(kind):
            _verifier(_anchor(sim), nowhere).verify_evidence(
                ev.data, collateral=SnpEndorsements(ev.collateral.table, crls), at=utc_now())
    revoking = init_snp_platform(tmp_path / "revoked", revoke_ask=True)
    ev = SimSevSnpAttester(platform=revoking, measurement=bytes(48)).collect_evidence(b"")
    with pytest.raises(CertificateChainError, match="revoked"):
        _verifier(_anchor(revoking), nowhere).verify_evidence(ev.data, collateral=ev.collateral, at=utc_now())


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=400))
def test_garbage_never_escapes_as_an_untyped_error(data: bytes) -> None:
    v1 = bytes.fromhex("1a00000001")
    for decode in (decode_snp_endorsements, lambda b: decode_snp_endorsements(_ext(v1, b, b"")),
                   lambda b: protocol.parse_snp_certificates({"cert_table": base64.b64encode(b).decode()})):
        try:
            decode(data)
        except EaaError:
            pass


def test_an_ask_the_trusted_ark_did_not_sign_is_refused(sim: SimSnpPlatform, nowhere: Path) -> None:
    """The genuine ARK, an ASK the attacker made under the genuine ASK's name, and a VCEK it signed."""
    ask_key, vek_key = rsa_key(9), ec.generate_private_key(ec.SECP384R1())

    def copy(cert: x509.Certificate, public_key, signer) -> x509.Certificate:  # type: ignore[no-untyped-def]
        b = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer).public_key(public_key)
             .serial_number(cert.serial_number).not_valid_before(cert.not_valid_before_utc)
             .not_valid_after(cert.not_valid_after_utc))
        for ext in cert.extensions:
            b = b.add_extension(ext.value, ext.critical)
        return b.sign(signer, hashes.SHA384(), rsa_padding=PSS)

    ask = copy(sim.ask, ask_key.public_key(), ask_key)
    vek = copy(sim.vcek, vek_key.public_key(), ask_key)
    report = build_report(vek_key, version=4, reported_tcb=TcbVersion.decode(sim.tcb, "Milan"), chip_id=sim.chip_id,
                          report_data=RD)
    carried = SnpEndorsements(parse_cert_table(build_cert_table(
        [(VCEK_GUID, der(vek)), (ASK_GUID, der(ask)), (ARK_GUID, der(sim.ark))])), (sim.crl,))
    with fails(Check.SNP_ASK_SIGNATURE, InvalidSignature):
        _verifier(_anchor(sim), nowhere).verify_evidence(report, collateral=carried, at=utc_now())
