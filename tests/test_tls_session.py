"""Enclave-TLS over real sockets on 127.0.0.1: round trips, the verification cache, and every rejection."""

from __future__ import annotations

import socket
import threading
from datetime import datetime, timedelta, timezone

import cbor2
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from OpenSSL import SSL

from eaa.attest.null import NullAttester
from eaa.errors import IdentityMismatch, PolicyViolation, UntrustedRoot
from eaa.formats.quote import parse_quote
from eaa.policy import Policy, ReferenceValues
from eaa.sim import load_platform
from eaa.tls import TlsClient, TlsConfig, TlsServer, connect
from eaa.tls import cert as certs
from eaa.tls.claims import decode_claims
from eaa.tls.crypto import OpenSslCrypto
from eaa.tls.dice import OID_TAGGED_EVIDENCE, decode_evidence, encode_evidence
from eaa.tls.errors import (
    CertificateExpired,
    ConnectionClosed,
    CriticalExtension,
    HandshakeFailed,
    MissingEvidence,
    PeerCertificateRequired,
    PeerRejected,
    PubkeyHashMismatch,
    ReportDataMismatch,
    TlsTimeout,
    UnknownEvidenceTag,
)
from eaa.tls.peercert import parse_certificate
from eaa.tls.testing import (
    FakeAttester,
    FakeVerifier,
    build_custom_dice_certificate,
    certificate_der,
    listener,
    raw_tls_client,
    raw_tls_context,
    run_in_thread,
    serve_raw_once,
    with_version_integer,
)

GREETING = b"Hello and welcome to Enclave TLS!\n"
CLAIMS = {"key_0": b"value_0\0", "key_1": b"value_1\0"}


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls-sim") / "sim"
    load_platform(d)
    return d


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("EAA_SIM_DIR", str(tmp_path / "never-used"))
    monkeypatch.delenv("EAA_TRUST_SIMULATION", raising=False)


class Running:
    """A TlsServer serving echo in a background thread; records what each handler saw."""

    def __init__(self, config: TlsConfig) -> None:
        self.server = TlsServer(config, "127.0.0.1", 0)
        self.seen: list = []
        self.errors: list = []
        self.thread = threading.Thread(target=self.server.serve_forever, args=(self._handle,),
                                       kwargs={"on_error": lambda addr, e: self.errors.append(e)}, daemon=True)
        self.thread.start()

    def _handle(self, session) -> None:
        data = session.recv(256)
        self.seen.append((session.peer, data))
        session.send(data)

    @property
    def address(self):
        return self.server.address

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


def _sim_cfg(attester: str, sim_dir, **kw) -> TlsConfig:
    return TlsConfig(attester=attester, sim_dir=sim_dir, **kw)


# ------------------------------------------------------------------------------------------
# round trips: {sim_sgx_ecdsa, sim_tdx_ecdsa, nullattester} x {one-way, mutual} x {dice, legacy}

