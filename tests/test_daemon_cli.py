"""inclavared and enclave-tls-server as daemons: their limit flags, start-up line, signals, probes and
the ERROR line inclavared owes every failed request."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _procs import Proc, free_port, run, sim_env, wait_listening
from eaa.errors import EaaError, ProtocolError
from eaa.services.inclavared import Inclavared, InclavaredConfig
from eaa.services.protocol import make_request
from eaa.tls import TlsConfig
from eaa.tls.testing import FakeAttester, FakeVerifier

SERVER = "eaa.cli.enclave_tls_server"
INCLAVARED = "eaa.cli.inclavared"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return sim_env(tmp_path_factory.mktemp("daemons"))


BAD_LIMITS = [
    (["--max-connections", "0"], "--max-connections"),
    (["--max-per-source", "-1"], "--max-per-source"),
    (["--handshake-timeout", "0"], "--handshake-timeout"),
    (["--handshake-timeout", "nan"], "--handshake-timeout"),
    (["--handshake-timeout", "1e999"], "--handshake-timeout"),
    (["--workers", "0"], "--workers"),
    (["--backlog", "5"], "--backlog"),
]  # --timeout is an argparse-typed number: tests/test_cli_bad_inputs.py holds its bad values


@pytest.mark.parametrize("module,base", [
    (SERVER, ["--attester", "sim_sgx_ecdsa"]),
    (INCLAVARED, ["--listen", "127.0.0.1:0", "--attester", "sim_sgx_ecdsa"]),
], ids=["enclave-tls-server", "inclavared"])
@pytest.mark.parametrize("args,flag", BAD_LIMITS, ids=[" ".join(a) for a, _ in BAD_LIMITS])
def test_bad_limit_values_are_one_line_exit_2(env, module, base, args, flag):
    r = run(module, [*base, *args], env, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "CONFIG_ERROR" in lines[0]


@pytest.mark.parametrize("port", ["70000", "-1", "x"])
def test_server_port_out_of_range(env, port):
    """A usage error: argparse's usage, then one error line naming the flag (0 asks for any free port)."""
    r = run(SERVER, ["--attester", "sim_sgx_ecdsa", "-p", port], env, timeout=60)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("enclave-tls-server: error:")]
    assert r.returncode == 2 and len(errors) == 1 and "-p/--port" in errors[0] and "Traceback" not in r.stderr


def _probe(port: int, times: int = 3) -> None:
    for _ in range(times):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _warnings_and_errors(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if _level(ln) in ("WARNING", "ERROR", "CRITICAL")
            and "simulated" not in ln]


def _level(line: str) -> str | None:
    """The level of a line in the daemons' format: ``<UTC time> <LEVEL> <component>: <message>``."""
    parts = line.split(" ", 3)
    return parts[1] if len(parts) == 4 and parts[0].endswith("Z") and parts[2].endswith(":") else None


def _logged(output: str, level: str, text: str) -> int:
    """How many lines at ``level`` hold ``text``."""
    return sum(1 for ln in output.splitlines() if _level(ln) == level and text in ln)


@pytest.fixture
def workload(env) -> Iterator[tuple[Proc, int]]:
    port = free_port()
    proc = Proc(SERVER, ["--ip", "127.0.0.1", "--port", str(port), "--mutual", "--attester", "sim_sgx_ecdsa",
                         "--trust-sim", "--log-level", "debug"], env,
                Path(env["EAA_TEST_DIR"]) / f"workload-{port}.log", port=port)
    yield proc, port
    proc.stop()


def _wait_output(proc: Proc, text: str, count: int = 1, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while proc.output().count(text) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc.output()


def test_server_logs_its_plugins_ignores_probes_and_stops_on_sigterm(workload):
    proc, port = workload
    _probe(port)
    out = _wait_output(proc, "closed before a request", 3)
    assert _logged(out, "DEBUG", ": peer=127.0.0.1:") >= 3  # the probes, at debug
    assert proc.stop(signal.SIGTERM) == 0
    out = proc.output()
    assert _logged(out, "INFO", ": using attester=sim_sgx_ecdsa verifier=by evidence type tls=openssl crypto=openssl")
    assert _warnings_and_errors(out) == []
    assert _logged(out, "INFO", ": stopped")


def test_server_stops_on_sigint_with_130(workload):
    proc, _ = workload
    assert proc.stop(signal.SIGINT) == 130
    assert "Traceback" not in proc.output() and "stopped" in proc.output()


def _tls_client() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_inclavared_start_line_probes_timeout_reply_and_sigterm(env, workload):
    _, wport = workload
    port = free_port()
    proc = Proc(INCLAVARED, ["--listen", f"127.0.0.1:{port}", "--xfer", f"127.0.0.1:{wport}", "--attester",
                             "sim_sgx_ecdsa", "--verifier", "sgx_ecdsa_qve", "--mutual", "--trust-sim",
                             "--handshake-timeout", "1", "--log-level", "debug"], env,
                Path(env["EAA_TEST_DIR"]) / f"inclavared-{port}.log", port=port)
    try:
        _probe(port)
        _wait_output(proc, "closed before a request", 3)
        # TLS done, then silence: an ERROR line when the deadline passes, then the end.
        with _tls_client().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10)) as s:
            s.settimeout(20)
            reply = json.loads(s.recv(4096))
            assert reply == {"msgtype": "ERROR", "error_code": "PROTOCOL_ERROR",
                             "error": "request not received in time"}
        assert proc.stop(signal.SIGTERM) == 0
    finally:
        proc.stop()
    out = proc.output()
    assert _logged(out, "INFO", ": using attester=sim_sgx_ecdsa verifier=sgx_ecdsa_qve tls=openssl crypto=openssl")
    assert _warnings_and_errors(out) == [ln for ln in _warnings_and_errors(out) if "shedding load" in ln]
    assert _logged(out, "INFO", ": stopped")


