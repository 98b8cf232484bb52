"""TLS wrappers (``openssl`` 25, ``nulltls`` 0): the transport under an Enclave-TLS session.

``openssl`` (pyOpenSSL): TLS 1.3, down to TLS 1.2 for old peers, and then only with AEAD suites
(ECDHE with AES-GCM or ChaCha20-Poly1305; no CBC, no SHA-1 MAC, no static RSA). Verify modes as
rats-tls sets them: client ``VERIFY_PEER``; server ``VERIFY_NONE``; mutual server
``VERIFY_PEER | VERIFY_FAIL_IF_NO_PEER_CERT``.
The verify callback is where the peer's self-signed certificate is accepted: it runs the full
evidence verification on the leaf, so a peer that fails ends the handshake with a TLS alert and the
verifying side raises the typed error. Nothing is ever raised out of the callback (pyOpenSSL
callbacks must not raise); the error is kept per connection and re-raised after the handshake.
After the handshake, and before any application data, the certificate actually negotiated is
compared with the one verified (and verified now if the callback never saw it).

``nulltls``: plain TCP, no handshake, no certificates (debugging only; never selected automatically).

All socket I/O is non-blocking with an explicit deadline, so every handshake, send and receive has a
timeout. A server that multiplexes many connections drives a handshake one step at a time
(:meth:`OpenSslEndpoint.start_handshake`) and reads without waiting (``recv_nowait``), so no thread
waits on a slow peer.
"""

from __future__ import annotations

import errno
import functools
import select
import socket
import time
from collections.abc import Callable
from typing import Protocol, cast

from OpenSSL import SSL, crypto

from ..errors import EaaError
from ..registry import Registry
from .crypto import Credentials
from .errors import (
    ConnectionClosed,
    HandshakeAbandoned,
    HandshakeFailed,
    PeerCertificateError,
    PeerCertificateRequired,
    PeerRejected,
    TlsTimeout,
)
from .peer import PeerIdentity

PeerCheck = Callable[[bytes | None], PeerIdentity]

MAX_RECORD = 16384
WAIT_READ, WAIT_WRITE = "read", "write"

# TLS 1.2 suites: forward secret and AEAD only, for the ECDSA (DICE) and RSA (legacy) certificates.
TLS12_AEAD_CIPHERS = b":".join((
    b"ECDHE-ECDSA-AES128-GCM-SHA256", b"ECDHE-ECDSA-AES256-GCM-SHA384", b"ECDHE-ECDSA-CHACHA20-POLY1305",
    b"ECDHE-RSA-AES128-GCM-SHA256", b"ECDHE-RSA-AES256-GCM-SHA384", b"ECDHE-RSA-CHACHA20-POLY1305",
))


def _wait(sock: socket.socket, readable: bool, deadline: float | None, what: str) -> None:
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN if readable else select.POLLOUT)
    while True:
        if deadline is None:
            timeout_ms = None
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TlsTimeout(f"timed out waiting for the peer ({what})")
            timeout_ms = max(1, int(remaining * 1000))
        try:
            events = poller.poll(timeout_ms)
        except InterruptedError:
            continue
        if events:
            return


class Channel(Protocol):
    protocol: str
    peer: PeerIdentity | None
    peer_certificate: bytes | None

    def send(self, data: bytes, deadline: float | None) -> None: ...

    def recv(self, max_bytes: int, deadline: float | None) -> bytes: ...

    def recv_nowait(self, max_bytes: int) -> bytes | str: ...

    def close(self) -> None: ...


class Handshake(Protocol):
    def step(self) -> str | None: ...

    def finish(self) -> Channel: ...

    def abort(self) -> None: ...


class Endpoint(Protocol):
    def handshake(self, sock: socket.socket, deadline: float | None) -> Channel: ...

    def start_handshake(self, sock: socket.socket) -> Handshake: ...


# ---------------------------------------------------------------------------------------------
# openssl

_ALERT_HINTS = ("alert", "certificate required")


def _ssl_reason(e: BaseException) -> str:
    args = getattr(e, "args", ())
    if args and isinstance(args[0], list) and args[0]:
        parts = []
        for item in args[0]:
            if isinstance(item, tuple) and item:
                parts.append(str(item[-1]))
        if parts:
            return "; ".join(parts)
    return str(e) or type(e).__name__


