"""The EAA flow with real processes on 127.0.0.1: enclave-tls-server, inclavared and shelter."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import eaa
from _procs import Proc, free_port, run
from eaa.sim import init_platform

PROGRAM_FILES = ("services/workload.py", "cli/enclave_tls_server.py")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("flow")
    init_platform(d / "sim")
    e = dict(os.environ)
    e.pop("EAA_TRUST_SIMULATION", None)
    e["EAA_SIM_DIR"] = str(d / "sim")
    e["EAA_TEST_DIR"] = str(d)
    return e


def program_copy(dest: Path, *, flip: bool = False) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    root = Path(eaa.__file__).parent
    for rel in PROGRAM_FILES:
        shutil.copy(root / rel, dest / Path(rel).name)
    if flip:
        f = dest / "workload.py"
        data = bytearray(f.read_bytes())
        data[100] ^= 0x01
        f.write_bytes(bytes(data))
    return dest


class Node:
    """One workload and the inclavared in front of it."""

    def __init__(self, env: dict[str, str], name: str, *, flip: bool = False, attester: str = "sim_sgx_ecdsa",
                 xfer_dead: bool = False, mutual: bool = True, extra: tuple[str, ...] = (),
                 workload_attester: str = "sim_sgx_ecdsa", listen: str | None = None) -> None:
        base = Path(env["EAA_TEST_DIR"]) / name
        self.prog = program_copy(base / "prog", flip=flip)
        self.procs: list[Proc] = []
        wport = free_port()
        if not xfer_dead:
            self.procs.append(Proc("eaa.cli.enclave_tls_server",
                                   ["--ip", "127.0.0.1", "--port", str(wport), *(["--mutual"] if mutual else []),
                                    "--attester", workload_attester, "--trust-sim", "--measure", str(self.prog)],
                                   env, base / "workload.log", port=wport))
        self.port = free_port()
        self.addr = f"tcp://127.0.0.1:{self.port}"
        if listen is not None:  # a Unix socket path instead of TCP
            self.addr = f"unix://{listen}"
        self.inclavared = Proc("eaa.cli.inclavared",
                               ["--listen", listen or f"127.0.0.1:{self.port}", "--xfer", f"127.0.0.1:{wport}",
                                "--attester",
                                attester, "--verifier", "sgx_ecdsa_qve", *(["--mutual"] if mutual else []),
                                "--trust-sim", *extra],
                               env, base / "inclavared.log", port=None if listen else self.port)
        self.procs.append(self.inclavared)
        if listen is not None:
            deadline = time.monotonic() + 20
            while not Path(listen).exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()


@pytest.fixture(scope="module")
def node(env: dict[str, str]) -> Iterator[Node]:
    n = Node(env, "good")
    yield n
    n.stop()


@pytest.fixture(scope="module")
def reference(env: dict[str, str], node: Node) -> Path:
    out = Path(env["EAA_TEST_DIR"]) / "reference.toml"
    r = run("eaa.cli.shelter", ["mrenclave", "--sim", str(node.prog), "-o", str(out)], env)
    assert r.returncode == 0, r.stderr
    return out


def shelter(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    r = run("eaa.cli.shelter", ["remoteattestation", *args], env)
    assert "Traceback" not in r.stderr
    return r.returncode, r.stdout, r.stderr


def test_v2_success_with_reference_values(env: dict[str, str], node: Node, reference: Path) -> None:
    # The seed's shelter command, plus what it lacked: trust in the simulation and reference values.
    rc, out, err = shelter(env, "--verifier", "sgx_ecdsa", "--tls", "openssl", "--crypto", "openssl",
                           f"--addr={node.addr}", "--trust-sim", "--reference", str(reference))
    assert rc == 0, err
    assert out.rstrip().endswith("Remote attestation is successful.")
    assert "simulated evidence" in out
    assert "workload: sgx_ecdsa" in out and "inclavared (" in out


def test_one_log_line_per_request(env: dict[str, str], node: Node) -> None:
    rc, _, err = shelter(env, "--addr", node.addr, "--trust-sim", "--no-reference")
    assert rc == 0, err
    lines = [ln for ln in node.inclavared.output().splitlines() if "version=2 result=ok latency_ms=" in ln]
    assert lines and "peer=" in lines[-1]


def test_tdx_workload(env: dict[str, str]) -> None:
    n = Node(env, "tdx", workload_attester="sim_tdx_ecdsa")
    try:
        ref = Path(env["EAA_TEST_DIR"]) / "tdx-reference.json"
        r = run("eaa.cli.shelter", ["mrenclave", "--sim", str(n.prog), "--tee", "tdx", "-o", str(ref)], env)
        assert r.returncode == 0, r.stderr
        rc, out, err = shelter(env, "--addr", n.addr, "--trust-sim", "--reference", str(ref))
        assert rc == 0, err
        assert "workload: tdx_ecdsa" in out and "MRTD:" in out
        bad = ref.with_name("bad-tdx.json")
        bad.write_text(json.dumps({"reference": {"mrtd": "00" * 48}}))
        rc, _, err = shelter(env, "--addr", n.addr, "--trust-sim", "--reference", str(bad))
        assert rc == 1 and "mrtd mismatch" in err and "[POLICY_VIOLATION] POLICY_REFERENCE" in err, err
    finally:
        n.stop()


def test_unix_socket_listener(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    sock = tmp_path_factory.mktemp("sock") / "inclavared.sock"
    n = Node(env, "unix", listen=str(sock))
    try:
        rc, out, err = shelter(env, "--addr", n.addr, "--trust-sim", "--no-reference")
        assert rc == 0, err
        assert "Remote attestation is successful." in out
    finally:
        n.stop()
    assert not sock.exists()  # removed on shutdown


def test_json_output(env: dict[str, str], node: Node, reference: Path) -> None:
    rc, out, _ = shelter(env, "--addr", node.addr, "--trust-sim", "--reference", str(reference), "--output", "json")
    assert rc == 0
    res = json.loads(out)
    assert res["ok"] is True
    (n,) = res["nodes"]
    ref = reference.read_text()
    assert n["workload"]["measurements"]["mrenclave"] in ref
    assert n["simulated"] is True and n["inclavared_verdict"]["ok"] is True


def test_v1_compatibility(env: dict[str, str], node: Node, reference: Path) -> None:
    rc, out, err = shelter(env, "--addr", node.addr, "--trust-sim", "--v1", "--allow-replay", "--no-reference")
    assert rc == 0, err
    assert '"msgtype":"ENCLAVEINFO"' in out and "App Enclave mrenclave:" in out
    assert "can be replayed" in out
    rc, out, err = shelter(env, "--addr", node.addr, "--trust-sim", "--v1", "--allow-replay", "--reference",
                           str(reference))
    assert rc == 0, err
    rc, out, err = shelter(env, "--addr", node.addr, "--trust-sim", "--v1", "--allow-replay", "--mrenclave", "ab" * 32)
    assert rc == 1 and "mrenclave mismatch" in err and "self-reported" in err


def test_mrenclave_flags(env: dict[str, str], node: Node, reference: Path) -> None:
    rc, _, err = shelter(env, "--addr", node.addr, "--trust-sim", "--mrenclave", "00" * 32)
    assert rc == 1 and "mrenclave mismatch" in err


def test_changed_program_byte_fails_naming_the_field(env: dict[str, str], reference: Path) -> None:
    bad = Node(env, "changed", flip=True)
    try:
        rc, _, err = shelter(env, "--addr", bad.addr, "--trust-sim", "--reference", str(reference))
        assert rc == 1
        assert "Remote attestation failed with err:" in err and "mrenclave mismatch" in err
    finally:
        bad.stop()


def test_simulated_evidence_needs_trust_sim(env: dict[str, str], node: Node) -> None:
    rc, _, err = shelter(env, "--addr", node.addr, "--no-reference")
    assert rc == 1 and "UNTRUSTED_ROOT" in err


def test_workload_down_daemon_keeps_serving(env: dict[str, str]) -> None:
    orphan = Node(env, "orphan", xfer_dead=True)
    try:
        for _ in range(2):
            rc, _, err = shelter(env, "--addr", orphan.addr, "--trust-sim", "--no-reference")
            assert rc == 1 and "TRANSPORT_ERROR" in err and "cannot connect" in err
        assert orphan.inclavared.alive()
    finally:
        orphan.stop()


def test_nullattester_inclavared_needs_nullverifier(env: dict[str, str]) -> None:
    n = Node(env, "nullatt", attester="nullattester", mutual=False)
    try:
        rc, _, err = shelter(env, "--addr", n.addr, "--trust-sim", "--no-reference")
        assert rc == 1 and "nullverifier" in err
        rc, out, err = shelter(env, "--addr", n.addr, "--trust-sim", "--verifier", "nullverifier", "--no-reference")
        assert rc == 0, err
        assert "workload: sgx_ecdsa" in out  # the workload is still verified in full
    finally:
        n.stop()


def _tls_client() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_garbage_oversized_and_slow_clients(env: dict[str, str], node: Node) -> None:
    # Not TLS at all.
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
        s.sendall(os.urandom(3000))
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except (TimeoutError, ConnectionResetError):
            pass
    # TLS, then an oversized request with no end.
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as raw:
        with _tls_client().wrap_socket(raw) as s:
            s.sendall(b"{" + b"x" * 10000)
            s.settimeout(5)
            reply = s.recv(4096)
            assert b"PROTOCOL_ERROR" in reply or reply == b""
    # TLS, then silence, held open while another shelter is served.
    raw = socket.create_connection(("127.0.0.1", node.port), timeout=5)
    slow = _tls_client().wrap_socket(raw)
    try:
        rc, _, err = shelter(env, "--addr", node.addr, "--trust-sim", "--no-reference")
        assert rc == 0, err
    finally:
        slow.close()
    # Garbage JSON gets a typed error line.
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as raw:
        with _tls_client().wrap_socket(raw) as s:
            s.sendall(b'{"type":"STEAL"}\n')
            s.settimeout(5)
            assert b"PROTOCOL_ERROR" in s.recv(4096)
    assert node.inclavared.alive()
    rc, _, err = shelter(env, "--addr", node.addr, "--trust-sim", "--no-reference")
    assert rc == 0, err


def test_three_nodes_one_bad(env: dict[str, str], node: Node, reference: Path) -> None:
    second = Node(env, "second")
    bad = Node(env, "bad", flip=True)
    try:
        rc, out, err = shelter(env, "--addr", node.addr, "--addr", second.addr, "--addr", bad.addr, "--trust-sim",
                               "--reference", str(reference))
        assert rc == 1
        rows = [ln for ln in out.splitlines() if ln.startswith("tcp://")]
        assert len(rows) == 3
        (bad_row,) = [r for r in rows if "FAILED" in r]
        assert bad_row.startswith(bad.addr) and "mrenclave mismatch" in bad_row
        assert f"1 of 3 nodes failed: {bad.addr}" in err
        addrs = Path(env["EAA_TEST_DIR"]) / "nodes.txt"
        addrs.write_text(f"# nodes\n{node.addr}\n{second.addr}\n")
        rc, out, err = shelter(env, "--addrs-file", str(addrs), "--trust-sim", "--reference", str(reference))
        assert rc == 0, err
    finally:
        second.stop()
        bad.stop()


def test_sigterm_stops_cleanly(env: dict[str, str]) -> None:
    n = Node(env, "term")
    try:
        time.sleep(0.2)
        assert n.inclavared.stop(signal.SIGTERM) == 0
        assert "stopped" in n.inclavared.output()
    finally:
        n.stop()


class ReplayRelay:
    """A hostile relay with a genuine (simulated) certificate that answers with a recorded reply."""

    def __init__(self, env: dict[str, str], recorded: bytes, *, patch_nonce: bool) -> None:
        import threading

        from eaa.services.protocol import parse_request
        from eaa.tls import TlsConfig, TlsServer

        self.server = TlsServer(TlsConfig(attester="sim_sgx_ecdsa", sim_dir=env["EAA_SIM_DIR"]), "127.0.0.1", 0)
        self.port = self.server.address[1]

        def serve() -> None:
            try:
                with self.server.accept(timeout=30) as s:
                    req = parse_request(s.recv_line(4096))
                    reply = recorded
                    if patch_nonce:
                        obj = json.loads(recorded)
                        obj["nonce"] = req.nonce.hex()
                        obj["workload"]["nonce"] = req.nonce.hex()
                        reply = (json.dumps(obj) + "\n").encode()
                    s.send(reply)
            except Exception:  # noqa: BLE001 - the test asserts on shelter's side
                pass

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.thread.join(10)
        self.server.shutdown()


@pytest.mark.parametrize("patch_nonce,message", [(False, "another nonce"), (True, "replayed evidence")])
def test_replayed_reply_rejected(env: dict[str, str], node: Node, patch_nonce: bool, message: str) -> None:
    from eaa.services.protocol import make_request
    from eaa.tls import TlsConfig, connect

    with connect("127.0.0.1", node.port, TlsConfig(trust_simulation=True, sim_dir=env["EAA_SIM_DIR"])) as s:
        s.send(make_request(b"\x11" * 32))
        recorded = s.recv_line(4 << 20)
    assert json.loads(recorded)["verdict"]["ok"] is True
    relay = ReplayRelay(env, recorded, patch_nonce=patch_nonce)
    try:
        rc, _, err = shelter(env, "--addr", f"tcp://127.0.0.1:{relay.port}", "--trust-sim", "--no-reference")
        assert rc == 1 and message in err
    finally:
        relay.close()
