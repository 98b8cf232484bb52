"""inclavared: relays a verifier's request to the workload over mutual attested TLS.

Per connection (shelter is the client): read one request; v1 answers the original ENCLAVEINFO JSON,
v2 carries the verifier's nonce to the workload, verifies the workload's fresh evidence itself
(inclavared's verdict) and relays the evidence, its claims and collateral so shelter can verify them
again. A bad client gets an error line and a closed connection; nothing it sends stops the daemon.
Connections are served by :class:`~.server.ConnectionServer`: idle or slow clients wait without a
thread, and at most ``limits.workers`` requests are relayed at once.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..errors import EaaError, IdentityMismatch, ProtocolError, TransportError
from ..policy import Policy
from ..tls.config import TlsConfig
from ..tls.peercert import parse_certificate
from ..tls.session import EnclaveTls, TlsSession
from ..verify.registry import verifier_for_evidence
from ..verify.verifier import Verifier
from . import protocol
from .address import Address, dial, listen
from .limits import ServerLimits
from .server import ConnectionServer, describe_endpoint, peer_name

log = logging.getLogger("eaa.inclavared")

V1_FALLBACK = b"reply from inclavared!\n"
V1_UPSTREAM_MAX = 512


@dataclass
class InclavaredConfig:
    """How one inclavared runs: where it listens, which workload it relays to, the TLS of each side and the
    policy of its verdict."""

    listen: Address | None
    xfer: Address | None
    server_tls: TlsConfig  # towards shelter: inclavared's own evidence in its certificate
    upstream_tls: TlsConfig  # towards the workload: mutual when asked, verifies the workload's certificate
    policy: Policy = field(default_factory=Policy)
    limits: ServerLimits = field(default_factory=ServerLimits)
    timeout: float = 10.0
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)


def program_files() -> list[str]:
    """inclavared's own program, measured by a simulated attester when no --measure is given."""
    root = Path(__file__).resolve().parent
    return [str(root / name) for name in ("inclavared.py", "address.py", "protocol.py", "server.py")]


