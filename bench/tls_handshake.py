"""Attested TLS handshakes per second on loopback, against plain pyOpenSSL TLS in the same run.

Each operation: TCP connect, full TLS handshake (no resumption), 1-byte echo, close. Every server runs
in its own process; the client runs N threads. Configurations (same key exchange, P-256 certificates):

* plain      pyOpenSSL, an ordinary self-signed ECDSA P-256 certificate, verify callback returning True
* warm       eaa.tls with sim_sgx_ecdsa evidence (DICE certificate); the peer cache is on: a certificate
             already verified is not verified again, its validity times and the policy still are
* cold       the same with no cache of any kind on either side: no peer cache and no DCAP verifier
             cache, so every handshake verifies the quote and all its collateral from scratch (nine
             P-256 signatures)
* floor      pyOpenSSL with the same attested certificates, whose verify callback is a cold peer check
             reduced to its library calls (bench/floors.py peer_floor: the ten signatures, the
             certificate, CBOR, JSON and PEM loads, the two hash bindings) with none of eaa's own checks:
             about what the cold column would reach if those cost nothing

Both attested configurations carry their collateral in the certificate (the endorsements extension, as
rats-tls does), so no handshake waits for a collateral fetch.

The configurations are measured in interleaved rounds (plain, warm, cold, plain, ...), each round a short
burst, and the ratios are taken within each round, so a slow moment on a shared machine affects a
round's columns alike; the table shows each ratio's median and its range over the rounds.

A second table gives the CPU time per handshake (client process plus server process, from
os.times and /proc), median over the rounds: what a handshake costs whatever else runs on the
machine, where the rates also count waiting for a core. On a small shared VM the cold column's
CPU time is well above what the same peer check costs in a tight loop: every handshake resumes
the two processes alternately, each on caches the other (or another tenant) has just used.

Usage: python bench/tls_handshake.py [--rounds 5] [--seconds 0.6] [--threads 1] [--json]
Targets: cold >= 0.5x plain, warm >= 0.9x plain; cold/floor shows what eaa's own checks cost.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


# ------------------------------------------------------------------------------------------------
# plain pyOpenSSL

def _plain_credentials():
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plain")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert, key


def _attested_credentials(sim_dir: str):
    """The certificate and key an eaa endpoint presents (sim_sgx_ecdsa evidence with endorsements)."""
    from eaa.sim.attesters import SimSgxEcdsaAttester
    from eaa.tls.crypto import OpenSslCrypto

    creds = OpenSslCrypto().create_credentials(SimSgxEcdsaAttester(sim_dir), endorsements=True)
    return creds.certificate, creds.private_key


def _floor_callback(conn: Any, cert: Any, errnum: int, depth: int, ok: int) -> bool:
    from floors import peer_floor
    from OpenSSL import crypto

    if depth == 0 and conn.get_app_data() is None:  # OpenSSL calls again for the same certificate (error 18)
        peer_floor(crypto.dump_certificate(crypto.FILETYPE_ASN1, cert))
        conn.set_app_data(True)
    return True


def _plain_context(server: bool, mutual: bool, sim_dir: str | None = None):
    """sim_dir: present the attested certificate and check the peer's with the floor callback."""
    from OpenSSL import SSL

    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    if server or mutual:
        cert, key = _plain_credentials() if sim_dir is None else _attested_credentials(sim_dir)
        ctx.use_certificate(cert)
        ctx.use_privatekey(key)
    callback = (lambda *a: True) if sim_dir is None else _floor_callback
    if server:
        if mutual:
            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, callback)
    else:
        ctx.set_verify(SSL.VERIFY_PEER, callback)
    return ctx


