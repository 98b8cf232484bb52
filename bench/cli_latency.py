"""Whole-process latency of the command-line tools, against dcap-qvl's one-shot and the bare interpreter.

What a user (or a script calling the tools in a loop) waits for is a whole process: interpreter
start, imports, argument parsing, the work, exit. Each command below is run as its own process, in
interleaved rounds (every command once per round, so a slow moment on a shared machine hits them
alike), and reported as the median and the range (min-max) of its wall times, with ratios:

  python -c pass                      the bare interpreter: the floor of any Python command
  cryptography floor                  import cryptography's X.509 and EC modules and load one certificate:
                                      the floor of any Python verifier built on cryptography
  dcap-qvl one-shot                   python -c "import dcap_qvl; verify the same quote" (the pinned package)
  eaa verify-quote                    the same quote, collateral and time
  eaa --help / shelter --help         start-up and argument parsing only
  shelter remoteattestation           one attestation against a local simulated flow (enclave-tls-server
                                      and inclavared with the simulated TEE, started once, before the rounds)

Targets: eaa verify-quote within 1.5x dcap-qvl's one-shot; shelter remoteattestation under 150 ms.
Run with ``make bench`` (or ``python bench/cli_latency.py --rounds 15``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eaa_flow import (  # the flow benchmark's helpers (bench/ is on sys.path as the script's directory)
    free_port,
    wait_port,
)

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT.parent / "shared" / "vectors"
BIN = Path(sys.executable).parent
VECTOR = "dcap-qvl/sgx_v3"
VERIFY_TARGET = 1.5  # x dcap-qvl's one-shot
SHELTER_TARGET_MS = 150.0


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, from the child's own rusage) of one process, in ms. On a
    shared machine the CPU time moves much less than the wall time when others are busy."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert p.stderr is not None
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = (time.perf_counter() - t0) * 1000
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stderr.close()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])}... failed ({p.returncode}): {err.decode(errors='replace')[-500:]}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


class Flow:
    """enclave-tls-server and inclavared on the simulated TEE, and shelter's reference values for them."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env = env
        subprocess.run([str(BIN / "eaa"), "sim", "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        self.reference = work / "reference.toml"
        subprocess.run([str(BIN / "shelter"), "mrenclave", "--sim", "--inclavared-sim", "-o", str(self.reference)],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        wport, iport = free_port(), free_port()
        self.start([str(BIN / "enclave-tls-server"), "--ip", "127.0.0.1", "--port", str(wport), "--mutual",
                    "--attester", "sim_sgx_ecdsa", "--trust-sim", "--log-level", "error"], wport)
        self.start([str(BIN / "inclavared"), "--listen", f"127.0.0.1:{iport}", "--xfer", f"127.0.0.1:{wport}",
                    "--attester", "sim_sgx_ecdsa", "--verifier", "sgx_ecdsa_qve", "--mutual", "--trust-sim",
                    "--log-level", "error"], iport)
        self.addr = f"tcp://127.0.0.1:{iport}"

    def start(self, cmd: list[str], port: int) -> None:
        p = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_port(port, p)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def commands(flow: Flow | None) -> dict[str, list[str]]:
    manifest = {v["id"]: v for v in json.loads((VECTORS / "MANIFEST.json").read_text())["vectors"]}
    v = manifest[VECTOR]
    quote, coll, at = VECTORS / v["quote"], VECTORS / v["collateral"]["qvl_json"], int(v["verify_at"])
    py = sys.executable
    cmds = {"python -c pass": [py, "-c", "pass"]}
    # What any verifier built on cryptography pays before its own code runs: cryptography's Rust loader
    # imports the whole cryptography.x509 package when it parses its first certificate.
    cmds["cryptography floor"] = [py, "-c", (
        "import binascii\n"
        "from cryptography import x509\n"
        "from cryptography.hazmat.primitives.asymmetric import ec\n"
        f"x509.load_pem_x509_certificate(open({str(ROOT / 'src/eaa/data/intel_sgx_root_ca.pem')!r}, 'rb').read())")]
    try:
        import dcap_qvl  # type: ignore[import-not-found]  # noqa: F401
        cmds["dcap-qvl one-shot"] = [py, "-c", (
            "import sys, dcap_qvl\n"
            f"raw = open({str(quote)!r}, 'rb').read()\n"
            f"c = dcap_qvl.QuoteCollateralV3.from_json(open({str(coll)!r}).read())\n"
            f"print(dcap_qvl.verify(raw, c, {at}).status)")]
    except ImportError:
        print("dcap-qvl is not installed (pip install -e '.[bench]'): no peer column", file=sys.stderr)
    cmds["eaa verify-quote"] = [str(BIN / "eaa"), "verify-quote", str(quote), "--collateral", str(coll),
                                "--at", str(at)]
    cmds["eaa --help"] = [str(BIN / "eaa"), "--help"]
    cmds["shelter --help"] = [str(BIN / "shelter"), "--help"]
    if flow is not None:
        cmds["shelter remoteattestation"] = [str(BIN / "shelter"), "remoteattestation", "--addr", flow.addr,
                                             "--trust-sim", "--reference", str(flow.reference)]
    return cmds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=11, help="interleaved rounds (default 11)")
    ap.add_argument("--no-flow", action="store_true", help="skip shelter remoteattestation")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="eaa-cli-latency-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAA_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["EAA_SIM_DIR"] = str(work / "sim")
    # Installed packages run from bytecode (pip compiles it at install time); an environment that forbids
    # writing it would have every process compile eaa from source. The warm-up run fills this cache.
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    flow = None
    try:
        if not args.no_flow:
            flow = Flow(work, env)
        cmds = commands(flow)
        for cmd in cmds.values():  # warm the page cache and .pyc files; not measured
            timed(cmd, env)
        times: dict[str, list[float]] = {name: [] for name in cmds}
        cpu: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.rounds):
            for name, cmd in cmds.items():
                wall, used = timed(cmd, env)
                times[name].append(wall)
                cpu[name].append(used)
    finally:
        if flow is not None:
            flow.stop()
        shutil.rmtree(work, ignore_errors=True)

    peer = "dcap-qvl one-shot" if "dcap-qvl one-shot" in times else None
    bare = times["python -c pass"]
    print(f"whole processes, {args.rounds} interleaved rounds; wall-time ratios are per round, median [min-max]; "
          "cpu = user + system time of the process")
    print(f"{'command':26} {'wall ms':>8} {'range ms':>13} {'x bare':>6} {'x dcap-qvl one-shot':>20} "
          f"{'cpu ms':>7} {'cpu x dcap-qvl':>14}")
    for name, ts in times.items():
        r_bare = [t / b for t, b in zip(ts, bare, strict=True)]
        line = (f"{name:26} {statistics.median(ts):8.1f} {min(ts):6.0f}-{max(ts):<6.0f} "
                f"{statistics.median(r_bare):6.2f}")
        if peer:
            r = [t / p for t, p in zip(ts, times[peer], strict=True)]
            line += f" {statistics.median(r):6.2f} [{min(r):.2f}-{max(r):.2f}]"
        line += f" {statistics.median(cpu[name]):7.1f}"
        if peer:
            line += f" {statistics.median(cpu[name]) / statistics.median(cpu[peer]):14.2f}"
        print(line)
    print("targets:")
    if peer:
        ratio = statistics.median(t / p for t, p in zip(times["eaa verify-quote"], times[peer], strict=True))
        print(f"  eaa verify-quote within {VERIFY_TARGET}x dcap-qvl's one-shot: {ratio:.2f}x -> "
              f"{'met' if ratio <= VERIFY_TARGET else 'NOT met'}")
    if "shelter remoteattestation" in times:
        med = statistics.median(times["shelter remoteattestation"])
        print(f"  shelter remoteattestation under {SHELTER_TARGET_MS:.0f} ms: {med:.0f} ms -> "
              f"{'met' if med < SHELTER_TARGET_MS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