# ---- inclavared's answer to every failed request (in-process, with a recording session) ----

class RecordingSession:
    address = ("192.0.2.7", 4444)

    def __init__(self, fail_send: bool = False) -> None:
        self.sent: list[bytes] = []
        self.fail_send = fail_send

    def send(self, data: bytes, **_: object) -> None:
        if self.fail_send:
            from eaa.tls.errors import ConnectionClosed

            raise ConnectionClosed("the peer closed the TLS session")
        self.sent.append(data)


@pytest.fixture
def daemon() -> Inclavared:
    return Inclavared(InclavaredConfig(listen=None, xfer=None, server_tls=TlsConfig(attester=FakeAttester()),
                                       upstream_tls=TlsConfig(verifier=FakeVerifier())))


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    logger = logging.getLogger("eaa.inclavared")
    old = logger.propagate
    logger.propagate = True
    caplog.set_level(logging.INFO, logger="eaa.inclavared")
    yield caplog
    logger.propagate = old


V2 = make_request(b"\x11" * 32)


def _result_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "result=" in r.getMessage()]


def test_untyped_failure_gets_an_error_line_and_is_logged_as_such(daemon, audit, monkeypatch):
    def broken(nonce: bytes) -> tuple[bytes, object]:
        raise TypeError("describe_name got a str")

    monkeypatch.setattr(daemon, "fetch_v2", broken)
    session = RecordingSession()
    daemon.handle(session, V2)  # type: ignore[arg-type]
    (line,) = session.sent
    assert json.loads(line) == {"msgtype": "ERROR", "error_code": "INTERNAL",
                                "error": "internal error (TypeError)"}
    (result,) = _result_lines(audit)
    assert "result=error [INTERNAL]" in result and "result=ok" not in result
    assert any(r.levelno == logging.ERROR and "TypeError" in r.getMessage() for r in audit.records)


@pytest.mark.parametrize("request_", [b'{"type":"STEAL"}\n', b"not json\n",
                                      ProtocolError("request exceeds 4096 bytes")])
def test_bad_requests_get_an_error_line(daemon, audit, request_):
    session = RecordingSession()
    daemon.handle(session, request_)  # type: ignore[arg-type]
    (line,) = session.sent
    reply = json.loads(line)
    assert reply["msgtype"] == "ERROR" and reply["error_code"] == "PROTOCOL_ERROR"
    (result,) = _result_lines(audit)
    assert "result=error [PROTOCOL_ERROR]" in result


def test_a_reply_that_cannot_be_sent_is_not_logged_as_ok(daemon, audit, monkeypatch):
    monkeypatch.setattr(daemon, "fetch_v1", lambda: b"reply\n")
    daemon.handle(RecordingSession(fail_send=True), b'{"type":"GETENCLAVEINFO"}')  # type: ignore[arg-type]
    (result,) = _result_lines(audit)
    assert "result=error [CONNECTION_CLOSED]" in result and "not delivered" in result


def test_framing_error_passed_as_request_is_typed(daemon, audit):
    err: EaaError = ProtocolError("request exceeds 4096 bytes")
    session = RecordingSession()
    daemon.handle(session, err)  # type: ignore[arg-type]
    assert b"request exceeds 4096 bytes" in session.sent[0]



def _listen_backlog(port: int) -> int:
    """The backlog the kernel holds for a listening socket (``ss`` shows it as Send-Q)."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    (line,) = out.strip().splitlines()
    return int(line.split()[2])


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read a socket's backlog")
def test_listen_backlog_default_and_flag(env, workload):
    _, port = workload
    assert _listen_backlog(port) == min(1024, int(Path("/proc/sys/net/core/somaxconn").read_text()))
    iport = free_port()
    proc = Proc(INCLAVARED, ["--listen", f"127.0.0.1:{iport}", "--xfer", f"127.0.0.1:{port}", "--attester",
                             "sim_sgx_ecdsa", "--trust-sim", "--backlog", "200"], env,
                Path(env["EAA_TEST_DIR"]) / f"inclavared-{iport}.log", port=iport)
    try:
        assert _listen_backlog(iport) == 200
    finally:
        proc.stop()


def test_a_low_descriptor_limit_lowers_max_connections_and_says_so(env):
    port = free_port()
    log = Path(env["EAA_TEST_DIR"]) / f"lowfd-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-c", f'ulimit -n 256 && exec "{sys.executable}" -m {SERVER} --port {port} '
                                 "--attester sim_sgx_ecdsa --trust-sim --workers 8"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_listening(port, proc)
            _probe(port, 1)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
    text = log.read_text()
    assert _logged(text, "WARNING", ": the descriptor limit (256) allows 176 connections, not 4096")
