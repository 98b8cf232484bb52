"""Enclave-TLS sessions: ``connect()``, ``accept()``, :class:`TlsClient` and :class:`TlsServer`.

An :class:`EnclaveTls` is what ``rats_tls_init`` makes: the selected plugins, the certificate with
evidence (made once, for a server or a mutual client) and the peer verifier with its cache. Every
session it produces has verified its peer (when the mode asks for it) before the caller can send or
receive a byte; ``send``/``recv`` map to one TLS write/read, like ``rats_tls_transmit/receive``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..attest.evidence import Attester
from ..attest.registry import attesters
from ..errors import ConfigError, EaaError, TransportError
from ..verify.result import VerificationResult
from .config import TlsConfig
from .crypto import Credentials, crypto_wrappers
from .errors import ConnectionClosed, TlsTimeout
from .peer import PeerIdentity, PeerVerifier, make_peer_verifier
from .wrappers import Channel, tls_wrappers

log = logging.getLogger("eaa.tls")


def select_attester(name: str | Attester | None, options: Mapping[str, Any] | None = None) -> Attester:
    """The named attester, or the highest-priority automatic one that is available here (rats-tls rules).

    ``sim_dir`` is where the simulated platform lives, a setting of the environment rather than of one
    attester: it goes to the attesters that take it. Every other option must be taken by a named attester."""
    if name is not None and not isinstance(name, str):
        return name
    opts = {k: v for k, v in (options or {}).items() if v is not None}
    sim_dir = opts.pop("sim_dir", None)
    if name and sim_dir is not None and "sim_dir" in attesters.get(name).options:
        opts["sim_dir"] = sim_dir
    return attesters.select(name or None, **opts)


class TlsSession:
    """One attested connection. Use as a context manager; ``peer_result``/``peer_claims`` describe the peer."""

    def __init__(self, channel: Channel, *, role: str, config: TlsConfig, local: Credentials | None,
                 address: Any = None) -> None:
        self._channel = channel
        self.role = role
        self.config = config
        self.local = local
        self.address = address
        self._closed = False
        self._lock = threading.Lock()
        self._pending = b""  # read past the end of a line by recv_line

    # ---- what we know about the peer ----
    @property
    def peer(self) -> PeerIdentity | None:
        """The verified peer, or None when this side does not verify (one-way server)."""
        return self._channel.peer

    @property
    def peer_result(self) -> VerificationResult | None:
        return self.peer.result if self.peer else None

    @property
    def peer_claims(self) -> Mapping[str, bytes]:
        return self.peer.claims if self.peer else {}

    @property
    def peer_certificate(self) -> bytes | None:
        return self._channel.peer_certificate

    @property
    def local_certificate(self) -> bytes | None:
        return self.local.der if self.local else None

    @property
    def protocol(self) -> str:
        return self._channel.protocol

    # ---- data ----
    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.config.timeout if timeout is None else timeout)

    def send(self, data: bytes, *, timeout: float | None = None) -> None:
        if self._closed:
            raise ConnectionClosed("the session is closed")
        self._channel.send(data, self._deadline(timeout))

    def recv(self, max_bytes: int | None = None, *, timeout: float | None = None) -> bytes:
        """At most ``max_bytes`` (capped by ``config.max_message``) from one TLS read; b"" at end of stream."""
        if self._closed:
            raise ConnectionClosed("the session is closed")
        limit = self.config.max_message if max_bytes is None else min(max_bytes, self.config.max_message)
        if limit <= 0:
            raise ConfigError("recv size must be positive")
        if self._pending:
            data, self._pending = self._pending[:limit], self._pending[limit:]
            return data
        return self._channel.recv(limit, self._deadline(timeout))

    def recv_line(self, max_bytes: int | None = None, *, timeout: float | None = None) -> bytes:
        """Bytes up to and including ``\\n`` (or end of stream), at most ``max_bytes``, within one deadline."""
        from .errors import MessageTooLarge

        limit = self.config.max_message if max_bytes is None else max_bytes
        deadline = self._deadline(timeout)
        if self._closed:
            raise ConnectionClosed("the session is closed")
        buf = bytearray(self._pending)
        self._pending = b""
        while b"\n" not in buf:
            if len(buf) > limit:
                raise MessageTooLarge(f"line exceeds {limit} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TlsTimeout("timed out waiting for a line")
            chunk = self._channel.recv(min(self.config.max_message, limit + 1 - len(buf)) or 1, deadline)
            if not chunk:
                break
            buf += chunk
        idx = buf.find(b"\n")
        line, rest = (bytes(buf), b"") if idx < 0 else (bytes(buf[:idx + 1]), bytes(buf[idx + 1:]))
        if len(line) > limit:
            raise MessageTooLarge(f"line exceeds {limit} bytes")
        self._pending = rest
        return line

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._channel.close()

    def __enter__(self) -> TlsSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EnclaveTls:
    """A configured endpoint for one role (``rats_tls_init``): plugins, certificate, verifier, TLS context."""

    def __init__(self, config: TlsConfig | None = None, *, server: bool) -> None:
        self.config = config = config or TlsConfig()
        self.server = server
        self.crypto = crypto_wrappers.select(config.crypto or None)
        self.tls = tls_wrappers.select(config.tls or None)
        self.credentials: Credentials | None = None
        self.attester: Attester | None = None
        if self.tls.needs_certificate and (server or config.mutual):
            options = {"sim_dir": config.sim_dir, **config.attester_options}
            self.attester = attester = select_attester(config.attester, options)
            self.credentials = self.crypto.create_credentials(
                attester, cert_format=config.cert_format, key_algorithm=config.key_algorithm,
                custom_claims=config.custom_claims, endorsements=config.endorsements)
        elif config.custom_claims and (server or config.mutual):
            log.warning("custom claims are not sent over %s", self.tls.name)
        self.peer_verifier: PeerVerifier | None = None
        if not server or config.mutual:
            self.peer_verifier = make_peer_verifier(config)
        check = self.peer_verifier.verify_certificate if self.peer_verifier else None
        self.endpoint = self.tls.endpoint(server=server, mutual=config.mutual, credentials=self.credentials,
                                          check_peer=check)

    def wrap(self, sock: socket.socket, *, address: Any = None, timeout: float | None = None) -> TlsSession:
        """Run the handshake on a connected socket and verify the peer; the socket is closed on failure."""
        deadline = time.monotonic() + (self.config.timeout if timeout is None else timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        try:
            channel = self.endpoint.handshake(sock, deadline)
        except BaseException:
            try:
                sock.close()
            except OSError:
                pass
            raise
        return TlsSession(channel, role="server" if self.server else "client", config=self.config,
                          local=self.credentials, address=address)


class TlsClient:
    """A client endpoint; reuse it for many connections (one certificate, a warm verification cache)."""

    def __init__(self, config: TlsConfig | None = None) -> None:
        self.handle = EnclaveTls(config, server=False)
        self.config = self.handle.config

    def connect(self, host: str, port: int, *, timeout: float | None = None) -> TlsSession:
        t = self.config.timeout if timeout is None else timeout
        try:
            # An ASCII name as bytes, which getaddrinfo takes (typeshed says str) without loading the IDNA codec.
            name = host.encode("ascii") if host.isascii() else host
            sock = socket.create_connection((name, port), timeout=t)  # type: ignore[arg-type]
        except TimeoutError:
            raise TlsTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as e:
            raise TransportError(f"cannot connect to {host}:{port}: {e.strerror or e}") from None
        return self.handle.wrap(sock, address=(host, port), timeout=t)


def connect(host: str, port: int, config: TlsConfig | None = None, *, timeout: float | None = None) -> TlsSession:
    """Connect, handshake and verify the server; returns a session ready for ``send``/``recv``."""
    return TlsClient(config).connect(host, port, timeout=timeout)


class TlsServer:
    """A listening Enclave-TLS server: one certificate for every connection, each handled in its own thread."""

    def __init__(self, config: TlsConfig | None = None, host: str = "127.0.0.1", port: int = 1234, *,
                 backlog: int = 5, handle: EnclaveTls | None = None, sock: socket.socket | None = None) -> None:
        """Listen on ``host:port``, or serve ``sock``, a listening socket of any family (e.g. a Unix socket)."""
        self.handle = handle or EnclaveTls(config, server=True)
        self.config = self.handle.config
        if sock is not None:
            self.sock = sock
        else:
            try:
                self.sock = socket.create_server((host, port), backlog=backlog, reuse_port=False)
            except OSError as e:
                raise TransportError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        self._stop = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._tlock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); a Unix socket gives (path, 0)."""
        name = self.sock.getsockname()
        if isinstance(name, str):
            return name, 0
        return name[0], name[1]

    @property
    def credentials(self) -> Credentials | None:
        return self.handle.credentials

    @property
    def attester(self) -> Attester | None:
        return self.handle.attester

    def _accept_raw(self, timeout: float | None) -> tuple[socket.socket, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            wait = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if wait <= 0:
                raise TlsTimeout("no connection arrived in time")
            try:
                self.sock.settimeout(wait)  # inside the try: shutdown() may close the socket at any moment
                return self.sock.accept()
            except TimeoutError:
                continue
            except OSError as e:
                if self._stop.is_set():
                    break
                raise TransportError(f"accept failed: {e.strerror or e}") from None
        raise ConnectionClosed("the server is shut down")

    def accept(self, timeout: float | None = None) -> TlsSession:
        """Accept one connection and run its handshake in this thread. Typed errors for a failed peer."""
        conn, addr = self._accept_raw(timeout)
        return self.handle.wrap(conn, address=addr)

    def serve_forever(self, handler: Callable[[TlsSession], None], *, max_clients: int = 64,
                      on_error: Callable[[Any, BaseException], None] | None = None) -> None:
        """Serve clients concurrently until :meth:`shutdown`; a failing client never stops the server."""
        slots = threading.BoundedSemaphore(max_clients)

        def run(conn: socket.socket, addr: Any) -> None:
            try:
                try:
                    session = self.handle.wrap(conn, address=addr)
                except BaseException as e:  # noqa: BLE001
                    self._report(on_error, addr, e)
                    return
                with session:
                    try:
                        handler(session)
                    except BaseException as e:  # noqa: BLE001
                        self._report(on_error, addr, e)
            finally:
                slots.release()
                with self._tlock:
                    self._threads.discard(threading.current_thread())

        while not self._stop.is_set():
            try:
                conn, addr = self._accept_raw(None)
            except ConnectionClosed:
                break
            except EaaError as e:
                self._report(on_error, None, e)
                time.sleep(0.05)
                continue
            while not slots.acquire(timeout=0.2):
                if self._stop.is_set():
                    conn.close()
                    return
            t = threading.Thread(target=run, args=(conn, addr), name=f"enclave-tls {addr}", daemon=True)
            with self._tlock:  # started under the lock: shutdown() only ever joins started threads
                self._threads.add(t)
                t.start()

    @staticmethod
    def _report(on_error: Callable[[Any, BaseException], None] | None, addr: Any, e: BaseException) -> None:
        if on_error is not None:
            try:
                on_error(addr, e)
                return
            except Exception:  # noqa: BLE001
                pass
        if isinstance(e, EaaError):
            log.warning("client %s: [%s] %s", addr, e.code, e)
        else:
            log.error("client %s: %s: %s", addr, type(e).__name__, e)

    def shutdown(self, wait: float = 5.0) -> None:
        """Stop accepting, close the listening socket and wait (up to ``wait`` s) for running clients."""
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        deadline = time.monotonic() + wait
        with self._tlock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    close = shutdown

    def __enter__(self) -> TlsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def accept(listener: socket.socket | TlsServer, config: TlsConfig | None = None, *,
           timeout: float | None = None) -> TlsSession:
    """Accept one attested connection.

    On a :class:`TlsServer` this reuses its certificate; on a plain listening socket a server endpoint
    (and so a certificate with fresh evidence) is made for this one connection.
    """
    if isinstance(listener, TlsServer):
        return listener.accept(timeout)
    handle = EnclaveTls(config, server=True)
    previous = listener.gettimeout()
    listener.settimeout(timeout if timeout is not None else handle.config.timeout)
    try:
        conn, addr = listener.accept()
    except TimeoutError:
        raise TlsTimeout("no connection arrived in time") from None
    finally:
        listener.settimeout(previous)
    return handle.wrap(conn, address=addr)
