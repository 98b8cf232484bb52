"""The connection model of inclavared and enclave-tls-server: limits, shedding, deadlines, bounded work."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from eaa.errors import ConfigError, EaaError, ProtocolError
from eaa.services.address import Address, listen
from eaa.services.limits import ServerLimits
from eaa.services.server import ConnectionServer, describe_endpoint
from eaa.tls import EnclaveTls, TlsConfig, connect
from eaa.tls.errors import ConnectionClosed, TlsTimeout
from eaa.tls.testing import FakeAttester, FakeVerifier


class Echo:
    """Lines echoed back; ``gate`` holds every handler until set; counts handlers running at once."""

    max_request = 256

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.served = 0

    def complete(self, buf: bytes) -> bool:
        if len(buf) > 100:
            raise ProtocolError("request exceeds 100 bytes")
        return buf.endswith(b"\n")

    def timeout_reply(self) -> bytes:
        return b"TIMEOUT\n"

    def handle(self, session, request: bytes | EaaError) -> None:
        if isinstance(request, EaaError):
            session.send(f"ERR {request.code}\n".encode())
            return
        if request == b"boom\n":
            raise ZeroDivisionError("a bug in the handler")
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            self.gate.wait(30)
            session.send(request)
        finally:
            with self.lock:
                self.running -= 1
                self.served += 1


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self, level: int = logging.DEBUG) -> str:
        return "\n".join(r.getMessage() for r in self.records if r.levelno >= level)


@pytest.fixture
def records() -> Iterator[Records]:
    logger = logging.getLogger("eaa.server")
    handler = Records()
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)
    logger.propagate = old_propagate


class Clock:
    """The server's clock, moved by the test (deadlines and idle times follow it, not the wall)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def running(limits: ServerLimits, service: Echo | None = None, clock=time.monotonic) -> Iterator[ConnectionServer]:
    endpoint = EnclaveTls(TlsConfig(attester=FakeAttester()), server=True)
    sock = listen(Address("tcp", host="127.0.0.1", port=0), backlog=limits.backlog)
    server = ConnectionServer(endpoint, sock, service or Echo(), limits, clock=clock)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown(wait=10)
        thread.join(10)
        assert not thread.is_alive()


def ask(server: ConnectionServer, line: bytes = b"hello\n", source: str = "127.0.0.1") -> bytes:
    del source  # our client always comes from 127.0.0.1
    with connect(*server.address, TlsConfig(verifier=FakeVerifier()), timeout=20) as s:
        s.send(line)
        return s.recv_line(4096, timeout=20)


def raw(server: ConnectionServer, source: str = "127.0.0.1") -> socket.socket:
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(server.address)
    return s


def wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def closed_by_server(s: socket.socket, timeout: float = 20.0) -> bool:
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def still_open(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.settimeout(10)


def test_holds_many_idle_connections_and_serves_a_real_client(records):
    with running(ServerLimits()) as server:
        idle = [raw(server) for _ in range(200)]
        try:
            assert wait_for(lambda: server.connections >= 200)
            assert ask(server) == b"hello\n"
            assert all(still_open(s) for s in idle)
        finally:
            for s in idle:
                s.close()
    assert "shedding load" not in records.text()


def test_total_limit_sheds_the_least_recently_active_idle_connection(records):
    with running(ServerLimits(max_connections=5)) as server:
        conns = []
        for i in range(5):
            conns.append(raw(server))
            assert wait_for(lambda i=i: server.connections == i + 1)
        sixth = raw(server)
        assert closed_by_server(conns[0])
        assert all(still_open(s) for s in conns[1:]) and still_open(sixth)
        assert ask(server) == b"hello\n"  # the real client gets in too: the next oldest makes room
        assert closed_by_server(conns[1])
        for s in [*conns, sixth]:
            s.close()
    assert "shedding load" in records.text(logging.WARNING) and "shed (total limit)" in records.text()


def test_per_source_limit_refuses_a_flood_and_sheds_long_idle_connections(records):
    clock = Clock()
    with running(ServerLimits(max_per_source=3), clock=clock) as server:
        other = raw(server, "127.0.0.3")
        attacker = []
        for i in range(3):
            attacker.append(raw(server, "127.0.0.2"))
            assert wait_for(lambda i=i: server.connections == i + 2)
        flood = raw(server, "127.0.0.2")  # the address's connections are all fresh: the newcomer goes
        assert closed_by_server(flood)
        assert all(still_open(s) for s in attacker)
        clock.now += 2.0  # now they have been idle for a while: the least recently active one goes
        newcomer = raw(server, "127.0.0.2")
        assert closed_by_server(attacker[0])
        assert all(still_open(s) for s in [*attacker[1:], newcomer, other])
        assert ask(server) == b"hello\n"  # another address is not limited by this one
        for s in [other, flood, newcomer, *attacker]:
            s.close()
    text = records.text(logging.WARNING)
    assert "refused (per-source limit)" in text and "shed (per-source limit)" in text


def test_handshake_deadline_closes_silent_and_half_done_connections(records):
    with running(ServerLimits(handshake_timeout=0.3)) as server:
        silent = raw(server)
        assert closed_by_server(silent)
        silent.close()
        # TLS done, no request: the service's timeout reply, then the end.
        with connect(*server.address, TlsConfig(verifier=FakeVerifier()), timeout=20) as s:
            assert s.recv_line(100, timeout=20) == b"TIMEOUT\n"
            assert s.recv(100, timeout=20) == b""
        assert ask(server) == b"hello\n"  # a prompt client is served
    text = records.text(logging.WARNING)
    assert "timed out (handshake)" in text and "timed out (no request)" in text


def test_work_is_bounded_and_busy_connections_are_never_shed(records):
    service = Echo()
    service.gate.clear()
    with running(ServerLimits(workers=2, max_connections=4), service) as server:
        results: list[bytes | BaseException] = []

        def client(i: int) -> None:
            try:
                results.append(ask(server, f"c{i}\n".encode()))
            except BaseException as e:  # noqa: BLE001
                results.append(e)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        assert wait_for(lambda: service.running == 2)
        assert wait_for(lambda: server.connections == 4)  # two served, two queued: all busy
        refused = raw(server)
        assert closed_by_server(refused)  # nothing idle to shed: the newcomer is refused
        refused.close()
        service.gate.set()
        for t in threads:
            t.join(30)
        assert sorted(results) == [b"c0\n", b"c1\n", b"c2\n", b"c3\n"]
        assert service.peak == 2
    assert "refused (total limit, all busy)" in records.text(logging.WARNING)


def test_framing_errors_are_answered_and_bugs_logged_without_stopping(records):
    with running(ServerLimits()) as server:
        assert ask(server, b"x" * 150) == b"ERR PROTOCOL_ERROR\n"
        with pytest.raises((ConnectionClosed, TlsTimeout)):
            reply = ask(server, b"boom\n")
            if reply == b"":
                raise ConnectionClosed("closed")
        assert ask(server) == b"hello\n"
    assert "ZeroDivisionError: a bug in the handler" in records.text(logging.ERROR)


def test_port_probes_are_logged_at_debug_only(records):
    with running(ServerLimits()) as server:
        for _ in range(5):
            raw(server).close()
        assert ask(server) == b"hello\n"
        garbage = raw(server)
        garbage.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert closed_by_server(garbage)
        garbage.close()
    assert "closed before a request" in records.text(logging.DEBUG)
    warnings = [r.getMessage() for r in records.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "TLS_HANDSHAKE_FAILED" in warnings[0]  # only the garbage is worth a warning


def test_shutdown_closes_idle_connections():
    with running(ServerLimits()) as server:
        idle = raw(server)
        assert wait_for(lambda: server.connections == 1)
    assert closed_by_server(idle)
    idle.close()


@pytest.mark.parametrize("field,value,flag", [
    ("max_connections", 0, "--max-connections"),
    ("max_per_source", 0, "--max-per-source"),
    ("max_per_source", -5, "--max-per-source"),
    ("handshake_timeout", 0.0, "--handshake-timeout"),
    ("handshake_timeout", float("nan"), "--handshake-timeout"),
    ("handshake_timeout", float("inf"), "--handshake-timeout"),
    ("workers", 0, "--workers"),
    ("workers", 5000, "--workers"),
    ("backlog", 5, "--backlog"),
    ("backlog", 70000, "--backlog"),
])
def test_limits_out_of_range(field, value, flag):
    with pytest.raises(ConfigError, match=flag):
        ServerLimits(**{field: value}).validate()


def test_describe_endpoint_names_the_chosen_plugins():
    server = EnclaveTls(TlsConfig(attester=FakeAttester()), server=True)
    assert describe_endpoint(server) == "attester=fake_sgx_ecdsa verifier=- tls=openssl crypto=openssl"
    client = EnclaveTls(TlsConfig(verifier="sgx_ecdsa_qve"), server=False)
    assert describe_endpoint(server, client) == \
        "attester=fake_sgx_ecdsa verifier=sgx_ecdsa_qve tls=openssl crypto=openssl"
    assert "verifier=by evidence type" in describe_endpoint(server, EnclaveTls(TlsConfig(), server=False))


class ThreadNotingVerifier(FakeVerifier):
    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def verify_evidence(self, evidence, **kwargs):
        self.threads.append(threading.current_thread().name)
        return super().verify_evidence(evidence, **kwargs)


def test_mutual_handshakes_verify_the_client_in_a_worker(records):
    verifier = ThreadNotingVerifier()
    endpoint_config = TlsConfig(attester=FakeAttester(), mutual=True, verifier=verifier)
    service = Echo()
    endpoint = EnclaveTls(endpoint_config, server=True)
    sock = listen(Address("tcp", host="127.0.0.1", port=0), backlog=128)
    server = ConnectionServer(endpoint, sock, service, ServerLimits(workers=2))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = TlsConfig(attester=FakeAttester(), mutual=True, verifier=FakeVerifier())
        for i in range(3):
            with connect(*server.address, client, timeout=20) as s:
                s.send(f"m{i}\n".encode())
                assert s.recv_line(100, timeout=20) == f"m{i}\n".encode()
        with pytest.raises(EaaError):  # no certificate: refused during the handshake
            with connect(*server.address, TlsConfig(verifier=FakeVerifier()), timeout=20) as s:
                s.send(b"hello\n")
                if not s.recv_line(100, timeout=20):
                    raise ConnectionClosed("closed")
        assert service.served == 3
        assert verifier.threads and all(name.startswith("eaa-worker-") for name in verifier.threads)
    finally:
        server.shutdown(wait=10)
        thread.join(10)
    assert "PEER_CERTIFICATE_REQUIRED" in records.text(logging.WARNING)


class RefusingAfterShutdown(FakeVerifier):
    """Refuses the client only once the server has been told to stop: its failure races the shutdown."""

    def __init__(self, server_stopping: threading.Event) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.server_stopping = server_stopping

    def verify_evidence(self, evidence, **kwargs):
        self.entered.set()
        self.server_stopping.wait(20)
        time.sleep(0.2)  # the loop has ended by now; the worker finishes after it
        raise ProtocolError("refused while the server stops")


def test_a_handshake_failure_finished_during_shutdown_is_still_logged(records):
    stopping = threading.Event()
    verifier = RefusingAfterShutdown(stopping)
    endpoint = EnclaveTls(TlsConfig(attester=FakeAttester(), mutual=True, verifier=verifier), server=True)
    sock = listen(Address("tcp", host="127.0.0.1", port=0), backlog=128)
    server = ConnectionServer(endpoint, sock, Echo(), ServerLimits(workers=1))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = TlsConfig(attester=FakeAttester(), mutual=True, verifier=FakeVerifier())

    def attempt() -> None:
        with contextlib.suppress(EaaError):
            with connect(*server.address, client, timeout=20) as s:
                s.send(b"hello\n")
                s.recv_line(100, timeout=20)

    peer = threading.Thread(target=attempt, daemon=True)
    peer.start()
    assert verifier.entered.wait(20)
    stopping.set()
    server.shutdown(wait=10)
    thread.join(10)
    peer.join(20)
    assert "refused while the server stops" in records.text(logging.WARNING)


def test_trickling_a_request_does_not_extend_the_deadline(records):
    with running(ServerLimits(handshake_timeout=0.5)) as server:
        with connect(*server.address, TlsConfig(verifier=FakeVerifier()), timeout=20) as s:
            got = b""
            for _ in range(200):  # a byte every 50 ms, never a whole line
                try:
                    s.send(b"x")
                    got = s.recv(100, timeout=0.05)
                except TlsTimeout:
                    continue
                except ConnectionClosed:
                    break
                if got:
                    break
            assert got == b"TIMEOUT\n"
    assert "timed out (no request)" in records.text(logging.WARNING)