def _plain_server(mutual: bool, ready: Any, sim_dir: str | None = None) -> None:
    from OpenSSL import SSL

    ctx = _plain_context(True, mutual, sim_dir)
    ls = socket.create_server(("127.0.0.1", 0), backlog=128)
    ready.send(ls.getsockname()[1])

    def handle(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = SSL.Connection(ctx, sock)
            conn.set_accept_state()
            conn.do_handshake()
            data = conn.recv(1)
            conn.send(data)
            conn.shutdown()
        except Exception:  # noqa: BLE001
            pass
        finally:
            sock.close()

    while True:
        s, _ = ls.accept()
        threading.Thread(target=handle, args=(s,), daemon=True).start()


def _plain_client(mutual: bool, sim_dir: str | None = None):
    from OpenSSL import SSL

    ctx = _plain_context(False, mutual, sim_dir)

    def one(port: int) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = SSL.Connection(ctx, sock)
            conn.set_connect_state()
            conn.do_handshake()
            conn.send(b"x")
            if conn.recv(1) != b"x":
                raise RuntimeError("bad echo")
        finally:
            sock.close()

    return one


# ------------------------------------------------------------------------------------------------
# attested (eaa.tls)

def _attested_server(mutual: bool, sim_dir: str, cache: bool, ready: Any) -> None:
    from eaa.tls import TlsConfig, TlsServer

    cfg = TlsConfig(attester="sim_sgx_ecdsa", mutual=mutual, trust_simulation=True, sim_dir=sim_dir,
                    verify_cache_size=256 if cache else 0, endorsements=True)
    server = TlsServer(cfg, "127.0.0.1", 0, backlog=128)
    ready.send(server.address[1])

    def handle(session: Any) -> None:
        session.send(session.recv(1))

    server.serve_forever(handle, max_clients=256, on_error=lambda addr, e: None)


def _attested_client(mutual: bool, sim_dir: str, cache: bool):
    from eaa.tls import TlsClient, TlsConfig

    cfg = TlsConfig(attester="sim_sgx_ecdsa" if mutual else None, mutual=mutual, trust_simulation=True,
                    sim_dir=sim_dir, verify_cache_size=256 if cache else 0, endorsements=True)
    client = TlsClient(cfg)

    def one(port: int) -> None:
        with client.connect("127.0.0.1", port) as s:
            s.send(b"x")
            if s.recv(1) != b"x":
                raise RuntimeError("bad echo")
            if s.peer_result is None or s.peer_result.tee != "sgx":
                raise RuntimeError("peer not attested")

    return one


# ------------------------------------------------------------------------------------------------

def _serve(kind: str, mutual: bool, sim_dir: str, cache: bool, conn: Any) -> None:
    os.environ["EAA_SIM_DIR"] = sim_dir
    if kind == "plain":
        _plain_server(mutual, conn)
    elif kind == "floor":
        _plain_server(mutual, conn, sim_dir)
    else:
        _attested_server(mutual, sim_dir, cache, conn)


class Server:
    """One configuration's server process and the client side that talks to it."""

    def __init__(self, kind: str, mutual: bool, sim_dir: str, cache: bool) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(kind, mutual, sim_dir, cache, child), daemon=True)
        self.proc.start()
        if not parent.poll(120):
            raise RuntimeError("server did not start")
        self.port = parent.recv()
        self.one = (_plain_client(mutual) if kind == "plain" else _plain_client(mutual, sim_dir) if kind == "floor"
                    else _attested_client(mutual, sim_dir, cache))
        self.one(self.port)  # the first handshake (imports, key loading) is not measured

    def cpu(self) -> float:
        """CPU seconds so far of the server process (Linux /proc; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rate(self, seconds: float, threads: int) -> tuple[float, float]:
        """Handshakes per second, and CPU seconds per handshake of the client (this process) and server."""
        t0, s0 = os.times(), self.cpu()
        counts = [0] * threads
        errors: list[BaseException] = []
        start = time.monotonic()
        t_end = start + seconds

        def worker(i: int) -> None:
            try:
                while time.monotonic() < t_end:
                    self.one(self.port)
                    counts[i] += 1
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise RuntimeError(f"handshake failed: {errors[0]!r}")
        elapsed = time.monotonic() - start
        t1, s1 = os.times(), self.cpu()
        n = max(1, sum(counts))
        cpu = (t1.user - t0.user + t1.system - t0.system + s1 - s0) / n
        return sum(counts) / elapsed, cpu

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(10)


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _fmt(s: dict[str, float]) -> str:
    return f"{s['median']:>6.2f}x ({s['min']:.2f}-{s['max']:.2f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=0.6, help="per configuration per round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sim-dir", help="simulated platform directory (default: a fresh temporary one)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    tmp = None
    if args.sim_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="eaa-bench-sim-")
        sim_dir = str(Path(tmp.name) / "sim")
    else:
        sim_dir = args.sim_dir
    os.environ["EAA_SIM_DIR"] = sim_dir
    from eaa.sim import load_platform

    load_platform(sim_dir)

    rows = []
    for mutual in (False, True):
        servers = {"plain": Server("plain", mutual, sim_dir, True), "warm": Server("attested", mutual, sim_dir, True),
                   "cold": Server("attested", mutual, sim_dir, False), "floor": Server("floor", mutual, sim_dir, False)}
        try:
            rates: dict[str, list[float]] = {name: [] for name in servers}
            cpu: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name, server in servers.items():
                    r, c = server.rate(args.seconds, args.threads)
                    rates[name].append(r)
                    cpu[name].append(c * 1e6)
        finally:
            for server in servers.values():
                server.stop()
        ratio = {f"{a}/{b}": _summary([x / y for x, y in zip(rates[a], rates[b], strict=True)])
                 for a, b in (("warm", "plain"), ("cold", "plain"), ("floor", "plain"), ("cold", "floor"))}
        rows.append({"mode": "mutual" if mutual else "one-way",
                     **{name: _summary(r) for name, r in rates.items()},
                     "cpu_us": {name: _summary(c) for name, c in cpu.items()},
                     "warm_ratio": ratio["warm/plain"], "cold_ratio": ratio["cold/plain"],
                     "floor_ratio": ratio["floor/plain"], "cold_floor_ratio": ratio["cold/floor"],
                     "warm_target_met": ratio["warm/plain"]["median"] >= 0.9,
                     "cold_target_met": ratio["cold/plain"]["median"] >= 0.5})

    if args.json:
        print(json.dumps({"threads": args.threads, "rounds": args.rounds, "seconds": args.seconds, "rows": rows},
                         indent=1))
    else:
        print(f"TLS handshakes/s on loopback ({args.threads} client thread(s), {args.rounds} interleaved rounds of "
              f"{args.seconds:g} s per configuration, sim_sgx_ecdsa evidence, DICE certificates)")
        print(f"{'mode':<8} {'plain/s':>8} {'warm/s':>8} {'cold/s':>8} {'floor/s':>8}  {'warm/plain':>24}  "
              f"{'cold/plain':>24}  {'floor/plain':>17}  {'cold/floor':>17}")
        for r in rows:
            w, c = r["warm_ratio"], r["cold_ratio"]
            print(f"{r['mode']:<8} " + " ".join(f"{r[k]['median']:>8.0f}" for k in ("plain", "warm", "cold", "floor"))
                  + f"  {_fmt(w)} {'met' if r['warm_target_met'] else 'NOT met':>7}"
                  f"  {_fmt(c)} {'met' if r['cold_target_met'] else 'NOT met':>7}"
                  f"  {_fmt(r['floor_ratio'])}  {_fmt(r['cold_floor_ratio'])}")
        print("targets: warm (peer cache) >= 0.90x plain, cold (no cache of any kind) >= 0.50x plain; "
              "floor: a cold check reduced to its library calls")
        print("CPU time per handshake, client and server processes together, us: median (range)")
        print(f"{'mode':<8} {'plain':>20} {'warm':>20} {'cold':>20} {'floor':>20}")
        for r in rows:
            print(f"{r['mode']:<8} " + " ".join(
                f"{c['median']:>7.0f} ({c['min']:.0f}-{c['max']:.0f})".rjust(20)
                for c in (r["cpu_us"][k] for k in ("plain", "warm", "cold", "floor"))))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
