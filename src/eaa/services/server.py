"""The connection model inclavared and enclave-tls-server share: many waiting peers, few workers.

A thread per connection lets idle or slow peers (slowloris) hold every thread while real clients
wait. Here one thread waits for all connections at once (``selectors``): it accepts without
blocking, drives each TLS handshake a step at a time as bytes arrive, and reads the request. Only
a complete request (or a request that broke the service's framing) goes to a bounded pool of
worker threads, which runs the service's handler; so do the handshake steps of a mutual-TLS
server, because they verify the client's evidence. So work is bounded by ``workers`` and waiting
connections only cost a file descriptor and a little memory (no TLS state before their first byte).

Limits, all configurable (:class:`~.limits.ServerLimits`, flags from :mod:`.limits`):

- ``handshake_timeout``: a connection must finish its TLS handshake and send its request within
  this many seconds of being accepted, or it is closed (a client that finished its handshake gets
  the service's timeout reply first).
- ``max_per_source``: connections from one client address; one more sheds that address's least
  recently active connection if it has been idle for a second, else the newcomer is refused. An
  address that floods connections so only churns through refusals (cheap: accept and close), and
  connections of that address that are making progress are not displaced by the flood.
- ``max_connections``: connections in all; one more sheds the least recently active idle
  connection. Only when every connection is busy (its request is being served) is the new one refused.
- ``backlog``: the kernel's queue of connections not yet accepted.

Shedding, refusals and handshake timeouts are logged as WARNING at most once per
``report_every`` seconds with their counts, so an attack cannot flood the log; each connection's
fate is also logged at DEBUG. Port probes (connect, then close) are DEBUG only.
"""

from __future__ import annotations

import errno
import logging
import queue
import resource
import selectors
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import EaaError
from ..tls.errors import HandshakeAbandoned
from ..tls.session import EnclaveTls, TlsSession
from ..tls.wrappers import WAIT_READ, Channel, Handshake
from .limits import ServerLimits

log = logging.getLogger("eaa.server")

ACCEPT_BURST = 64  # connections accepted per readiness event, so the loop keeps serving the others
SWEEP_INTERVAL = 0.1  # seconds between deadline checks
FD_RESERVE = 64  # descriptors kept for upstream connections, files and the listener
SOURCE_SHED_MIN_IDLE = 1.0  # seconds: a newcomer over its address's limit only displaces one idle this long


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft descriptor limit towards ``wanted`` (never above the hard limit); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def describe_endpoint(endpoint: EnclaveTls, verifier: EnclaveTls | None = None) -> str:
    """What an endpoint chose: ``attester=… verifier=… tls=… crypto=…`` (``verifier`` defaults to
    ``endpoint``; ``-`` where nothing is used, ``by evidence type`` when no verifier was named)."""
    verifier = verifier or endpoint
    attester = getattr(endpoint.attester, "name", None) or "-"
    if verifier.peer_verifier is None:
        chosen = "-"
    else:
        named = verifier.config.verifier
        if named is None or named == "":
            chosen = "by evidence type"
        else:
            chosen = named if isinstance(named, str) else getattr(named, "name", type(named).__name__)
    return f"attester={attester} verifier={chosen} tls={endpoint.tls.name} crypto={endpoint.crypto.name}"


class Service(Protocol):
    """What a protocol served by :class:`ConnectionServer` provides."""

    max_request: int  # bytes read per attempt; a request never needs more

    def complete(self, buf: bytes) -> bool:
        """Whether ``buf`` holds a whole request (raise a ProtocolError when it never can)."""
        ...

    def handle(self, session: TlsSession, request: bytes | EaaError) -> None:
        """Serve one request, or answer a request that broke the framing; runs in a worker thread."""
        ...

    def timeout_reply(self) -> bytes | None:
        """Sent (without waiting) to a client that finished its handshake but no request in time."""
        ...


