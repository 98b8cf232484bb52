"""Real shelter attestations while inclavared is held by slowloris connections (``make reliability``).

A simulated platform, an enclave-tls-server and an inclavared run as processes on loopback (the
seed's flags, simulated attesters). First ``--runs`` sequential ``shelter remoteattestation``
processes are timed with nothing else going on; then an attacker opens ``--idle`` connections that
send nothing and ``--reconnecting`` connections that trickle a TLS ClientHello one byte at a time
and reconnect every second or two (and whenever inclavared closes them), from ``--sources`` loopback
addresses other than shelter's, and the same attestations are timed again. Every attestation
must succeed; then the unloaded runs are repeated, because the machine may have become busier or
quieter meanwhile. The script prints each time, the medians and each loaded time's ratio to the
median of all unloaded runs. Target: every loaded attestation within 2x that median.

Run: ``python bench/reliability.py [--idle N] [--reconnecting N] [--runs N] [--sources N]
[--target inclavared|workload]`` (``--target workload`` holds the mutual-TLS workload's port instead).
"""

from __future__ import annotations

import argparse
import errno
import os
import random
import selectors
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(1, str(ROOT / "bench"))

from eaa_flow import free_port, stop_processes, wait_port  # noqa: E402


def client_hello() -> bytes:
    """The first flight of a real TLS client, to trickle byte by byte."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


@dataclass
class _Conn:
    sock: socket.socket
    kind: str  # "idle" or "slow"
    close_at: float
    next_byte: float
    sent: int = 0
    connected: bool = False


@dataclass
class SlowlorisStats:
    opened: int = 0
    closed_by_server: int = 0
    refused: int = 0
    open_now: dict[str, int] = field(default_factory=dict)


class Slowloris:
    """Holds ``idle`` silent and ``reconnecting`` trickling connections to ``host:port`` until stopped.

    Connections come from ``sources`` (local addresses, round robin), so that a test can put the
    attacker on other addresses than the real client, as on a network. One thread, non-blocking.
    """

    def __init__(self, host: str, port: int, *, idle: int = 500, reconnecting: int = 500,
                 sources: tuple[str, ...] = ("127.0.0.2",), trickle: float = 0.5,
                 lifetime: tuple[float, float] = (1.0, 2.0), opens_per_round: int = 100) -> None:
        self.host, self.port = host, port
        self.want = {"idle": idle, "slow": reconnecting}
        self.sources = sources
        self.trickle = trickle
        self.lifetime = lifetime
        self.opens_per_round = opens_per_round
        self.hello = client_hello()
        self.stats = SlowlorisStats()
        self._conns: dict[socket.socket, _Conn] = {}
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)
        self._next_source = 0
        self._rng = random.Random(1)

    def start(self) -> Slowloris:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for conn in list(self._conns.values()):
            self._drop(conn)
        self._selector.close()

    def count(self, kind: str | None = None) -> int:
        return sum(1 for c in list(self._conns.values()) if kind is None or c.kind == kind)

    def wait_open(self, timeout: float = 30.0) -> int:
        """Wait until every wanted connection is connected (or ``timeout``); how many are."""
        deadline = time.monotonic() + timeout
        want = sum(self.want.values())
        while time.monotonic() < deadline:
            n = sum(1 for c in list(self._conns.values()) if c.connected)
            if n >= want:
                return n
            time.sleep(0.1)
        return sum(1 for c in list(self._conns.values()) if c.connected)

    def _open(self, kind: str, now: float) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            source = self.sources[self._next_source % len(self.sources)]
            self._next_source += 1
            sock.bind((source, 0))
            rc = sock.connect_ex((self.host, self.port))
            if rc not in (0, errno.EINPROGRESS):
                raise OSError(rc, os.strerror(rc))
        except OSError:
            sock.close()
            self.stats.refused += 1
            return
        life = self._rng.uniform(*self.lifetime) if kind == "slow" else float("inf")
        conn = _Conn(sock, kind, now + life, now)
        self._conns[sock] = conn
        self._selector.register(sock, selectors.EVENT_WRITE, conn)
        self.stats.opened += 1

    def _drop(self, conn: _Conn) -> None:
        self._conns.pop(conn.sock, None)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        conn.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            opened = 0
            for kind, want in self.want.items():
                missing = want - self.count(kind)
                for _ in range(max(0, min(missing, self.opens_per_round - opened))):
                    self._open(kind, now)
                    opened += 1
            for key, mask in self._selector.select(0.05):
                conn: _Conn = key.data
                if mask & selectors.EVENT_WRITE and not conn.connected:
                    if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        self.stats.refused += 1
                        self._drop(conn)
                        continue
                    conn.connected = True
                    self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
                elif mask & selectors.EVENT_READ:
                    try:
                        data = conn.sock.recv(4096)
                    except OSError:
                        data = b""
                    if not data:  # the server closed it (deadline, shedding, refusal)
                        self.stats.closed_by_server += 1
                        self._drop(conn)
            now = time.monotonic()
            for conn in list(self._conns.values()):
                if conn.kind != "slow" or not conn.connected:
                    continue
                if now >= conn.close_at:
                    self._drop(conn)
                elif now >= conn.next_byte and conn.sent < len(self.hello):
                    try:
                        conn.sock.send(self.hello[conn.sent:conn.sent + 1])
                        conn.sent += 1
                    except OSError:
                        self._drop(conn)
                        continue
                    conn.next_byte = now + self.trickle
            self.stats.open_now = {k: self.count(k) for k in self.want}


def attest(env: dict[str, str], addr: str, reference: Path) -> tuple[bool, float, str]:
    """One whole ``shelter remoteattestation`` process: success, seconds, and its error when it failed."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "eaa.cli.shelter", "remoteattestation", "--addr", addr,
                        "--trust-sim", "--reference", str(reference)], env=env, capture_output=True, text=True,
                       timeout=120)
    return r.returncode == 0, time.perf_counter() - t0, r.stderr.strip()[-300:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=int, default=500, help="silent connections (default 500)")
    ap.add_argument("--reconnecting", type=int, default=500, help="trickling, reconnecting connections (default 500)")
    ap.add_argument("--runs", type=int, default=20, help="sequential attestations per phase (default 20)")
    ap.add_argument("--sources", type=int, default=8, help="attacker source addresses 127.0.0.2.. (default 8)")
    ap.add_argument("--target", choices=("inclavared", "workload"), default="inclavared",
                    help="whose port the attacker holds (default inclavared, shelter's side)")
    args = ap.parse_args()

    from eaa.services.server import raise_fd_limit
    from eaa.sim import init_platform

    raise_fd_limit(args.idle + args.reconnecting + 1024)  # inherited by the servers started below
    work = Path(tempfile.mkdtemp(prefix="eaa-reliability-"))
    env = dict(os.environ, EAA_SIM_DIR=str(work / "sim"))
    env.pop("EAA_TRUST_SIMULATION", None)
    init_platform(work / "sim")
    wport, iport = free_port(), free_port()
    py = sys.executable
    procs: list[subprocess.Popen[bytes]] = []
    attacker: Slowloris | None = None
    try:
        program = [str(ROOT / "src/eaa/services/workload.py"), str(ROOT / "src/eaa/cli/enclave_tls_server.py")]
        log = open(work / "workload.log", "wb")
        procs.append(subprocess.Popen([py, "-m", "eaa.cli.enclave_tls_server", "--ip", "127.0.0.1", "--port",
                                       str(wport), "--mutual", "--attester", "sim_sgx_ecdsa", "--trust-sim",
                                       *sum((["--measure", f] for f in program), [])],
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
        wait_port(wport, procs[-1])
        log = open(work / "inclavared.log", "wb")
        procs.append(subprocess.Popen([py, "-m", "eaa.cli.inclavared", "--listen", f"127.0.0.1:{iport}", "--xfer",
                                       f"127.0.0.1:{wport}", "--attester", "sim_sgx_ecdsa", "--verifier",
                                       "sgx_ecdsa_qve", "--mutual", "--trust-sim"],
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
        wait_port(iport, procs[-1])
        addr = f"tcp://127.0.0.1:{iport}"
        reference = work / "reference.toml"
        subprocess.run([py, "-m", "eaa.cli.shelter", "mrenclave", "--sim", *program, "-o", str(reference)], env=env,
                       check=True, capture_output=True)
        attest(env, addr, reference)  # warm the file cache

        def unloaded_phase() -> list[float]:
            times = []
            for _ in range(args.runs):
                ok, dt, err = attest(env, addr, reference)
                if not ok:
                    raise SystemExit(f"unloaded attestation failed: {err}")
                times.append(dt)
            return times

        before = unloaded_phase()

        sources = tuple(f"127.0.0.{2 + i}" for i in range(args.sources))
        attacker = Slowloris("127.0.0.1", iport if args.target == "inclavared" else wport, idle=args.idle,
                             reconnecting=args.reconnecting, sources=sources).start()
        held = attacker.wait_open()
        loaded, failures = [], []
        for _ in range(args.runs):
            ok, dt, err = attest(env, addr, reference)
            loaded.append(dt)
            if not ok:
                failures.append(err)
        stats = attacker.stats
        open_now = dict(stats.open_now)
        attacker.stop()
        attacker = None
        after = unloaded_phase()  # the machine may be busier or quieter than before: measure again
        base = statistics.median(before + after)

        print(f"attacker on {args.target}: {args.idle} idle + {args.reconnecting} reconnecting slowloris "
              f"connections from {len(sources)} addresses; {held} connected before the first run, open at the "
              f"end: {open_now}; {stats.opened} opened, {stats.closed_by_server} closed by {args.target}, "
              f"{stats.refused} refused")
        print(f"{'run':>3} {'before s':>9} {'loaded s':>9} {'after s':>8} {'loaded/unloaded median':>23}")
        for i, (b, ld, a) in enumerate(zip(before, loaded, after, strict=True), 1):
            print(f"{i:3d} {b:9.3f} {ld:9.3f} {a:8.3f} {ld / base:23.2f}")
        worst = max(loaded) / base
        print(f"median unloaded {base:.3f} s, median loaded {statistics.median(loaded):.3f} s "
              f"(ratio {statistics.median(loaded) / base:.2f}), worst loaded {max(loaded):.3f} s (ratio {worst:.2f})")
        print(f"succeeded under load: {args.runs - len(failures)} of {args.runs}; target: all, each within 2x "
              f"the unloaded median: {'met' if not failures and worst <= 2.0 else 'NOT met'}")
        for err in failures[:3]:
            print(f"failure: {err}")
        return 0 if not failures else 1
    finally:
        if attacker is not None:
            attacker.stop()
        stop_processes(procs)


if __name__ == "__main__":
    sys.exit(main())
