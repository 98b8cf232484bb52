"""enclave-tls-server / enclave-tls-client as processes on 127.0.0.1 (flags and messages of the C samples)."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time

import pytest

from eaa.formats.quote import parse_quote
from eaa.services.protocol import make_identity_reply, parse_identity_reply
from eaa.services.workload import GREETING, WorkloadService
from eaa.sim import load_platform


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e["EAA_SIM_DIR"] = str(tmp_path / "sim")
    e.pop("EAA_TRUST_SIMULATION", None)
    e.pop("EAA_DEBUG", None)
    load_platform(tmp_path / "sim")
    return e


class ServerProcess:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eaa.cli.enclave_tls_server", "-p", str(self.port), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.wait_for("listening on")

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None and self.lines.empty():
                raise AssertionError(f"server never printed {text!r}; output:\n{''.join(self.output)}")
            try:
                line = self.lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if text in line:
                return line

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def server_factory(env):
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        s = ServerProcess(list(args), env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def client(env, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eaa.cli.enclave_tls_client", "-p", str(port), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_mutual_sim_sgx_round_trip_prints_verified_identity(env, server_factory):
    srv = server_factory("-a", "sim_sgx_ecdsa", "-m", "--trust-sim", "-l", "debug")
    r = client(env, srv.port, "-a", "sim_sgx_ecdsa", "-m", "--trust-sim")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "    - Welcome to Enclave-TLS sample client program" in r.stdout
    assert "[INFO] Server's SGX identity:" in r.stdout
    assert "Server:\nHello and welcome to Enclave TLS!\n" in r.stdout
    assert "SIMULATED" in r.stdout and "WARNING: simulated evidence" in r.stderr
    lines = [line for line in r.stdout.splitlines() if "MRENCLAVE =" in line]
    assert len(lines) == 2 and lines[0] == lines[1]  # verified and self-reported identity agree
    srv.wait_for("Client: Hello and welcome to Enclave TLS!")
    assert "    - Welcome to Enclave-TLS sample server program" in srv.output[0]


def test_client_rejects_simulation_without_trust_sim_and_server_survives(env, server_factory):
    srv = server_factory("-a", "sim_tdx_ecdsa", "--cert-format", "legacy")
    r = client(env, srv.port)
    assert r.returncode == 4  # a verification failure, as in every eaa command
    assert "error [UNTRUSTED_ROOT]" in r.stderr and "Traceback" not in r.stderr
    assert "Hello and welcome" not in r.stdout
    # garbage, then a good client: the server keeps serving
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        raw.sendall(b"\x00garbage\r\n" * 20)
        raw.settimeout(10)
        try:
            raw.recv(100)
        except OSError:
            pass
    env_trust = dict(env, EAA_TRUST_SIMULATION="1")
    r = client(env_trust, srv.port)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MRTD" in r.stdout and "Server:\nHello and welcome to Enclave TLS!\n" in r.stdout  # TDX: echo reply
    assert srv.proc.poll() is None


def test_no_tee_and_no_attester_named_is_a_clear_error(env):
    """No silent fallback to nullattester: automatic selection on a machine without a TEE stops and
    names the simulated attester to use instead."""
    for prog, args in (("eaa.cli.enclave_tls_server", ["-p", str(_free_port())]),
                       ("eaa.cli.enclave_tls_client", ["-p", str(_free_port()), "-m"]),
                       ("eaa.cli.inclavared", ["--listen", f"127.0.0.1:{_free_port()}"])):
        r = subprocess.run([sys.executable, "-m", prog, *args], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "error [NO_TEE]: no TEE found on this machine" in r.stderr
        assert "--attester sim_sgx_ecdsa" in r.stderr and "Traceback" not in r.stderr


def test_nullattester_needs_nullverifier(env, server_factory):
    srv = server_factory("-a", "nullattester")
    r = client(env, srv.port)
    assert r.returncode == 4 and "error [NO_EVIDENCE]" in r.stderr
    r = client(env, srv.port, "-v", "nullverifier")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Server:\nHello and welcome to Enclave TLS!\n" in r.stdout
    assert "not attested" in r.stdout


def test_mutual_server_rejects_client_without_evidence(env, server_factory):
    srv = server_factory("-a", "sim_sgx_ecdsa", "-m", "--trust-sim")
    r = client(env, srv.port, "--trust-sim")  # one-way client: no certificate at all
    assert r.returncode in (11, 12), r.stderr  # the server hangs up: protocol or transport error
    srv.wait_for("PEER_CERTIFICATE_REQUIRED")
    r = client(env, srv.port, "-m", "-a", "nullattester", "--trust-sim")  # mutual client without evidence
    assert r.returncode in (11, 12), r.stderr
    srv.wait_for("NO_EVIDENCE")
    assert srv.proc.poll() is None


def test_usage_errors_exit_2(env):
    r = subprocess.run([sys.executable, "-m", "eaa.cli.enclave_tls_client", "--cert-format", "x509"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2


def test_unknown_plugin_name_is_a_clean_error(env):
    r = subprocess.run([sys.executable, "-m", "eaa.cli.enclave_tls_client", "-p", str(_free_port()),
                        "-v", "no_such_verifier"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and "unknown verifier 'no_such_verifier'" in r.stderr
    assert "Traceback" not in r.stderr


# ---------- the reusable workload logic ----------
def test_workload_v1_reply_layout(tmp_path):
    from eaa.sim.attesters import SimSgxEcdsaAttester
    from eaa.tls.crypto import OpenSslCrypto

    creds = OpenSslCrypto().create_credentials(SimSgxEcdsaAttester(tmp_path / "sim"))
    svc = WorkloadService(creds)
    reply = svc.reply(b"hello from inclavared")
    body = parse_quote(creds.evidence.data).body
    assert len(reply) == 98
    assert reply == body.mr_enclave + body.mr_signer + b"Hello and welcome to Enclave TLS!\n"
    ident, msg = parse_identity_reply(reply)
    assert (ident.mrenclave, msg) == (body.mr_enclave, GREETING)
    assert make_identity_reply(None, GREETING) == b"\0" * 64 + GREETING
    assert WorkloadService(creds, reply="echo").reply(b"abc") == b"abc"


def test_workload_v2_fresh_evidence_binds_nonce_and_key(tmp_path):
    import base64
    import hashlib
    import json

    from eaa.sim.attesters import SimSgxEcdsaAttester
    from eaa.tls.cert import spki_der
    from eaa.tls.claims import decode_claims
    from eaa.tls.crypto import OpenSslCrypto

    att = SimSgxEcdsaAttester(tmp_path / "sim")
    creds = OpenSslCrypto().create_credentials(att)
    svc = WorkloadService(creds, attester=att)
    nonce = bytes(range(32))
    out = json.loads(svc.reply(json.dumps({"version": 2, "type": "GETEVIDENCE", "nonce": nonce.hex()}).encode()))
    claims = base64.b64decode(out["claims"])
    c = decode_claims(claims)
    assert c.custom["nonce"] == nonce
    c.check_key(spki_der(creds.private_key))
    quote = parse_quote(base64.b64decode(out["evidence"]))
    assert quote.report_data[:32] == hashlib.sha256(claims).digest()
    assert out["collateral"]["tcb_info"] and out["simulated"] is True
