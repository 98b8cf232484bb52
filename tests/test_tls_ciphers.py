"""The TLS versions and suites Enclave-TLS offers: TLS 1.3 by default, TLS 1.2 only with AEAD suites."""

from __future__ import annotations

import socket
import ssl

import pytest
from OpenSSL import SSL

from eaa.tls import TlsConfig, TlsServer, connect
from eaa.tls import cert as certs
from eaa.tls.errors import HandshakeFailed, PeerRejected
from eaa.tls.testing import (
    FakeAttester,
    FakeVerifier,
    build_custom_dice_certificate,
    certificate_der,
    listener,
    raw_tls_context,
    run_in_thread,
    serve_raw_once,
)

CBC_SHA1 = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"


@pytest.fixture
def server():
    srv = TlsServer(TlsConfig(attester=FakeAttester()), "127.0.0.1", 0)
    yield srv
    srv.shutdown()


def _client(ciphers: str | None = None, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def _handshake(server: TlsServer, ctx: ssl.SSLContext) -> tuple[tuple[str, str] | BaseException, dict]:
    t, out = run_in_thread(lambda: server.accept(timeout=10))
    try:
        with ctx.wrap_socket(socket.create_connection(server.address, timeout=10)) as s:
            got: tuple[str, str] | BaseException = (s.version() or "", s.cipher()[0])
    except (ssl.SSLError, OSError) as e:
        got = e
    t.join(10)
    if "result" in out:
        out["result"].close()
    return got, out


def test_default_client_gets_tls13(server):
    got, out = _handshake(server, _client())
    assert got == ("TLSv1.3", got[1]) and "result" in out


def test_tls12_client_gets_an_aead_suite(server):
    got, out = _handshake(server, _client(max_version=ssl.TLSVersion.TLSv1_2))
    assert isinstance(got, tuple) and got[0] == "TLSv1.2"
    assert "GCM" in got[1] or "CHACHA20" in got[1]
    assert "result" in out


def test_cbc_only_client_is_refused(server):
    got, out = _handshake(server, _client(CBC_SHA1, ssl.TLSVersion.TLSv1_2))
    assert isinstance(got, ssl.SSLError)
    assert isinstance(out.get("error"), HandshakeFailed) and "no shared cipher" in str(out["error"])


def test_our_client_refuses_a_cbc_only_server():
    key = certs.generate_key(certs.EC_P256)
    cert = build_custom_dice_certificate(key, evidence_extension=None)
    ctx = raw_tls_context(certificate_der(cert), key, server=True)
    ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_cipher_list(CBC_SHA1.encode())
    ls = listener()
    log = serve_raw_once(ls, ctx)
    try:
        with pytest.raises((HandshakeFailed, PeerRejected)):
            connect(*ls.getsockname(), TlsConfig(verifier=FakeVerifier()), timeout=10)
        assert log.done.wait(10)
        assert not log.handshake_done
    finally:
        ls.close()