@pytest.mark.parametrize("fmt", ["dice", "legacy"])
@pytest.mark.parametrize("mutual", [False, True], ids=["one-way", "mutual"])
@pytest.mark.parametrize("attester", ["sim_sgx_ecdsa", "sim_tdx_ecdsa", "nullattester"])
def test_round_trip(attester, mutual, fmt, sim_dir):
    null = attester == "nullattester"
    common = dict(attester=attester, mutual=mutual, cert_format=fmt, sim_dir=sim_dir,
                  trust_simulation=not null, verifier="nullverifier" if null else None)
    server_claims = CLAIMS if fmt == "dice" and not null else {}
    with Running(TlsConfig(custom_claims=server_claims, **common)) as srv:
        client = TlsClient(TlsConfig(**common))
        with client.connect(*srv.address) as s:
            s.send(GREETING)
            assert s.recv(256) == GREETING
            peer = s.peer
        assert srv.errors == []
        [(server_view, data)] = srv.seen
        assert data == GREETING

        expected_tee = {"sim_sgx_ecdsa": "sgx", "sim_tdx_ecdsa": "tdx", "nullattester": "none"}[attester]
        assert peer.result.tee == expected_tee
        assert peer.cert_format == (fmt if not null else "none")
        if null:
            assert peer.result.status == "NoEvidence" and peer.evidence_type == "nullattester"
        else:
            assert peer.result.status == "UpToDate" and peer.result.simulated
            assert peer.evidence_type == ("sgx_ecdsa" if attester == "sim_sgx_ecdsa" else "tdx_ecdsa")
            # the measurements are those of the quote inside the server's certificate
            own = parse_quote(srv.server.credentials.evidence.data).body
            key = "mrenclave" if expected_tee == "sgx" else "mrtd"
            assert peer.result.measurements[key] == (own.mr_enclave if key == "mrenclave" else own.mr_td).hex()
        assert dict(peer.claims) == server_claims
        assert peer.certificate == srv.server.credentials.der

        if mutual:
            assert server_view is not None
            assert server_view.result.tee == expected_tee
            assert server_view.certificate == client.handle.credentials.der
        else:
            assert server_view is None  # a one-way server does not verify (and the client sent no cert)
            assert client.handle.credentials is None


def test_endorsements_extension_supplies_the_collateral(sim_dir):
    with Running(_sim_cfg("sim_sgx_ecdsa", sim_dir, endorsements=True)) as srv:
        # the verifier gets its collateral from the certificate, not from the simulated platform
        with connect(*srv.address, TlsConfig(trust_simulation=True, sim_dir=sim_dir)) as s:
            assert s.peer.collateral_from == "endorsements"
            assert s.peer_result.status == "UpToDate"


def test_configured_collateral_source_is_used(sim_dir):
    from eaa.sim import simulation_collateral

    calls = []

    def source(tee, quote):
        calls.append(tee)
        return simulation_collateral(tee, sim_dir)

    with Running(_sim_cfg("sim_tdx_ecdsa", sim_dir)) as srv:
        with connect(*srv.address, TlsConfig(trust_simulation=True, sim_dir=sim_dir, collateral=source)) as s:
            assert s.peer.collateral_from == "configured" and s.peer_result.tee == "tdx"
    assert calls == ["tdx"]


def test_named_verifier_and_qve_alias(sim_dir):
    with Running(_sim_cfg("sim_sgx_ecdsa", sim_dir)) as srv:
        for name in ("sgx_ecdsa", "sgx_ecdsa_qve"):
            with connect(*srv.address, TlsConfig(verifier=name, trust_simulation=True, sim_dir=sim_dir)) as s:
                assert s.peer.verifier == name
        # a verifier for another TEE refuses the evidence
        from eaa.tls.errors import EvidenceTypeMismatch
        with pytest.raises(EvidenceTypeMismatch):
            connect(*srv.address, TlsConfig(verifier="tdx_ecdsa", trust_simulation=True, sim_dir=sim_dir))


def test_nulltls_round_trip_needs_nullverifier():
    with Running(TlsConfig(tls="nulltls", crypto="nullcrypto")) as srv:
        with connect(*srv.address, TlsConfig(tls="nulltls", verifier="nullverifier")) as s:
            s.send(b"plain")
            assert s.recv(100) == b"plain"
            assert s.protocol == "none" and s.peer_result.tee == "none"
        with pytest.raises(MissingEvidence):
            connect(*srv.address, TlsConfig(tls="nulltls"))


def test_tls12_only_peer_is_accepted():
    creds = OpenSslCrypto().create_credentials(FakeAttester())
    ls = listener()
    ctx = raw_tls_context(creds.der, creds.private_key, server=True)
    ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    serve_raw_once(ls, ctx, reply=b"ok")
    with connect(*ls.getsockname(), TlsConfig(verifier=FakeVerifier())) as s:
        assert s.protocol == "TLSv1.2"
        s.send(b"x")
        assert s.recv(10) == b"ok"
    ls.close()


