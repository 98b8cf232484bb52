"""Attested TLS handshakes per second on loopback, against plain pyOpenSSL TLS in the same run.

Each operation: TCP connect, full TLS handshake (no resumption), 1-byte echo, close. The server runs
in its own process (one thread per connection); the client runs N threads. Configurations:

* plain      pyOpenSSL, an ordinary self-signed ECDSA P-256 certificate, verify callback returning True
* attested   eaa.tls with sim_sgx_ecdsa evidence (DICE certificate), full DCAP verification of the
             simulated quote; the verification cache is warm (the same certificate is not verified
             from scratch again, its time checks and the policy still run per handshake)
* cold       (informational) the same with the cache disabled on both sides: every handshake verifies
             the quote in full (the DCAP verifier's own collateral cache still applies)

Usage: python bench/tls_handshake.py [--seconds 3] [--warmup 1] [--threads 1] [--json]
The target is attested/plain >= 0.5 with a warm cache.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


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


def _plain_context(server: bool, mutual: bool):
    from OpenSSL import SSL

    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    if server or mutual:
        cert, key = _plain_credentials()
        ctx.use_certificate(cert)
        ctx.use_privatekey(key)
    if server:
        if mutual:
            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *a: True)
    else:
        ctx.set_verify(SSL.VERIFY_PEER, lambda *a: True)
    return ctx


def _plain_server(mutual: bool, ready: Any) -> None:
    from OpenSSL import SSL

    ctx = _plain_context(True, mutual)
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


def _plain_client(mutual: bool):
    from OpenSSL import SSL

    ctx = _plain_context(False, mutual)

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
                    verify_cache_size=256 if cache else 0)
    server = TlsServer(cfg, "127.0.0.1", 0, backlog=128)
    ready.send(server.address[1])

    def handle(session: Any) -> None:
        session.send(session.recv(1))

    server.serve_forever(handle, max_clients=256, on_error=lambda addr, e: None)


def _attested_client(mutual: bool, sim_dir: str, cache: bool):
    from eaa.tls import TlsClient, TlsConfig

    cfg = TlsConfig(attester="sim_sgx_ecdsa" if mutual else None, mutual=mutual, trust_simulation=True,
                    sim_dir=sim_dir, verify_cache_size=256 if cache else 0)
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
    else:
        _attested_server(mutual, sim_dir, cache, conn)


def measure(kind: str, mutual: bool, sim_dir: str, *, seconds: float, warmup: float, threads: int,
            cache: bool = True) -> float:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=("plain" if kind == "plain" else "attested", mutual, sim_dir, cache, child),
                       daemon=True)
    proc.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("server did not start")
        port = parent.recv()
        one = _plain_client(mutual) if kind == "plain" else _attested_client(mutual, sim_dir, cache)
        counts = [0] * threads
        errors: list[BaseException] = []
        start = time.monotonic()
        t_measure = start + warmup
        t_end = t_measure + seconds

        def worker(i: int) -> None:
            try:
                while True:
                    now = time.monotonic()
                    if now >= t_end:
                        return
                    one(port)
                    if time.monotonic() >= t_measure and now >= t_measure:
                        counts[i] += 1
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise RuntimeError(f"{kind} {'mutual' if mutual else 'one-way'}: {errors[0]!r}")
        return sum(counts) / seconds
    finally:
        proc.terminate()
        proc.join(10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sim-dir", help="simulated platform directory (default: a fresh temporary one)")
    p.add_argument("--no-cold", action="store_true", help="skip the informational cold-cache rows")
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
        mode = "mutual" if mutual else "one-way"
        plain = measure("plain", mutual, sim_dir, seconds=args.seconds, warmup=args.warmup, threads=args.threads)
        warm = measure("attested", mutual, sim_dir, seconds=args.seconds, warmup=args.warmup, threads=args.threads)
        row = {"mode": mode, "plain": plain, "attested_warm": warm, "ratio_warm": warm / plain if plain else 0.0}
        if not args.no_cold:
            cold = measure("attested", mutual, sim_dir, seconds=args.seconds, warmup=args.warmup,
                           threads=args.threads, cache=False)
            row.update(attested_cold=cold, ratio_cold=cold / plain if plain else 0.0)
        rows.append(row)

    if args.json:
        print(json.dumps({"threads": args.threads, "seconds": args.seconds, "rows": rows}, indent=1))
    else:
        print(f"TLS handshakes/s on loopback ({args.threads} client thread(s), {args.seconds:g} s each, "
              f"sim_sgx_ecdsa evidence, DICE certificates)")
        head = f"{'mode':<8} {'plain':>9} {'attested':>9} {'ratio':>6}"
        if not args.no_cold:
            head += f" {'cold':>9} {'ratio':>6}"
        print(head)
        for r in rows:
            line = f"{r['mode']:<8} {r['plain']:>9.1f} {r['attested_warm']:>9.1f} {r['ratio_warm']:>5.2f}x"
            if not args.no_cold:
                line += f" {r['attested_cold']:>9.1f} {r['ratio_cold']:>5.2f}x"
            print(line)
        print("attested = warm verification cache (target >= 0.50x plain); cold = every quote verified in full")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