class OpenSslChannel:
    def __init__(self, conn: SSL.Connection, sock: socket.socket, peer: PeerIdentity | None,
                 peer_certificate: bytes | None) -> None:
        self._conn = conn
        self._sock = sock
        self.peer = peer
        self.peer_certificate = peer_certificate
        self.protocol = conn.get_protocol_version_name()
        self.cipher = conn.get_cipher_name()
        self._closed = False

    def _io(self, op: Callable[[], bytes | int], deadline: float | None, what: str):  # noqa: ANN202
        while True:
            try:
                return op()
            except SSL.WantReadError:
                _wait(self._sock, True, deadline, what)
            except SSL.WantWriteError:
                _wait(self._sock, False, deadline, what)

    def send(self, data: bytes, deadline: float | None) -> None:
        data = bytes(data)
        pos = 0
        try:
            while pos < len(data):
                chunk = data[pos:pos + MAX_RECORD]
                pos += self._io(functools.partial(self._conn.send, chunk), deadline, "send")
        except SSL.ZeroReturnError:
            raise ConnectionClosed("the peer closed the TLS session") from None
        except SSL.SysCallError as e:
            raise ConnectionClosed(f"connection broke while sending: {_ssl_reason(e)}") from None
        except SSL.Error as e:
            raise self._map_error(e) from None

    def recv(self, max_bytes: int, deadline: float | None) -> bytes:
        data = self._receive(lambda: self._io(lambda: self._conn.recv(max_bytes), deadline, "receive"))
        return cast(bytes, data)  # _io waits until there is data or the end of the stream

    def recv_nowait(self, max_bytes: int) -> bytes | str:
        """At most ``max_bytes`` when a record is ready, b"" at end of stream, else what to wait for
        (:data:`WAIT_READ` or :data:`WAIT_WRITE`)."""
        def once() -> bytes | str:
            try:
                return self._conn.recv(max_bytes)
            except SSL.WantReadError:
                return WAIT_READ
            except SSL.WantWriteError:
                return WAIT_WRITE
        return self._receive(once)

    def _receive(self, op: Callable[[], bytes | str]) -> bytes | str:
        try:
            return op()
        except SSL.ZeroReturnError:
            return b""
        except SSL.SysCallError as e:
            if e.args and e.args[0] in (-1, 0):  # EOF without close_notify: the peer just closed
                return b""
            if e.args and e.args[0] == errno.ECONNRESET:
                raise ConnectionClosed("the peer reset the connection") from None
            raise ConnectionClosed(f"connection broke while receiving: {_ssl_reason(e)}") from None
        except SSL.Error as e:
            raise self._map_error(e) from None

    @staticmethod
    def _map_error(e: SSL.Error) -> EaaError:
        reason = _ssl_reason(e)
        if any(h in reason.lower() for h in _ALERT_HINTS):
            return PeerRejected(f"the peer ended the session with a TLS alert ({reason}); "
                                "it probably rejected our certificate or evidence")
        return HandshakeFailed(f"TLS error: {reason}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.shutdown()
        except Exception:  # noqa: BLE001 - best effort close_notify on a non-blocking socket
            pass
        try:
            self._sock.close()
        except OSError:
            pass


class _VerifyState:
    __slots__ = ("der", "identity", "error")

    def __init__(self) -> None:
        self.der: bytes | None = None
        self.identity: PeerIdentity | None = None
        self.error: BaseException | None = None


class OpenSslEndpoint:
    """One TLS context (certificate, verify mode) used for many connections, like a rats-tls handle."""

    def __init__(self, *, server: bool, mutual: bool, credentials: Credentials | None,
                 check_peer: PeerCheck | None, min_version: int = SSL.TLS1_2_VERSION,
                 max_version: int | None = None) -> None:
        self.server = server
        self.mutual = mutual
        self.check_peer = check_peer
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(min_version)
        if max_version is not None:
            ctx.set_max_proto_version(max_version)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_TICKET)
        ctx.set_cipher_list(TLS12_AEAD_CIPHERS)  # TLS 1.3 suites are all AEAD already
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)  # an idle connection keeps no record buffers
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        if credentials is not None:
            ctx.use_certificate(credentials.certificate)
            ctx.use_privatekey(credentials.private_key)
            ctx.check_privatekey()
        if server:
            self.verify_mode = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT if mutual else SSL.VERIFY_NONE
        else:
            self.verify_mode = SSL.VERIFY_PEER
        # The context refuses everything; each connection installs its own callback (no state shared
        # between connections or threads).
        ctx.set_verify(self.verify_mode, lambda *args: False) if self.verify_mode != SSL.VERIFY_NONE else \
            ctx.set_verify(SSL.VERIFY_NONE)
        self.context = ctx

    def _callback(self, state: _VerifyState) -> Callable[..., bool]:
        check = self.check_peer

        def verify(conn: SSL.Connection, x509: crypto.X509, errnum: int, depth: int, ok: int) -> bool:
            try:
                if depth != 0:
                    return True  # only the leaf carries evidence; a chain cannot make it self-signed
                der = crypto.dump_certificate(crypto.FILETYPE_ASN1, x509)
                if state.identity is not None and state.der == der:
                    return True  # OpenSSL calls again for the same certificate (e.g. after error 18)
                if state.error is not None:
                    return False
                state.der = der
                if check is None:
                    return True
                state.identity = check(der)
                return True
            except BaseException as e:  # noqa: BLE001 - never raise through OpenSSL
                state.error = e
                return False

        return verify

    def handshake(self, sock: socket.socket, deadline: float | None) -> OpenSslChannel:
        hs = self.start_handshake(sock)
        while (want := hs.step()) is not None:
            _wait(sock, want == WAIT_READ, deadline, "TLS handshake")
        return hs.finish()

    def start_handshake(self, sock: socket.socket) -> OpenSslHandshake:
        return OpenSslHandshake(self, sock)

    @staticmethod
    def _typed(e: BaseException) -> BaseException:
        if isinstance(e, EaaError):
            return e
        return PeerCertificateError(f"peer certificate check failed: {type(e).__name__}: {e}")


