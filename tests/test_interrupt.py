"""Ctrl-C (SIGINT) stops every command promptly with one message, exit 130 and no traceback, also in
the middle of TLS handshakes with many nodes, and when pressed twice (issue 12)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _procs import free_port, wait_listening
from eaa.sim import init_platform

BIN = Path(sys.executable).parent
NODE_TIMEOUT = "60"  # far longer than the test waits: exiting means Ctrl-C worked, not a timeout


class BlackHole:
    """Accepts TCP connections and never answers: every TLS handshake against it hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def wait_for(self, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.held) < n:
            assert time.monotonic() < deadline, f"only {len(self.held)} of {n} connections arrived"
            time.sleep(0.02)

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture
def holes() -> Iterator[list[BlackHole]]:
    hs = [BlackHole() for _ in range(4)]
    yield hs
    for h in hs:
        h.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("sigint")
    init_platform(d / "sim")
    e = {k: v for k, v in os.environ.items() if not k.startswith("EAA_")}
    e["EAA_SIM_DIR"] = str(d / "sim")
    return e


def start(script: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / script), *args], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def interrupt(p: subprocess.Popen[str], *, twice: bool = False) -> tuple[int, str, str, float]:
    """Ctrl-C as a terminal sends it (to the process group); twice: a second press right after."""
    t0 = time.monotonic()
    os.killpg(p.pid, signal.SIGINT)
    if twice:
        time.sleep(0.05)
        try:
            os.killpg(p.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"still running 20 s after Ctrl-C: {err[-2000:]}")
    elapsed = time.monotonic() - t0
    print(f"stopped {elapsed * 1000:.0f} ms after Ctrl-C")
    return p.returncode, out, err, elapsed


def assert_one_message(code: int, out: str, err: str, prog: str) -> None:
    assert "Traceback" not in out + err, err
    assert code == 130, (code, err)
    assert err.count(f"{prog}: interrupted") == 1, err
    assert err.strip().splitlines()[-1] == f"{prog}: interrupted"


@pytest.mark.parametrize("twice", [False, True])
def test_shelter_many_nodes_mid_handshake(env: dict[str, str], holes: list[BlackHole], twice: bool) -> None:
    addrs = [f"--addr=tcp://127.0.0.1:{h.port}" for h in holes for _ in range(5)]  # 20 nodes
    p = start("shelter", ["remoteattestation", *addrs, "--no-reference", "--timeout", NODE_TIMEOUT,
                          "--max-parallel", "16"], env)
    deadline = time.monotonic() + 60
    while sum(len(h.held) for h in holes) < 16:  # 16 handshakes under way, 4 nodes queued
        assert time.monotonic() < deadline and p.poll() is None, p.stderr.read() if p.stderr else ""
        time.sleep(0.02)
    assert_one_message(*interrupt(p, twice=twice)[:3], "shelter")


def test_shelter_one_node_mid_handshake(env: dict[str, str], holes: list[BlackHole]) -> None:
    p = start("shelter", ["remoteattestation", f"--addr=tcp://127.0.0.1:{holes[0].port}", "--no-reference",
                          "--timeout", NODE_TIMEOUT], env)
    holes[0].wait_for(1)
    assert_one_message(*interrupt(p)[:3], "shelter")


def test_enclave_tls_client_mid_handshake(env: dict[str, str], holes: list[BlackHole]) -> None:
    p = start("enclave-tls-client", ["-p", str(holes[0].port), "--timeout", NODE_TIMEOUT], env)
    holes[0].wait_for(1)
    assert_one_message(*interrupt(p, twice=True)[:3], "enclave-tls-client")


def wait_reading_stdin(pid: int, timeout: float = 60.0) -> None:
    """Until the process is blocked in read(0, ...) (x86-64 Linux: /proc/PID/syscall), else a pause."""
    syscall = Path(f"/proc/{pid}/syscall")
    if os.uname().machine != "x86_64" or not syscall.exists():
        time.sleep(3.0)
        return
    deadline = time.monotonic() + timeout
    while not syscall.read_text().startswith("0 0x0 "):  # syscall 0 (read), first argument fd 0
        assert time.monotonic() < deadline, "the command never read its standard input"
        time.sleep(0.02)


def test_eaa_verify_quote_waiting_for_stdin(env: dict[str, str]) -> None:
    p = start("eaa", ["verify-quote", "-"], env)
    wait_reading_stdin(p.pid)  # started and blocked reading standard input (the pipe stays open)
    assert_one_message(*interrupt(p)[:3], "eaa")


@pytest.mark.parametrize("script,args", [
    ("enclave-tls-server", ["-a", "sim_sgx_ecdsa", "--trust-sim", "-p", "{port}"]),
    ("inclavared", ["--listen", "127.0.0.1:{port}", "--xfer", "127.0.0.1:1", "--attester", "sim_sgx_ecdsa",
                    "--trust-sim"]),
    ("eaa-pccs", ["serve", "--insecure-http", "--mode", "offline", "--listen", "127.0.0.1:{port}", "--db", "{db}"]),
])
def test_daemons_stop_on_ctrl_c(env: dict[str, str], tmp_path: Path, script: str, args: list[str]) -> None:
    port = free_port()
    p = start(script, [a.format(port=port, db=tmp_path / "p.sqlite3") for a in args], env)
    wait_listening(port, p)  # type: ignore[arg-type]
    code, out, err, _ = interrupt(p, twice=True)
    assert "Traceback" not in out + err, err
    # A daemon may treat Ctrl-C as its clean stop (0, as SIGTERM). -SIGINT: the second press arrived after
    # Python had restored the default handler on its way out (a shell shows it as 130 too).
    assert code in (0, 130, -signal.SIGINT), err