def peer_name(address: Any) -> str:
    """``ip:port`` of a TCP peer, ``unix`` for a Unix-socket peer."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return "unix"


def log_connection_error(address: Any, e: BaseException) -> None:
    """How a failed connection is logged: probes at DEBUG, peers' failures at WARNING, bugs at ERROR."""
    peer = peer_name(address)
    if isinstance(e, HandshakeAbandoned):  # port probes and readiness checks do this
        log.debug("peer=%s closed before a request: %s", peer, e)
    elif isinstance(e, EaaError):
        log.warning("peer=%s [%s] %s", peer, e.code, e)
    else:  # a bug must not take the daemon down, but it must be seen
        log.error("peer=%s %s: %s", peer, type(e).__name__, e)


class _Conn:
    __slots__ = ("sock", "addr", "source", "deadline", "handshake", "channel", "session", "buf", "request", "busy",
                 "closed", "events", "step", "active_at")

    def __init__(self, sock: socket.socket, addr: Any, source: str | None, deadline: float) -> None:
        self.sock = sock
        self.addr = addr
        self.source = source
        self.deadline = deadline
        self.handshake: Handshake | None = None
        self.channel: Channel | None = None
        self.session: TlsSession | None = None
        self.buf = b""
        self.request: bytes | EaaError | None = None  # for a worker: None means "a handshake step"
        self.step: str | BaseException | object | None = None  # what a worker's job came back with
        self.busy = False  # queued for or running in a worker: never shed, never timed out
        self.closed = False
        self.events = 0  # registered with the selector for these
        self.active_at = 0.0  # when the peer last made progress (the loop's clock)

    @property
    def peer(self) -> str:
        return peer_name(self.addr)

    def release(self) -> None:
        """Drop the TLS state of a closed connection: the deadline queue keeps the rest a while."""
        self.handshake = self.channel = self.session = None
        self.buf, self.request = b"", None


_SERVED = object()  # a worker's job was the request: the connection is finished