def test_legacy_version_integer_3_certificate_over_tls():
    creds = OpenSslCrypto().create_credentials(FakeAttester(), cert_format="legacy")
    quirk = with_version_integer(creds.der, 3, creds.private_key)
    ls = listener()
    serve_raw_once(ls, raw_tls_context(quirk, creds.private_key, server=True), reply=b"ok")
    with connect(*ls.getsockname(), TlsConfig(verifier=FakeVerifier())) as s:
        assert s.peer.cert_format == "legacy" and s.peer_certificate == quirk
        assert parse_certificate(s.peer_certificate).version == 3
        s.send(b"x")
        assert s.recv(10) == b"ok"
    ls.close()


# ------------------------------------------------------------------------------------------
# the verification cache

def test_cache_skips_reverification_but_rechecks_time_and_policy():
    verifier = FakeVerifier()
    now = [datetime.now(timezone.utc)]
    policy_calls = []

    def policy(result):
        policy_calls.append(result)
        return True

    with Running(TlsConfig(attester=FakeAttester())) as srv:
        client = TlsClient(TlsConfig(verifier=verifier, clock=lambda: now[0], policy=policy))
        for _ in range(3):
            with client.connect(*srv.address) as s:
                cached = s.peer.cached
        assert verifier.calls == 1 and cached
        assert len(policy_calls) == 3  # the policy runs on every handshake
        now[0] += timedelta(days=400)  # past the certificate's notAfter: the cached verdict is not enough
        with pytest.raises(CertificateExpired):
            client.connect(*srv.address)


def test_cache_is_keyed_by_the_exact_certificate():
    verifier = FakeVerifier()
    client = TlsClient(TlsConfig(verifier=verifier))
    for _ in range(2):
        with Running(TlsConfig(attester=FakeAttester())) as srv:  # a new server: a new certificate
            client.connect(*srv.address).close()
    assert verifier.calls == 2


# ------------------------------------------------------------------------------------------
# rejections (each: a typed error on the verifying side, no application data exchanged)

def _hostile_server(cert_der: bytes, key):
    ls = listener()
    log = serve_raw_once(ls, raw_tls_context(cert_der, key, server=True), reply=b"SECRET")
    return ls, log


def _expect_client_rejects(cert_der, key, config, error):
    ls, log = _hostile_server(cert_der, key)
    try:
        with pytest.raises(error):
            connect(*ls.getsockname(), config)
        assert log.done.wait(10)
        assert log.received == b""  # not a byte of application data reached the hostile server
        assert not log.handshake_done or log.error is not None
    finally:
        ls.close()


@pytest.fixture(scope="module")
def sim_creds(sim_dir):
    from eaa.sim.attesters import SimSgxEcdsaAttester

    return OpenSslCrypto().create_credentials(SimSgxEcdsaAttester(sim_dir), custom_claims=CLAIMS)


def _evidence_ext(creds) -> bytes:
    return parse_certificate(creds.der).extension(OID_TAGGED_EVIDENCE).value


def test_reject_evidence_bound_to_another_key(sim_dir, sim_creds):
    # a genuine (simulated) evidence extension replayed in a certificate for another key
    other = certs.generate_key(certs.EC_P256)
    cert = build_custom_dice_certificate(other, evidence_extension=_evidence_ext(sim_creds))
    _expect_client_rejects(certificate_der(cert), other, TlsConfig(trust_simulation=True, sim_dir=sim_dir),
                           PubkeyHashMismatch)


