"""Full remote attestations through inclavared: throughput, p50/p99 latency, errors, inclavared's peak RSS.

A simulated platform, an enclave-tls-server and an inclavared run as separate processes on loopback
(the seed's flags, simulated attesters); shelter clients run here, each doing complete v2
attestations (attested TLS to inclavared, fresh nonce, the workload's evidence verified again,
reference values compared) for a fixed time at 1, 8 and 64 concurrent clients.

Run: ``python bench/eaa_flow.py [--seconds S]`` (``make bench`` runs it).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a server exited early with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each, then wait; kill what does not stop within 10 s."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each concurrency level")
    ap.add_argument("--clients", default="1,8,64", help="concurrency levels")
    args = ap.parse_args()

    from eaa.policy import Policy, ReferenceValues
    from eaa.services.shelter import Shelter, ShelterOptions
    from eaa.sim import init_platform, measure_files
    from eaa.tls import TlsConfig

    work = Path(tempfile.mkdtemp(prefix="eaa-bench-"))
    env = dict(os.environ, EAA_SIM_DIR=str(work / "sim"))
    platform = init_platform(work / "sim")
    program = [str(ROOT / "src/eaa/services/workload.py"), str(ROOT / "src/eaa/cli/enclave_tls_server.py")]
    wport, iport = free_port(), free_port()
    py = sys.executable
    procs = []
    try:
        workload = subprocess.Popen([py, "-m", "eaa.cli.enclave_tls_server", "--ip", "127.0.0.1", "--port",
                                     str(wport), "--mutual", "--attester", "sim_sgx_ecdsa", "--trust-sim",
                                     "--log-level", "error", *sum((["--measure", p] for p in program), [])],
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(workload)
        wait_port(wport, workload)
        inclavared = subprocess.Popen([py, "-m", "eaa.cli.inclavared", "--listen", f"127.0.0.1:{iport}", "--xfer",
                                       f"127.0.0.1:{wport}", "--attester", "sim_sgx_ecdsa", "--verifier",
                                       "sgx_ecdsa_qve", "--mutual", "--trust-sim", "--log-level", "error",
                                       "--max-connections", "128"],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(inclavared)
        wait_port(iport, inclavared)

        reference = ReferenceValues.from_mapping({"mrenclave": measure_files(program).hex(),
                                                  "mrsigner": platform.mrsigner.hex()})
        policy = Policy(reference=reference)
        tls = TlsConfig(verifier="sgx_ecdsa", trust_simulation=True, sim_dir=str(work / "sim"),
                        policy=policy.without_reference(), timeout=30, max_message=4 << 20)
        shelter = Shelter(ShelterOptions(tls=tls, policy=policy, timeout=30))
        addr = f"tcp://127.0.0.1:{iport}"
        first = shelter.attest(addr)
        if not first.ok:
            raise SystemExit(f"attestation fails: [{first.error_code}] {first.error}")

        rows = []
        for n in [int(x) for x in args.clients.split(",")]:
            latencies: list[float] = []
            errors: list[str] = []
            lock = threading.Lock()
            stop_at = time.monotonic() + args.seconds

            def client(stop_at: float = stop_at, lock: threading.Lock = lock, latencies: list[float] = latencies,
                       errors: list[str] = errors) -> None:
                while time.monotonic() < stop_at:
                    t0 = time.perf_counter()
                    r = shelter.attest(addr)
                    dt = (time.perf_counter() - t0) * 1000
                    with lock:
                        (latencies if r.ok else errors).append(dt if r.ok else f"{r.error_code}: {r.error}")

            threads = [threading.Thread(target=client) for _ in range(n)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - t0
            rows.append((n, len(latencies) / elapsed, statistics.median(latencies) if latencies else float("nan"),
                         percentile(latencies, 0.99), len(errors), errors[:1]))
        rss = peak_rss_mib(inclavared.pid)
        print(f"{'clients':>7} {'attest/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for n, rate, p50, p99, nerr, sample in rows:
            print(f"{n:7d} {rate:9.1f} {p50:8.1f} {p99:8.1f} {nerr:7d}" + (f"  e.g. {sample[0]}" if sample else ""))
        print(f"inclavared peak RSS: {rss:.1f} MiB")
        print("targets: p50 < 20 ms with one client, no errors at 64 clients, RSS < 100 MiB")
        print("(shelter clients share this one Python process, so client-side work is serialised by its GIL)")
        return 0
    finally:
        stop_processes(procs)


if __name__ == "__main__":
    sys.exit(main())
