"""Test helpers for Enclave-TLS: a fake attester/verifier pair, certificate surgery, and a raw TLS peer.

Nothing here is used by the library itself; it exists so that tests (ours and other packages') can
build hostile peers: certificates with replayed or altered evidence, critical extensions, unknown
CBOR tags, the X.509 version-INTEGER-3 quirk, and servers that send garbage.
"""

from __future__ import annotations

import socket
import struct
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto

from ..evidence import SGX_ECDSA, Evidence, pad_report_data
from ..formats.der import read_tlv
from ..verify.result import UP_TO_DATE, VerificationResult
from ..verify.verifier import check_report_data
from . import cert as certs

FAKE_QUOTE_SIZE = 436
FAKE_MRENCLAVE = bytes(range(32))
FAKE_MRSIGNER = bytes(range(32, 64))


def fake_sgx_quote(report_data: bytes, mrenclave: bytes = FAKE_MRENCLAVE, mrsigner: bytes = FAKE_MRSIGNER) -> bytes:
    """A 436-byte SGX v3 quote header + report body (no signature data): what the C fake attesters send."""
    q = bytearray(FAKE_QUOTE_SIZE)
    struct.pack_into("<HHI", q, 0, 3, 2, 0)
    q[112:144] = mrenclave
    q[176:208] = mrsigner
    q[368:432] = pad_report_data(report_data)
    return bytes(q)


class FakeAttester:
    """sgx_ecdsa-typed evidence with the report data in place but no signature: for FakeVerifier only."""

    name = "fake_sgx_ecdsa"
    evidence_type = SGX_ECDSA

    def __init__(self, mrenclave: bytes = FAKE_MRENCLAVE) -> None:
        self.mrenclave = mrenclave
        self.calls = 0

    def collect_evidence(self, report_data: bytes) -> Evidence:
        self.calls += 1
        return Evidence(SGX_ECDSA, fake_sgx_quote(report_data, self.mrenclave), pad_report_data(report_data))


class FakeVerifier:
    """Checks the report-data binding of FakeAttester quotes (nothing else) and counts its calls."""

    name = "fake_sgx_ecdsa"
    evidence_types = (SGX_ECDSA,)

    def __init__(self) -> None:
        self.calls = 0

    def verify_evidence(self, evidence: bytes, *, evidence_type: str, report_data_hash: bytes | None,
                        collateral: Any, at: datetime) -> VerificationResult:
        self.calls += 1
        check_report_data(evidence[368:432], report_data_hash)
        return VerificationResult(tee="sgx", status=UP_TO_DATE, advisory_ids=(),
                                  measurements={"mrenclave": evidence[112:144].hex(),
                                                "mrsigner": evidence[176:208].hex()},
                                  report_data=evidence[368:432], details={"fake": True})


# ---------------------------------------------------------------------------------------------
# DER surgery

def der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der_tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + der_length(len(value)) + value


def resign(tbs_value: bytes, signature_algorithm_tlv: bytes, key: Any) -> bytes:
    """A certificate from TBS contents (without its SEQUENCE header), re-signed with ``key`` (SHA-256)."""
    tbs = der_tlv(0x30, tbs_value)
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    else:
        sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return der_tlv(0x30, tbs + signature_algorithm_tlv + der_tlv(0x03, b"\x00" + sig))


def split_certificate(der: bytes) -> tuple[bytes, bytes]:
    """(TBS contents, signatureAlgorithm TLV) of a DER certificate."""
    _, cert, _ = read_tlv(der, 0, "certificate")
    _, tbs, p = read_tlv(cert, 0, "tbs")
    _, _, q = read_tlv(cert, p, "sigalg")
    return tbs, cert[p:q]


def with_version_integer(der: bytes, version: int, key: Any) -> bytes:
    """Rewrite the X.509 version INTEGER (3 = what enclave-tls 0.6 writes) and re-sign."""
    tbs, sigalg = split_certificate(der)
    if not tbs.startswith(bytes.fromhex("a003020102")):
        raise ValueError("expected a v3 certificate")
    return resign(bytes.fromhex("a0030201") + bytes([version]) + tbs[5:], sigalg, key)