def test_reject_legacy_evidence_bound_to_another_key(sim_dir):
    from eaa.sim.attesters import SimSgxEcdsaAttester

    genuine = OpenSslCrypto().create_credentials(SimSgxEcdsaAttester(sim_dir), cert_format="legacy")
    other = certs.generate_key(certs.RSA_3072)
    cert = certs.build_legacy_certificate(other, evidence_type="sgx_ecdsa", evidence=genuine.evidence.data)
    _expect_client_rejects(certificate_der(cert), other, TlsConfig(trust_simulation=True, sim_dir=sim_dir),
                           ReportDataMismatch)


def test_reject_altered_claims_buffer(sim_dir, sim_creds):
    te = decode_evidence(_evidence_ext(sim_creds))
    claims = decode_claims(te.claims)
    altered = cbor2.dumps({"pubkey-hash": cbor2.dumps([1, claims.pubkey_hash]), "key_0": b"value_X\0",
                           "key_1": b"value_1\0"})
    assert len(altered) == len(te.claims) and altered != te.claims
    cert = build_custom_dice_certificate(sim_creds.private_key,
                                         evidence_extension=encode_evidence(te.tag, te.evidence, altered))
    _expect_client_rejects(certificate_der(cert), sim_creds.private_key,
                           TlsConfig(trust_simulation=True, sim_dir=sim_dir), ReportDataMismatch)
    assert issubclass(ReportDataMismatch, IdentityMismatch)


def test_reject_critical_evidence_extension(sim_dir, sim_creds):
    cert = build_custom_dice_certificate(sim_creds.private_key, evidence_extension=_evidence_ext(sim_creds),
                                         critical=True)
    _expect_client_rejects(certificate_der(cert), sim_creds.private_key,
                           TlsConfig(trust_simulation=True, sim_dir=sim_dir), CriticalExtension)


def test_reject_unknown_cbor_tag(sim_dir, sim_creds):
    te = decode_evidence(_evidence_ext(sim_creds))
    cert = build_custom_dice_certificate(sim_creds.private_key,
                                         evidence_extension=encode_evidence(60005, te.evidence, te.claims))
    _expect_client_rejects(certificate_der(cert), sim_creds.private_key,
                           TlsConfig(trust_simulation=True, sim_dir=sim_dir), UnknownEvidenceTag)


def test_reject_named_verifier_without_evidence():
    creds = OpenSslCrypto().create_credentials(NullAttester())
    _expect_client_rejects(creds.der, creds.private_key, TlsConfig(verifier="sgx_ecdsa"), MissingEvidence)
    # and without naming any verifier, no evidence is not accepted either
    _expect_client_rejects(creds.der, creds.private_key, TlsConfig(), MissingEvidence)


@pytest.mark.parametrize("endorsements", [False, True], ids=["no-collateral", "with-endorsements"])
def test_reject_simulated_evidence_without_trust_sim(sim_dir, endorsements):
    with Running(_sim_cfg("sim_sgx_ecdsa", sim_dir, endorsements=endorsements)) as srv:
        with pytest.raises(UntrustedRoot):
            connect(*srv.address, TlsConfig(sim_dir=sim_dir))
        assert srv.seen == []  # the handler never ran: no application data either way


def test_reject_simulated_client_without_trust_sim_on_server(sim_dir):
    with Running(_sim_cfg("sim_sgx_ecdsa", sim_dir, mutual=True)) as srv:  # server trusts nothing simulated
        client = TlsClient(_sim_cfg("sim_sgx_ecdsa", sim_dir, mutual=True, trust_simulation=True))
        with pytest.raises((PeerRejected, ConnectionClosed)):
            with client.connect(*srv.address) as s:  # TLS 1.3: the server's alert arrives with the first read
                s.send(GREETING)
                s.recv(256)
        srv.server.shutdown()
        assert srv.seen == []
        assert any(isinstance(e, UntrustedRoot) for e in srv.errors)


def test_reject_expired_certificate():
    key = certs.generate_key(certs.EC_P256)
    long_ago = datetime.now(timezone.utc) - timedelta(days=800)
    cert = certs.build_dice_certificate(key, now=long_ago)
    _expect_client_rejects(certificate_der(cert), key, TlsConfig(verifier="nullverifier"), CertificateExpired)