class OpenSslHandshake:
    """One handshake, driven a step at a time so that a caller can wait for many peers at once.

    :meth:`step` returns what the socket must become (:data:`WAIT_READ`/:data:`WAIT_WRITE`) before the
    next step, or None once the handshake is complete; :meth:`finish` then checks the certificate
    actually negotiated and returns the channel. Failures are the typed errors of :meth:`handshake`.
    """

    def __init__(self, endpoint: OpenSslEndpoint, sock: socket.socket) -> None:
        self.endpoint = endpoint
        self.sock = sock
        sock.setblocking(False)
        self.conn = conn = SSL.Connection(endpoint.context, sock)
        self.state = _VerifyState()
        if endpoint.verify_mode != SSL.VERIFY_NONE:
            conn.set_verify(endpoint.verify_mode, endpoint._callback(self.state))
        if endpoint.server:
            conn.set_accept_state()
        else:
            conn.set_connect_state()

    def step(self) -> str | None:
        state = self.state
        try:
            self.conn.do_handshake()
            return None
        except SSL.WantReadError:
            return WAIT_READ
        except SSL.WantWriteError:
            return WAIT_WRITE
        except SSL.SysCallError as e:
            if state.error is not None:
                raise self.endpoint._typed(state.error) from None
            raise HandshakeAbandoned(f"the connection closed during the TLS handshake ({_ssl_reason(e)})") from None
        except SSL.Error as e:
            if state.error is not None:
                raise self.endpoint._typed(state.error) from None
            reason = _ssl_reason(e)
            low = reason.lower()
            if "peer did not return a certificate" in low or "certificate required" in low and self.endpoint.server:
                raise PeerCertificateRequired("mutual TLS: the client presented no certificate") from None
            if any(h in low for h in _ALERT_HINTS):
                raise PeerRejected(f"the peer rejected the handshake with a TLS alert ({reason}); it probably "
                                   "did not accept our certificate or evidence") from None
            raise HandshakeFailed(f"TLS handshake failed: {reason}") from None

    def finish(self) -> OpenSslChannel:
        conn, state, check = self.conn, self.state, self.endpoint.check_peer
        peer_x509 = conn.get_peer_certificate()
        peer_der = crypto.dump_certificate(crypto.FILETYPE_ASN1, peer_x509) if peer_x509 is not None else None
        identity = None
        channel = OpenSslChannel(conn, self.sock, None, peer_der)
        if check is not None:
            try:
                if state.identity is not None and state.der == peer_der:
                    identity = state.identity
                else:  # the callback did not see this certificate: verify it before any application data
                    identity = check(peer_der)
            except BaseException:
                channel.close()
                raise
        channel.peer = identity
        return channel

    def abort(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class OpenSslTls:
    name = "openssl"
    needs_certificate = True

    def __init__(self, **_: object) -> None:
        pass

    def endpoint(self, *, server: bool, mutual: bool, credentials: Credentials | None,
                 check_peer: PeerCheck | None, **options: object) -> OpenSslEndpoint:
        return OpenSslEndpoint(server=server, mutual=mutual, credentials=credentials, check_peer=check_peer,
                               **options)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# nulltls

class NullTlsChannel:
    protocol = "none"

    def __init__(self, sock: socket.socket, peer: PeerIdentity | None) -> None:
        self._sock = sock
        self.peer = peer
        self.peer_certificate: bytes | None = None  # plain TCP: no certificate

    def send(self, data: bytes, deadline: float | None) -> None:
        view = memoryview(bytes(data))
        while view:
            try:
                n = self._sock.send(view)
                view = view[n:]
            except (BlockingIOError, InterruptedError):
                _wait(self._sock, False, deadline, "send")
            except OSError as e:
                raise ConnectionClosed(f"connection broke while sending: {e.strerror or e}") from None

    def recv(self, max_bytes: int, deadline: float | None) -> bytes:
        while True:
            try:
                return self._sock.recv(max_bytes)
            except (BlockingIOError, InterruptedError):
                _wait(self._sock, True, deadline, "receive")
            except OSError as e:
                raise ConnectionClosed(f"connection broke while receiving: {e.strerror or e}") from None

    def recv_nowait(self, max_bytes: int) -> bytes | str:
        try:
            return self._sock.recv(max_bytes)
        except (BlockingIOError, InterruptedError):
            return WAIT_READ
        except OSError as e:
            raise ConnectionClosed(f"connection broke while receiving: {e.strerror or e}") from None

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


class NullTlsHandshake:
    """Plain TCP has no handshake: the first step completes it."""

    def __init__(self, endpoint: NullTlsEndpoint, sock: socket.socket) -> None:
        self.endpoint = endpoint
        self.sock = sock
        sock.setblocking(False)

    def step(self) -> str | None:
        return None

    def finish(self) -> NullTlsChannel:
        return self.endpoint.handshake(self.sock, None)

    def abort(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class NullTlsEndpoint:
    def __init__(self, check_peer: PeerCheck | None) -> None:
        self.check_peer = check_peer

    def handshake(self, sock: socket.socket, deadline: float | None) -> NullTlsChannel:
        sock.setblocking(False)
        identity = None
        if self.check_peer is not None:
            try:
                identity = self.check_peer(None)
            except BaseException:
                sock.close()
                raise
        return NullTlsChannel(sock, identity)

    def start_handshake(self, sock: socket.socket) -> NullTlsHandshake:
        return NullTlsHandshake(self, sock)


class NullTls:
    name = "nulltls"
    needs_certificate = False

    def __init__(self, **_: object) -> None:
        pass

    def endpoint(self, *, server: bool, mutual: bool, credentials: Credentials | None,
                 check_peer: PeerCheck | None, **_: object) -> NullTlsEndpoint:
        return NullTlsEndpoint(check_peer)


tls_wrappers: Registry[OpenSslTls | NullTls] = Registry("tls wrapper")
tls_wrappers.register("openssl", 25, OpenSslTls)
tls_wrappers.register("nulltls", 0, NullTls, auto=False)

__all__ = ["Channel", "Endpoint", "Handshake", "NullTls", "OpenSslTls", "WAIT_READ", "WAIT_WRITE", "tls_wrappers"]
