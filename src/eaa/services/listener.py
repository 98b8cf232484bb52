"""Listening and dialing on the address forms the original tools take: ``ip:port`` or a Unix socket path.

The daemon's accept loop lives here: one thread per connection, a cap on concurrent connections,
the TLS handshake inside the connection's thread (so a slow or hostile peer holds up only itself),
and a stop flag checked between accepts so SIGTERM ends it cleanly.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import stat
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError, EaaError, TransportError
from ..tls.errors import HandshakeAbandoned
from ..tls.session import EnclaveTls, TlsSession

log = logging.getLogger("eaa.listener")
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


@dataclass(frozen=True)
class Address:
    kind: str  # "tcp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if self.kind == "tcp" else self.path


def parse_address(text: str) -> Address:
    """``ip:port``, ``[v6]:port``, ``tcp://host:port``, ``unix://path`` or a bare path (Unix socket)."""
    if not text:
        raise ConfigError("empty address")
    if text.startswith("unix://"):
        path = text[len("unix://"):]
        if not path:
            raise ConfigError(f"bad address {text!r}: no socket path")
        return Address("unix", path=path)
    body = text[len("tcp://"):] if text.startswith("tcp://") else text
    host, sep, port = body.rpartition(":")
    if sep and port.isdigit():
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not text.startswith("tcp://"):
                return Address("unix", path=text)  # as the original: not ip:port, so a socket path
            if not _HOSTNAME.fullmatch(host):
                raise ConfigError(f"bad address {text!r}: {host!r} is neither an IP address nor a host name") \
                    from None
        p = int(port)
        if not 0 <= p <= 65535:
            raise ConfigError(f"bad address {text!r}: port out of range")
        return Address("tcp", host=host, port=p)
    if text.startswith("tcp://"):
        raise ConfigError(f"bad address {text!r}: use tcp://IP:PORT")
    return Address("unix", path=text)


def listen(addr: Address, backlog: int = 128) -> socket.socket:
    try:
        if addr.kind == "tcp":
            family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
            return socket.create_server((addr.host, addr.port), family=family, backlog=backlog)
        try:
            if stat.S_ISSOCK(os.stat(addr.path).st_mode):
                os.unlink(addr.path)  # a stale socket from a previous run, as the original did
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(addr.path)
        s.listen(backlog)
        return s
    except OSError as e:
        raise TransportError(f"cannot listen on {addr}: {e.strerror or e}") from None


def dial(addr: Address, timeout: float) -> socket.socket:
    try:
        if addr.kind == "tcp":
            return socket.create_connection((addr.host, addr.port), timeout=timeout)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(addr.path)
        except BaseException:
            s.close()
            raise
        return s
    except socket.timeout:
        raise TransportError(f"timed out connecting to {addr}") from None
    except OSError as e:
        raise TransportError(f"cannot connect to {addr}: {e.strerror or e}") from None


class Server:
    """Accepts attested connections and hands each session to ``handler`` in its own thread."""

    def __init__(self, addr: Address, endpoint: EnclaveTls, handler: Callable[[TlsSession, Any], None], *,
                 max_connections: int = 64, handshake_timeout: float = 10.0) -> None:
        self.addr = addr
        self.endpoint = endpoint
        self.handler = handler
        self.sock = listen(addr)
        self.handshake_timeout = handshake_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stop = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    @property
    def bound(self) -> Address:
        if self.addr.kind == "tcp":
            host, port = self.sock.getsockname()[:2]
            return Address("tcp", host=host, port=port)
        return self.addr

    def _run(self, conn: socket.socket, peer: Any) -> None:
        try:
            try:
                session = self.endpoint.wrap(conn, address=peer, timeout=self.handshake_timeout)
            except HandshakeAbandoned as e:  # port probes (readiness checks) do exactly this
                log.debug("peer=%s closed during the handshake: %s", peer, e)
                return
            except EaaError as e:
                log.warning("peer=%s handshake failed: [%s] %s", peer, e.code, e)
                return
            except Exception as e:  # noqa: BLE001 - a hostile peer must never take the daemon down
                log.warning("peer=%s handshake failed: %s: %s", peer, type(e).__name__, e)
                return
            with session:
                try:
                    self.handler(session, peer)
                except Exception as e:  # noqa: BLE001
                    log.error("peer=%s handler failed: %s: %s", peer, type(e).__name__, e)
        finally:
            self._slots.release()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def serve_forever(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError as e:
                if self._stop.is_set():
                    break
                log.error("accept failed: %s", e)
                time.sleep(0.05)
                continue
            conn.settimeout(None)
            if self.addr.kind == "unix":
                peer = "unix"
            while not self._slots.acquire(timeout=0.2):
                if self._stop.is_set():
                    conn.close()
                    return
            t = threading.Thread(target=self._run, args=(conn, peer), daemon=True, name=f"conn {peer}")
            with self._lock:
                self._threads.add(t)
            t.start()

    def shutdown(self, wait: float = 5.0) -> None:
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        if self.addr.kind == "unix":
            try:
                os.unlink(self.addr.path)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