def test_reject_certificate_expired_at_the_configured_time():
    with Running(TlsConfig(attester=FakeAttester())) as srv:
        later = datetime.now(timezone.utc) + timedelta(days=400)
        with pytest.raises(CertificateExpired):
            connect(*srv.address, TlsConfig(verifier=FakeVerifier(), at=later))
        assert srv.seen == []


def test_reject_client_without_certificate_in_mutual_mode():
    server = TlsServer(TlsConfig(attester=FakeAttester(), mutual=True, verifier=FakeVerifier()), "127.0.0.1", 0)
    try:
        t, out = run_in_thread(lambda: server.accept(timeout=10))
        # a plain client that offers no certificate; it sends data which must never be read
        ctx = raw_tls_context(None, None, server=False)
        got, err = raw_tls_client(server.address, ctx, send=b"SECRET")
        t.join(10)
        assert isinstance(out.get("error"), PeerCertificateRequired)
        assert got == b"" and err is not None  # the client got an alert, no reply
        # our own client in one-way mode meets the same fate, as a typed error on its side
        t, out = run_in_thread(lambda: server.accept(timeout=10))
        with pytest.raises((PeerRejected, ConnectionClosed)):
            with connect(*server.address, TlsConfig(verifier=FakeVerifier())) as s:
                s.send(b"SECRET")
                s.recv(100)
        t.join(10)
        assert isinstance(out.get("error"), PeerCertificateRequired)
    finally:
        server.shutdown()


def test_reject_client_with_evidence_for_another_key_in_mutual_mode(sim_dir, sim_creds):
    other = certs.generate_key(certs.EC_P256)
    cert = build_custom_dice_certificate(other, evidence_extension=_evidence_ext(sim_creds))
    server = TlsServer(_sim_cfg("sim_sgx_ecdsa", sim_dir, mutual=True, trust_simulation=True), "127.0.0.1", 0)
    try:
        t, out = run_in_thread(lambda: server.accept(timeout=10))
        got, err = raw_tls_client(server.address, raw_tls_context(certificate_der(cert), other, server=False),
                                  send=b"SECRET")
        t.join(10)
        assert isinstance(out.get("error"), PubkeyHashMismatch)
        assert got == b"" and err is not None
    finally:
        server.shutdown()


def test_reject_garbage_from_a_client_and_keep_serving():
    with Running(TlsConfig(attester=FakeAttester())) as srv:
        raw = socket.create_connection(srv.address, timeout=10)
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"\x00" * 100)
        raw.settimeout(10)
        try:
            while raw.recv(4096):
                pass
        except OSError:
            pass
        raw.close()
        # the server survives and still serves attested clients
        with connect(*srv.address, TlsConfig(verifier=FakeVerifier())) as s:
            s.send(b"still here")
            assert s.recv(100) == b"still here"
        srv.server.shutdown()
        assert any(isinstance(e, HandshakeFailed) for e in srv.errors)