def build_custom_dice_certificate(key: Any, *, evidence_extension: bytes | None,
                                  critical: bool = False, endorsements_extension: bytes | None = None,
                                  not_before: datetime | None = None, not_after: datetime | None = None
                                  ) -> x509.Certificate:
    """A DICE-layout certificate with any evidence bytes and criticality (for hostile-peer tests)."""
    from datetime import timedelta, timezone

    from .dice import OID_ENDORSEMENT_MANIFEST, OID_TAGGED_EVIDENCE

    now = datetime.now(timezone.utc).replace(microsecond=0)
    b = (x509.CertificateBuilder().subject_name(certs.DICE_SUBJECT).issuer_name(certs.DICE_SUBJECT)
         .public_key(key.public_key()).serial_number(1)
         .not_valid_before(not_before or now - timedelta(hours=1))
         .not_valid_after(not_after or now + timedelta(days=365)))
    if evidence_extension is not None:
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_TAGGED_EVIDENCE),
                                                       evidence_extension), critical=critical)
    if endorsements_extension is not None:
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_ENDORSEMENT_MANIFEST),
                                                       endorsements_extension), critical=False)
    return b.sign(key, hashes.SHA256())


# ---------------------------------------------------------------------------------------------
# a raw TLS peer

@dataclass
class RawPeerLog:
    """What a raw peer saw: application bytes received, and the error that ended it (if any)."""

    received: bytes = b""
    error: BaseException | None = None
    handshake_done: bool = False
    done: threading.Event = field(default_factory=threading.Event)


def _x509(der: bytes) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return crypto.load_certificate(crypto.FILETYPE_ASN1, der)


def raw_tls_context(cert_der: bytes | None, key: Any, *, server: bool, request_cert: bool = False) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    if cert_der is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ctx.use_certificate(_x509(cert_der))  # pyOpenSSL X509: accepts the version-3 quirk
        ctx.use_privatekey(key)
    if request_cert:
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *a: True)
    elif not server:
        ctx.set_verify(SSL.VERIFY_PEER, lambda *a: True)
    return ctx


def _blocking_with_timeout(sock: socket.socket, timeout: float) -> None:
    """pyOpenSSL needs a blocking socket; bound every read/write with kernel timeouts instead."""
    sock.settimeout(None)
    tv = struct.pack("ll", int(timeout), int((timeout % 1) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def serve_raw_once(listener: socket.socket, ctx: SSL.Context | None, *, reply: bytes = b"",
                   garbage: bytes | None = None, timeout: float = 10.0) -> RawPeerLog:
    """In a thread: accept one connection, then either send ``garbage`` or do TLS and read until EOF/error."""
    log = RawPeerLog()

    def run() -> None:
        conn = None
        try:
            raw, _ = listener.accept()
            _blocking_with_timeout(raw, timeout)
            if garbage is not None:
                raw.sendall(garbage)
                try:
                    log.received = raw.recv(4096)
                except OSError:
                    pass
                raw.close()
                return
            assert ctx is not None
            conn = SSL.Connection(ctx, raw)
            conn.set_accept_state()
            conn.do_handshake()
            log.handshake_done = True
            while True:
                data = conn.recv(4096)
                if not data:
                    break
                log.received += data
                if reply:
                    conn.send(reply)
        except BaseException as e:  # noqa: BLE001
            log.error = e
        finally:
            try:
                (conn or raw).close()  # type: ignore[possibly-undefined]
            except Exception:  # noqa: BLE001
                pass
            log.done.set()

    threading.Thread(target=run, daemon=True).start()
    return log


def raw_tls_client(address: tuple[str, int], ctx: SSL.Context, *, send: bytes | None = b"hello\n",
                   timeout: float = 10.0) -> tuple[bytes, BaseException | None]:
    """Connect with a plain pyOpenSSL client, optionally send, and read what comes back (or the error)."""
    raw = socket.create_connection(address, timeout=timeout)
    _blocking_with_timeout(raw, timeout)
    conn = SSL.Connection(ctx, raw)
    conn.set_connect_state()
    got = b""
    try:
        conn.do_handshake()
        if send is not None:
            conn.send(send)
        got = conn.recv(4096)
        return got, None
    except BaseException as e:  # noqa: BLE001
        return got, e
    finally:
        raw.close()


def listener() -> socket.socket:
    return socket.create_server(("127.0.0.1", 0))


def certificate_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def self_signed_der(key: Any, common_name: str = "peer") -> bytes:
    """An ordinary self-signed certificate (no evidence) of ``key``, valid for an hour either side of now."""
    from datetime import timedelta, timezone

    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(hours=1))
            .sign(key, hashes.SHA256()))
    return certificate_der(cert)


def run_in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``fn`` in a thread; the returned dict gets ``result`` or ``error``."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except BaseException as e:  # noqa: BLE001
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out