class Inclavared:
    def __init__(self, config: InclavaredConfig) -> None:
        self.config = config
        self.server_endpoint = EnclaveTls(config.server_tls, server=True)
        self.upstream_endpoint = EnclaveTls(config.upstream_tls, server=False)
        self.server: ConnectionServer | None = None

    # ---- upstream ----
    def _upstream(self) -> TlsSession:
        if self.config.xfer is None:
            raise TransportError("no upstream workload configured (--xfer)")
        sock = dial(self.config.xfer, self.config.timeout)
        return self.upstream_endpoint.wrap(sock, address=str(self.config.xfer), timeout=self.config.timeout)

    def _verifier(self, evidence_type: str) -> Verifier:
        """The named verifier when it checks this evidence type, else the one named after the type."""
        pv = self.upstream_endpoint.peer_verifier
        assert pv is not None  # a client endpoint always verifies its peer
        named = self.config.upstream_tls.verifier
        if isinstance(named, str) and named:
            v = pv.verifier(named)
            if named == "nullverifier" or evidence_type in v.evidence_types:
                return v
        return pv.verifier(verifier_for_evidence(evidence_type))

    def fetch_v1(self) -> bytes:
        """The original exchange: hello, then MRENCLAVE || MRSIGNER || message, as ENCLAVEINFO JSON."""
        if self.config.xfer is None:
            return V1_FALLBACK
        with self._upstream() as up:
            up.send(protocol.V1_UPSTREAM_HELLO)
            data = up.recv(V1_UPSTREAM_MAX, timeout=self.config.timeout)
            peer = up.peer
        if len(data) > 64:
            mrenclave, mrsigner = data[:32], data[32:64]
            # The workload's self-report must agree with what its verified certificate says.
            if peer is not None and "mrenclave" in peer.result.measurements:
                m = peer.result.measurements
                if m["mrenclave"] != mrenclave.hex() or m["mrsigner"] != mrsigner.hex():
                    raise IdentityMismatch("the workload's reported MRENCLAVE/MRSIGNER differ from its verified "
                                           "certificate")
            return protocol.enclaveinfo_v1(mrenclave, mrsigner, data[64:])
        return data or V1_FALLBACK

    def fetch_v2(self, nonce: bytes) -> tuple[bytes, protocol.Verdict]:
        """The workload's fresh evidence for ``nonce``, inclavared's own verdict on it, and the reply line."""
        workload = None
        identity = None
        try:
            with self._upstream() as up:
                up.send(protocol.make_evidence_request(nonce))
                line = up.recv_line(protocol.MAX_REPLY, timeout=self.config.timeout)
                cert = up.peer_certificate
            workload = protocol.WorkloadEvidence.from_workload_reply(line, cert)
            spki = parse_certificate(cert).spki if cert else None
            result = workload.verify(self._verifier(workload.evidence_type), nonce, at=self.config.clock(),
                                     expected_spki=spki)
            self.config.policy.appraise(result)
            verdict = protocol.Verdict(True, None, None, result.to_dict())
            identity = {k: result.measurements[k] for k in ("mrenclave", "mrsigner") if k in result.measurements}
        except EaaError as e:
            verdict = protocol.Verdict(False, e.code, str(e), None)
        return protocol.enclaveinfo_v2(nonce, workload, verdict, identity), verdict

    # ---- one client ----
    max_request = protocol.MAX_REQUEST + 1  # one byte over the limit, so an oversized request is seen

    def complete(self, buf: bytes) -> bool:
        return protocol.request_complete(buf)

    def timeout_reply(self) -> bytes:
        return protocol.make_error(ProtocolError.code, "request not received in time")

    def handle(self, session: TlsSession, request: bytes | EaaError) -> None:
        """Answer one request (or the framing error it caused) and log its real result, once."""
        peer = peer_name(session.address)
        start = time.monotonic()
        version, outcome = "?", "ok"
        try:
            if isinstance(request, EaaError):
                raise request
            req = protocol.parse_request(request)
            version = str(req.version)
            if req.nonce is None:
                reply = self.fetch_v1()
            else:
                reply, verdict = self.fetch_v2(req.nonce)
                if not verdict.ok:
                    outcome = f"workload rejected [{verdict.error_code}] {verdict.error}"
            session.send(reply)
        except Exception as e:  # noqa: BLE001 - every failure gets an ERROR line and its real result logged
            code = e.code if isinstance(e, EaaError) else "INTERNAL"
            message = str(e) if isinstance(e, EaaError) else f"internal error ({type(e).__name__})"
            outcome = f"error [{code}] {message}"
            if not isinstance(e, EaaError):
                log.error("peer=%s internal error: %s: %s", peer, type(e).__name__, e)
            try:
                session.send(protocol.make_error(code, message))
            except EaaError as send_error:
                outcome += f"; the error line was not delivered: [{send_error.code}] {send_error}"
        finally:
            log.info("peer=%s version=%s result=%s latency_ms=%.1f", peer, version, outcome,
                     (time.monotonic() - start) * 1000)

    # ---- lifecycle ----
    def start(self, sock: socket.socket | None = None) -> ConnectionServer:
        """Serve on ``sock`` (one of the listeners a parent opened for several processes), else listen."""
        if sock is None:
            if self.config.listen is None:
                raise TransportError("no listen address")
            sock = listen(self.config.listen, backlog=self.config.limits.backlog)
        self.server = ConnectionServer(self.server_endpoint, sock, self, self.config.limits)
        return self.server

    def describe(self) -> str:
        """The plugins chosen: inclavared's own attester, the workload's verifier, TLS and crypto."""
        return describe_endpoint(self.server_endpoint, self.upstream_endpoint)

    def serve_forever(self) -> None:
        server = self.server or self.start()
        server.serve_forever()

    def stop(self) -> None:
        """Ask the serving loop to return (safe from a signal handler)."""
        if self.server is not None:
            self.server.stop()

    def shutdown(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            if self.config.listen is not None and self.config.listen.kind == "unix":
                try:
                    os.unlink(self.config.listen.path)
                except OSError:
                    pass