def test_reject_garbage_from_a_server():
    ls = listener()
    log = serve_raw_once(ls, None, garbage=b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    try:
        with pytest.raises(HandshakeFailed):
            connect(*ls.getsockname(), TlsConfig(verifier="nullverifier"))
        assert log.done.wait(10)
    finally:
        ls.close()


def test_direct_accept_reports_garbage_as_typed_error():
    server = TlsServer(TlsConfig(attester=FakeAttester()), "127.0.0.1", 0)
    try:
        t, out = run_in_thread(lambda: server.accept(timeout=10))
        raw = socket.create_connection(server.address, timeout=10)
        raw.sendall(b"\x16\x03\x01\xff\xff" + b"garbage" * 50)
        t.join(10)
        raw.close()
        assert isinstance(out.get("error"), HandshakeFailed)
    finally:
        server.shutdown()


# ------------------------------------------------------------------------------------------
# policy, limits, timeouts

def test_policy_reference_values_and_debug(sim_dir):
    with Running(_sim_cfg("sim_sgx_ecdsa", sim_dir)) as srv:
        base = dict(trust_simulation=True, sim_dir=sim_dir)
        with connect(*srv.address, TlsConfig(**base)) as s:
            mrenclave = s.peer_result.measurements["mrenclave"]
        good = Policy(reference=ReferenceValues.from_mapping({"mrenclave": mrenclave}))
        connect(*srv.address, TlsConfig(policy=good, **base)).close()
        bad = Policy(reference=ReferenceValues.from_mapping({"mrenclave": "00" * 32}))
        with pytest.raises(PolicyViolation):
            connect(*srv.address, TlsConfig(policy=bad, **base))
    with Running(_sim_cfg("sim_sgx_ecdsa", sim_dir, attester_options={"debug": True})) as srv:
        with pytest.raises(PolicyViolation):
            connect(*srv.address, TlsConfig(trust_simulation=True, sim_dir=sim_dir))
        ok = Policy(allow_debug=True)
        with connect(*srv.address, TlsConfig(trust_simulation=True, sim_dir=sim_dir, policy=ok)) as s:
            assert s.peer_result.debug


def test_nullverifier_result_fails_a_policy_with_reference_values():
    with Running(TlsConfig(attester="nullattester")) as srv:
        bad = Policy(reference=ReferenceValues.from_mapping({"mrenclave": "00" * 32}))
        with pytest.raises(PolicyViolation):
            connect(*srv.address, TlsConfig(verifier="nullverifier", policy=bad))


def test_recv_has_a_size_limit_and_a_timeout():
    creds = OpenSslCrypto().create_credentials(FakeAttester())
    ls = listener()
    serve_raw_once(ls, raw_tls_context(creds.der, creds.private_key, server=True), reply=b"A" * 1000)
    try:
        with connect(*ls.getsockname(), TlsConfig(verifier=FakeVerifier(), max_message=100)) as s:
            with pytest.raises(TlsTimeout):
                s.recv(10, timeout=0.2)  # the raw server only answers after it got something
            s.send(b"go")
            got = s.recv()
            assert 0 < len(got) <= 100
            assert len(s.recv(5000)) <= 100
    finally:
        ls.close()


def test_connect_to_a_closed_port_is_a_transport_error():
    from eaa.errors import TransportError

    ls = listener()
    addr = ls.getsockname()
    ls.close()
    with pytest.raises(TransportError):
        connect(*addr, TlsConfig(verifier="nullverifier", timeout=5))


def test_custom_claims_survive_and_are_separate_from_pubkey_hash():
    with Running(TlsConfig(attester=FakeAttester(), custom_claims={"py_claim": "py_value"})) as srv:
        with connect(*srv.address, TlsConfig(verifier=FakeVerifier())) as s:
            assert dict(s.peer_claims) == {"py_claim": b"py_value"}
            spki = parse_certificate(s.peer_certificate).spki
            assert spki == srv.server.credentials.private_key.public_key().public_bytes(
                Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def test_module_level_accept_on_a_plain_listener_and_recv_line():
    from eaa.tls import accept

    ls = listener()
    try:
        def serve():
            with accept(ls, TlsConfig(attester=FakeAttester()), timeout=10) as s:
                assert s.peer is None  # one-way: the server does not verify
                s.send(b"line one\nline two\n")
                return s.recv(10)
        t, out = run_in_thread(serve)
        with connect(*ls.getsockname(), TlsConfig(verifier=FakeVerifier())) as s:
            assert s.recv_line() == b"line one\n"
            assert s.recv_line() == b"line two\n"
            s.send(b"bye")
        t.join(10)
        assert out.get("result") == b"bye", out
    finally:
        ls.close()