class _Counters:
    """Load events since the last report, logged at most once per period."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.counts: dict[str, int] = {}
        self.next_report = 0.0

    def add(self, what: str, now: float) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        if now >= self.next_report:
            self.flush(now)

    def flush(self, now: float) -> None:
        """Log what was counted (nothing when nothing was); the next report is due a period later."""
        if self.counts:
            parts = ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items()))
            log.warning("shedding load: %s (limits: see --max-connections, --max-per-source, "
                        "--handshake-timeout)", parts)
            self.counts = {}
            self.next_report = now + self.every


class ConnectionServer:
    """Serve ``service`` on a listening socket with one waiting thread and ``limits.workers`` workers.

    It raises the process's soft descriptor limit to fit ``max_connections`` (a daemon owns its
    process); when the hard limit is lower, it serves fewer connections and says so.
    """

    def __init__(self, endpoint: EnclaveTls, sock: socket.socket, service: Service,
                 limits: ServerLimits = ServerLimits(), *,
                 on_error: Callable[[Any, BaseException], None] = log_connection_error,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoint = endpoint
        self.sock = sock
        self.service = service
        self.limits = limits.validate()
        self.on_error = on_error
        self.clock = clock
        soft = raise_fd_limit(limits.max_connections + 2 * limits.workers + FD_RESERVE)
        self.max_connections = limits.max_connections
        if soft != resource.RLIM_INFINITY and soft - 2 * limits.workers - FD_RESERVE < limits.max_connections:
            self.max_connections = max(1, soft - 2 * limits.workers - FD_RESERVE)
            log.warning("the descriptor limit (%d) allows %d connections, not %d", soft, self.max_connections,
                        limits.max_connections)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._done: deque[_Conn] = deque()  # finished by workers; forgotten by the loop thread
        self._work: queue.SimpleQueue[_Conn | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._workers: list[threading.Thread] = []
        # Loop-thread state: every open connection, idle ones in order of last activity.
        self._open: set[_Conn] = set()
        self._idle: OrderedDict[_Conn, None] = OrderedDict()
        self._by_source: dict[str, OrderedDict[_Conn, None]] = {}  # idle connections per address
        self._source_count: dict[str, int] = {}  # open connections per address, idle or busy
        self._deadlines: deque[_Conn] = deque()  # in accept order, so in deadline order
        self._counters = _Counters(limits.report_every)
        self._verifies_peers = endpoint.peer_verifier is not None
        self._accept_paused = False

    @property
    def address(self) -> tuple[str, int]:
        name = self.sock.getsockname()
        return (name, 0) if isinstance(name, str) else (name[0], name[1])

    @property
    def connections(self) -> int:
        """Connections open now (for tests and metrics; read from any thread)."""
        return len(self._open)

    # ---- lifecycle ----
    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown`; nothing a client does stops the loop."""
        self.sock.setblocking(False)
        self._selector.register(self.sock, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._wake_r)
        for i in range(self.limits.workers):
            t = threading.Thread(target=self._worker, name=f"eaa-worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        next_sweep = self.clock() + SWEEP_INTERVAL
        try:
            while not self._stop.is_set():
                now = self.clock()
                for key, mask in self._selector.select(max(0.0, next_sweep - now)):
                    try:
                        self._dispatch(key, mask)
                    except Exception as e:  # noqa: BLE001 - last line of defence for the loop
                        log.error("connection loop: %s: %s", type(e).__name__, e)
                now = self.clock()
                self._forget_done()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + SWEEP_INTERVAL
        finally:
            self._close_all()
            self._stopped.set()

    def stop(self) -> None:
        """Make :meth:`serve_forever` return soon; safe from a signal handler and from any thread."""
        self._stop.set()
        self._wake()

    def shutdown(self, wait: float = 5.0) -> None:
        """Stop accepting, close idle connections, and wait up to ``wait`` s for requests being served.
        Not from the thread running :meth:`serve_forever` before it returned (use :meth:`stop` there)."""
        self.stop()
        if self._workers:
            self._stopped.wait(wait)
        else:
            self._close_listener()
        deadline = time.monotonic() + wait
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))
        while self._done:  # handshakes a worker finished after the loop ended
            conn = self._done.popleft()
            if isinstance(conn.step, BaseException) and not conn.closed:
                self._fail(conn, conn.step)  # a peer's failure is logged even when it races the shutdown
            elif conn.step is not _SERVED:
                self._close(conn)
        for s in (self._wake_r, self._wake_w):
            s.close()

    def _close_listener(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _close_all(self) -> None:
        self._counters.flush(self.clock())
        self._close_listener()
        for conn in list(self._open):
            if not conn.busy:
                self._close(conn)
        for _ in self._workers:
            self._work.put(None)
        self._selector.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full (already woken) or closed
            pass

    # ---- the loop thread ----
    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.data is None:
            self._accept()
        elif key.data is self._wake_r:
            try:
                while self._wake_r.recv(4096):
                    pass
            except OSError:
                pass
        else:
            self._progress(key.data)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BURST):
            try:
                sock, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: free one, or stop accepting for a moment (the kernel keeps
                    # the clients queued meanwhile) rather than spin on a listener that stays readable.
                    if not self._shed_one(self._idle, "shed (descriptors exhausted)"):
                        self._counters.add("accept paused (descriptors exhausted)", self.clock())
                        self._pause_accepting()
                    return
                if e.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                log.warning("accept failed: %s", e.strerror or e)
                return
            self._admit(sock, addr)

    def _pause_accepting(self) -> None:
        if not self._accept_paused:
            self._accept_paused = True
            self._selector.unregister(self.sock)

    def _resume_accepting(self) -> None:
        if self._accept_paused:
            self._accept_paused = False
            self._selector.register(self.sock, selectors.EVENT_READ, None)

    def _admit(self, sock: socket.socket, addr: Any) -> None:
        now = self.clock()
        source = addr[0] if isinstance(addr, tuple) and addr else None
        if source is not None and self._source_count.get(source, 0) >= self.limits.max_per_source:
            if not self._shed_one(self._by_source.get(source, OrderedDict()), "shed (per-source limit)",
                                  min_idle=SOURCE_SHED_MIN_IDLE):
                self._refuse(sock, addr, "refused (per-source limit)")
                return
        if len(self._open) >= self.max_connections and not self._shed_one(self._idle, "shed (total limit)"):
            self._refuse(sock, addr, "refused (total limit, all busy)")
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        conn = _Conn(sock, addr, source, now + self.limits.handshake_timeout)
        self._open.add(conn)
        if source is not None:
            self._source_count[source] = self._source_count.get(source, 0) + 1
        self._deadlines.append(conn)
        sock.setblocking(False)
        self._mark_idle(conn, WAIT_READ)  # the TLS state is made when the peer's first bytes arrive

    def _refuse(self, sock: socket.socket, addr: Any, what: str) -> None:
        log.debug("peer=%s %s", peer_name(addr), what)
        self._counters.add(what, self.clock())
        try:
            sock.close()
        except OSError:
            pass

    def _shed_one(self, idle: OrderedDict[_Conn, None], what: str, min_idle: float = 0.0) -> bool:
        """Close the least recently active connection of ``idle`` if it has been idle for ``min_idle``
        seconds; False when there is none."""
        for conn in idle:
            if self.clock() - conn.active_at < min_idle:
                return False
            log.debug("peer=%s %s", conn.peer, what)
            self._counters.add(what, self.clock())
            self._close(conn)
            return True
        return False

    def _mark_idle(self, conn: _Conn, want: str) -> None:
        """``conn`` waits for its peer: (re)register it and make it the most recently active."""
        events = selectors.EVENT_READ if want == WAIT_READ else selectors.EVENT_WRITE
        if conn.events != events:
            if conn.events:
                self._selector.modify(conn.sock, events, conn)
            else:
                self._selector.register(conn.sock, events, conn)
            conn.events = events
        conn.active_at = self.clock()
        self._idle[conn] = None
        self._idle.move_to_end(conn)
        if conn.source is not None:
            peers = self._by_source.setdefault(conn.source, OrderedDict())
            peers[conn] = None
            peers.move_to_end(conn)

    def _unmark(self, conn: _Conn) -> None:
        self._idle.pop(conn, None)
        if conn.source is not None:
            peers = self._by_source.get(conn.source)
            if peers is not None:
                peers.pop(conn, None)
                if not peers:
                    del self._by_source[conn.source]
        if conn.events:
            conn.events = 0
            try:
                self._selector.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _progress(self, conn: _Conn) -> None:
        """Advance ``conn`` as far as its peer's bytes allow: handshake, then the request."""
        if conn.closed or conn.busy:
            return
        try:
            if conn.session is None:
                if conn.handshake is None:  # silent peers and probes never cost a TLS object
                    conn.handshake = self.endpoint.endpoint.start_handshake(conn.sock)
                if self._verifies_peers:  # the step may verify the peer's evidence: a worker's job
                    self._unmark(conn)
                    conn.busy = True
                    conn.request = None
                    self._work.put(conn)
                    return
                want = self._handshake_step(conn)
                if want is not None:
                    self._mark_idle(conn, want)
                    return
            assert conn.channel is not None
            while True:
                data = conn.channel.recv_nowait(self.service.max_request)
                if isinstance(data, str):
                    self._mark_idle(conn, data)
                    return
                if not data:  # closed by the peer
                    if conn.buf:
                        self._submit(conn, conn.buf)
                    else:
                        log.debug("peer=%s closed before a request", conn.peer)
                        self._close(conn)
                    return
                conn.buf += data
                try:
                    complete = self.service.complete(conn.buf)
                except EaaError as e:
                    self._submit(conn, e)
                    return
                if complete:
                    self._submit(conn, conn.buf)
                    return
        except Exception as e:  # noqa: BLE001 - the peer's failure, typed by the TLS layer
            self._fail(conn, e)

    def _handshake_step(self, conn: _Conn) -> str | None:
        """One handshake step; once complete, the session. In the loop thread, or in a worker when the
        step may verify the peer's certificate (mutual TLS)."""
        assert conn.handshake is not None
        want = conn.handshake.step()
        if want is None:
            conn.channel = channel = conn.handshake.finish()
            conn.handshake = None
            conn.session = TlsSession(channel, role="server", config=self.endpoint.config,
                                      local=self.endpoint.credentials, address=conn.addr)
        return want

    def _resume(self, conn: _Conn) -> None:
        """Back from a handshake step in a worker: wait for the peer again, or read its request."""
        conn.busy = False
        outcome, conn.step = conn.step, None
        if conn.closed:
            return
        if isinstance(outcome, BaseException):
            self._fail(conn, outcome)
        elif self.clock() >= conn.deadline:
            self._expire(conn, self.clock())
        elif isinstance(outcome, str):
            self._mark_idle(conn, outcome)
        else:
            self._mark_idle(conn, WAIT_READ)  # the newest activity, and the peer's request may be there
            self._progress(conn)

    def _fail(self, conn: _Conn, e: BaseException) -> None:
        self._report(conn.addr, e)
        self._close(conn)

    def _report(self, addr: Any, e: BaseException) -> None:
        try:
            self.on_error(addr, e)
        except Exception:  # noqa: BLE001
            log_connection_error(addr, e)

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._unmark(conn)
        self._forget(conn)
        if conn.session is not None:
            conn.session.close()
        elif conn.handshake is not None:
            conn.handshake.abort()
        else:
            try:
                conn.sock.close()
            except OSError:
                pass
        conn.release()

    def _sweep(self, now: float) -> None:
        while self._deadlines and self._deadlines[0].deadline <= now:
            conn = self._deadlines.popleft()
            if not conn.closed and not conn.busy:  # a busy one is checked when it comes back (_resume)
                self._expire(conn, now)
        self._resume_accepting()
        if now >= self._counters.next_report:
            self._counters.flush(now)

    def _expire(self, conn: _Conn, now: float) -> None:
        """Close a connection that reached its deadline before its request arrived."""
        if conn.session is not None:
            self._counters.add("timed out (no request)", now)
            reply = self.service.timeout_reply()
            if reply:
                try:
                    conn.session.send(reply, timeout=0)
                except EaaError:
                    pass
            log.debug("peer=%s no request within %gs", conn.peer, self.limits.handshake_timeout)
        else:
            self._counters.add("timed out (handshake)", now)
            log.debug("peer=%s no TLS handshake within %gs", conn.peer, self.limits.handshake_timeout)
        self._close(conn)

    def _submit(self, conn: _Conn, request: bytes | EaaError) -> None:
        self._unmark(conn)
        conn.busy = True
        conn.request = request
        self._work.put(conn)

    def _forget(self, conn: _Conn) -> None:
        if conn in self._open:
            self._open.discard(conn)
            if conn.source is not None:
                n = self._source_count.get(conn.source, 1) - 1
                if n > 0:
                    self._source_count[conn.source] = n
                else:
                    self._source_count.pop(conn.source, None)

    def _forget_done(self) -> None:
        while self._done:
            conn = self._done.popleft()
            if conn.step is not _SERVED:
                self._resume(conn)
                continue
            conn.closed = True
            self._forget(conn)
            conn.release()

    # ---- worker threads ----
    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            conn = item
            try:
                if conn.request is None:
                    conn.step = self._handshake_step(conn)
                else:
                    self._serve(conn)
            except Exception as e:  # noqa: BLE001 - one client's failure never stops a worker
                conn.step = e
            finally:
                self._done.append(conn)
                self._wake()

    def _serve(self, conn: _Conn) -> None:
        session = conn.session
        assert session is not None and conn.request is not None
        try:
            with session:
                self.service.handle(session, conn.request)
        except Exception as e:  # noqa: BLE001
            self._report(conn.addr, e)
        finally:
            conn.step = _SERVED


__all__ = ["ConnectionServer", "ServerLimits", "Service", "describe_endpoint", "log_connection_error",
           "peer_name", "raise_fd_limit"]
