"""The workload side of EAA: what ``enclave-tls-server`` answers on each attested connection.

v1 (enclave-tls 0.6 Occlum sample, what inclavared expects): read one message of at most 256 bytes,
answer ``MRENCLAVE(32) || MRSIGNER(32) || "Hello and welcome to Enclave TLS!\\n"`` (98 bytes). The
identity is the workload's own, taken from the SGX quote in its certificate. Without SGX evidence the
host build's behaviour applies: the message is echoed (``reply="auto"``, the default).

v2 (a JSON line ``{"version":2,"type":"GETEVIDENCE","nonce":"<64 hex>"}``): fresh evidence whose report
data is ``SHA256(claims)``, the claims buffer holding ``pubkey-hash`` (of this TLS key) and ``nonce``,
answered as one JSON line (see :func:`v2_response`). The messages themselves are built and parsed in
:mod:`eaa.services.protocol`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..attest.evidence import Attester
from ..errors import ConfigError, EaaError, ProtocolError
from ..evidence import SGX_ECDSA, Evidence
from ..tls.cert import spki_der
from ..tls.claims import NONCE, encode_claims
from ..tls.crypto import Credentials
from ..tls.session import TlsServer, TlsSession
from .protocol import (
    NONCE_SIZE,
    SgxIdentity,
    make_evidence_reply,
    make_identity_reply,
    parse_evidence_request,
)

log = logging.getLogger("eaa.workload")

GREETING = b"Hello and welcome to Enclave TLS!\n"
MAX_REQUEST = 256  # the sample server's receive buffer
IDENTITY_SIZE = 64
REPLY_MODES = ("auto", "identity", "echo")


def identity_from_evidence(evidence: Evidence | None) -> SgxIdentity | None:
    """MRENCLAVE and MRSIGNER of an SGX quote (None for any other or no evidence)."""
    if evidence is None or evidence.type != SGX_ECDSA:
        return None
    from ..formats.quote import parse_quote

    body = parse_quote(evidence.data).body
    return SgxIdentity(body.mr_enclave, body.mr_signer)  # type: ignore[union-attr]


def v2_response(attester: Attester, credentials: Credentials | None, nonce: bytes) -> bytes:
    """Fresh evidence over ``SHA256(claims)``, the claims ``{pubkey-hash of this TLS key, nonce}``."""
    if len(nonce) != NONCE_SIZE:
        raise ProtocolError(f"nonce must be {NONCE_SIZE} bytes")
    spki = spki_der(credentials.private_key) if credentials is not None else b""
    claims = encode_claims(spki, {NONCE: nonce})
    return make_evidence_reply(nonce, attester.collect_evidence(hashlib.sha256(claims).digest()), claims)


def program_files() -> list[str]:
    """The workload's own program, which a simulated attester measures into MRENCLAVE by default, so
    that a changed program gives a changed measurement (``shelter mrenclave --sim`` computes the same)."""
    root = Path(__file__).resolve().parent.parent
    return [str(root / "services" / "workload.py"), str(root / "cli" / "enclave_tls_server.py")]


class WorkloadService:
    """Answers one request per attested connection, as the enclave-tls sample server does."""

    def __init__(self, credentials: Credentials | None, *, attester: Attester | None = None, reply: str = "auto",
                 greeting: bytes = GREETING, on_message: Callable[[bytes], None] | None = None) -> None:
        if reply not in REPLY_MODES:
            raise ConfigError(f"unknown reply mode {reply!r} (use {', '.join(REPLY_MODES)})")
        self.credentials = credentials
        self.attester = attester
        self.identity = identity_from_evidence(credentials.evidence if credentials else None)
        self.reply_mode = "identity" if reply == "auto" and self.identity is not None else reply
        if self.reply_mode == "auto":
            self.reply_mode = "echo"
        self.greeting = greeting
        self.on_message = on_message

    def reply(self, request: bytes) -> bytes:
        nonce = parse_evidence_request(request)
        if nonce is not None:
            if self.attester is None:
                raise ProtocolError("this workload cannot produce fresh evidence (no attester)")
            return v2_response(self.attester, self.credentials, nonce)
        if self.reply_mode == "echo":
            return request
        return make_identity_reply(self.identity, self.greeting)

    # ---- served by ConnectionServer (see services/server.py) ----
    max_request = MAX_REQUEST  # the sample server's one read: v1 and v2 requests both fit

    def complete(self, buf: bytes) -> bool:
        return bool(buf)  # one read is the request, as in the sample server

    def timeout_reply(self) -> None:
        return None  # the sample protocol has no error message

    def handle(self, session: TlsSession, request: bytes | EaaError | None = None) -> None:
        """Answer one client: ``request`` as already read, or read now (one read of at most 256 bytes)."""
        if isinstance(request, EaaError):
            raise request
        peer = session.peer
        if peer is not None:
            r = peer.result
            where = session.address[0] if isinstance(session.address, tuple) else session.address
            log.info("client %s verified: %s evidence, tee %s, status %s%s", where, peer.evidence_type, r.tee,
                     r.status, " (SIMULATED)" if r.simulated else "")
        if request is None:
            request = session.recv(MAX_REQUEST)
        if not request:
            return
        log.info("Client: %s", request.decode("utf-8", "replace").rstrip("\n"))
        if self.on_message is not None:
            self.on_message(request)
        session.send(self.reply(request))


def serve(server: TlsServer, service: WorkloadService | None = None, **kwargs: Any) -> None:
    """Serve the workload protocol on ``server`` until it is shut down (one thread per client)."""
    service = service or WorkloadService(server.credentials, attester=server.attester, **kwargs)
    server.serve_forever(service.handle)
