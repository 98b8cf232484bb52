"""Benchmark: cached TCB-info requests per second through eaa-pccs, 16 concurrent clients, SQLite vs PostgreSQL.

    .venv/bin/python bench/pccs.py [--seconds 5] [--clients 16]

The data is the simulated platform's collateral (no vectors or network needed), imported into an
OFFLINE eaa-pccs started as its own process (``eaa-pccs serve``), so every measured request is a
cache hit served from the store. The load comes from this process: 16 asyncio clients, each with its
own keep-alive connection (raw HTTP/1.1, so the generator takes little of the CPU), for a fixed time
after a warm-up. PostgreSQL runs in a throw-away cluster
(eaa.services.pccs.pgtemp); without PostgreSQL server binaries its column is skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from eaa.services.pccs.pgtemp import PostgresUnavailable, TempPostgres
from eaa.sim import init_platform
from eaa.sim.platform import FMSPC


@dataclass
class Result:
    backend: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] | None = None
    note: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(work: Path) -> Path:
    """The simulated platform's SGX collateral as a PCS-style directory, plus its root."""
    sim = init_platform(work / "sim")
    sim.collateral("sgx").write_directory(work / "sgx")
    (work / "root.pem").write_bytes(sim.root_pem)
    return work / "sgx"


def start_server(db: str, collateral: Path, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "eaa.cli.pccs_server", "serve", "--mode", "offline", "--insecure-http",
           "--listen", f"127.0.0.1:{port}", "--db", db, "--import", str(collateral), "--trust-root", str(root),
           "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"eaa-pccs exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("eaa-pccs did not start")


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bool:
    """One keep-alive HTTP/1.1 GET; True for a 200 served from the cache."""
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    hit = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"eaa-cache-status":
            hit = value.strip() == b"hit"
    await reader.readexactly(length)
    return head.startswith(b"HTTP/1.1 200") and hit


async def load(url: str, clients: int, seconds: float, warmup: float) -> tuple[int, int, list[float], float]:
    """A deliberately thin client (raw HTTP/1.1 on asyncio streams) so the load generator costs little CPU."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    request = (f"GET /sgx/certification/v4/tcb?fmspc={FMSPC.hex().upper()} HTTP/1.1\r\n"
               f"Host: {host}:{port}\r\nConnection: keep-alive\r\n\r\n").encode()
    latencies: list[float] = []
    counts = [0, 0]
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop:
                    return
                try:
                    ok = await _get(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    ok = False
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    counts[0 if ok else 1] += 1
                    if ok:
                        latencies.append(t1 - t0)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return counts[0], counts[1], latencies, seconds


def run_backend(name: str, db: str, collateral: Path, root: Path, args: argparse.Namespace) -> Result:
    proc, url = start_server(db, collateral, root)
    try:
        ok, errors, latencies, seconds = asyncio.run(load(url, args.clients, args.seconds, args.warmup))
        return Result(name, ok, errors, seconds, latencies)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per backend (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds (default 1)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    args = ap.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="eaa-bench-pccs-") as tmp:
        work = Path(tmp)
        os.environ["EAA_SIM_DIR"] = str(work / "sim")
        collateral = prepare(work)
        results.append(run_backend("sqlite", str(work / "pccs.sqlite3"), collateral, work / "root.pem", args))
        try:
            with TempPostgres() as pg:
                results.append(run_backend("postgresql", pg.url, collateral, work / "root.pem", args))
        except PostgresUnavailable as e:
            results.append(Result("postgresql", note=f"skipped: {e}"))
    print(f"eaa-pccs cached TCB info (GET /sgx/certification/v4/tcb), {args.clients} concurrent clients, "
          f"{args.seconds:g} s per backend, {os.cpu_count()} CPUs")
    print(f"{'backend':<12} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>7}")
    for r in results:
        if r.note:
            print(f"{r.backend:<12} {r.note}")
            continue
        print(f"{r.backend:<12} {r.rps:>11.0f} {r.pct(0.50):>8.2f} {r.pct(0.99):>8.2f} {r.requests:>9} {r.errors:>7}")
    if any(not r.note and r.latencies for r in results):
        mean = statistics.mean(x for r in results if r.latencies for x in r.latencies) * 1000
        print(f"(mean latency over all backends: {mean:.2f} ms)")
    return 0 if all(r.errors == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
