"""Instructions per verification under callgrind: eaa against dcap-qvl 0.7.0 and one OpenSSL signature check.

Rates on a shared VM move by a factor of two from one run to the next, and a ratio taken within a
round only cancels what hits both columns alike. An instruction count does not move: callgrind counts
what the CPU executes, not how long it waits for a core or a cache line, so the same code, inputs and
interpreter give the same figure on a busy machine as on a quiet one. It cannot show what the
instructions cost in time (Python's run at a lower rate than OpenSSL's field arithmetic); the rate
benchmarks do.

Each case runs in its own process under ``valgrind --tool=callgrind``, once with 10 calls and once
with 60; (I(60) - I(10)) / 50 is the count per call, with start-up, imports and the first call's
one-time work cancelled out:

  P-256 verify           one ECDSA-P256-SHA256 verification through cryptography (OpenSSL)
  eaa cold / dcap-qvl    a cold verification of dcap-qvl's SGX v3 and TDX v4 vectors, as in verify_quote.py
  eaa warm               the same with one verifier reused
  TLS peer check, cold   eaa.tls.PeerVerifier with no cache, on a simulated DICE certificate with its
                         endorsements (the check a cold handshake makes, without the handshake)
  cold floor, peer floor those two reduced to their library calls (bench/floors.py); not a lower bound in
                         instructions: eaa slices signed bytes out of the DER where the floor has
                         cryptography re-encode them, and runs fewer on TDX v4

Usage: python bench/instructions.py [--json]. Needs valgrind (Debian: apt install valgrind).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
VECTORS = ROOT.parent / "shared" / "vectors"
QUOTES = {"SGX v3": "dcap-qvl/sgx_v3", "TDX v4": "dcap-qvl/tdx_v4"}
FEW, MANY = 10, 60


def _quote_case(vid: str) -> tuple[bytes, str, object]:
    manifest = {v["id"]: v for v in json.loads((VECTORS / "MANIFEST.json").read_text())["vectors"]}
    v = manifest[vid]
    return (VECTORS / v["quote"]).read_bytes(), (VECTORS / v["collateral"]["qvl_json"]).read_text(), v["verify_at"]


def _target(case: str, workdir: Path) -> Callable[[], object]:
    """The call a case repeats (run inside the measured process)."""
    if case == "sig":
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        alg = ec.ECDSA(hashes.SHA256())
        data = bytes(range(256)) * 2
        signature, public = key.sign(data, alg), key.public_key()
        return lambda: public.verify(signature, data, alg)
    if case == "peer":
        from eaa.tls.peer import PeerVerifier

        der = (workdir / "peer.der").read_bytes()
        verifier = PeerVerifier(trust_simulation=True, sim_dir=str(workdir / "sim"), cache_size=0)
        return lambda: verifier.verify_certificate(der)
    if case == "peerfloor":
        from floors import peer_floor

        der = (workdir / "peer.der").read_bytes()
        return lambda: peer_floor(der)
    kind, label = case.split(":", 1)
    raw, coll_json, at = _quote_case(QUOTES[label])
    if kind == "qvl":
        import dcap_qvl  # type: ignore[import-not-found]

        collateral = dcap_qvl.QuoteCollateralV3.from_json(coll_json)
        return lambda: dcap_qvl.verify(raw, collateral, at)
    from eaa.collateral.bundle import Collateral
    from eaa.verify.dcap import QuoteVerifier

    coll = Collateral.from_qvl_json(coll_json)
    if kind == "floor":
        from floors import cold_floor

        return cold_floor(raw, coll)
    if kind == "warm":
        warm = QuoteVerifier()
        return lambda: warm.verify(raw, coll, at=at)  # type: ignore[arg-type]
    return lambda: QuoteVerifier(cache_size=0).verify(raw, coll, at=at)  # type: ignore[arg-type]


def _run(case: str, calls: int, workdir: Path) -> None:
    fn = _target(case, workdir)
    for _ in range(calls):
        fn()


def _collected(case: str, calls: int, workdir: Path) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
           "--run", case, str(calls), str(workdir)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    m = re.search(r"Collected : (\d+)", r.stderr)
    if r.returncode != 0 or m is None:
        raise RuntimeError(f"{case}: callgrind run failed: {r.stderr.strip().splitlines()[-1:]}")
    return int(m.group(1))


def per_call(case: str, workdir: Path) -> float:
    return (_collected(case, MANY, workdir) - _collected(case, FEW, workdir)) / (MANY - FEW)


def _prepare(workdir: Path) -> None:
    """A simulated platform and one DICE certificate with evidence and endorsements, made once."""
    from eaa.sim import load_platform
    from eaa.sim.attesters import SimSgxEcdsaAttester
    from eaa.tls.crypto import OpenSslCrypto

    sim = workdir / "sim"
    load_platform(sim)
    creds = OpenSslCrypto().create_credentials(SimSgxEcdsaAttester(sim), endorsements=True)
    (workdir / "peer.der").write_bytes(creds.der)


def _count_all(have_qvl: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="eaa-bench-instr-") as tmp:
        workdir = Path(tmp)
        _prepare(workdir)
        counts = {case: per_call(case, workdir) for case in ("sig", "peer", "peerfloor")}
        for label in QUOTES:
            for kind in ("cold", "floor", "warm", *(("qvl",) if have_qvl else ())):
                counts[f"{kind}:{label}"] = per_call(f"{kind}:{label}", workdir)
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--run", nargs=3, metavar=("CASE", "CALLS", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.run:
        _run(args.run[0], int(args.run[1]), Path(args.run[2]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind not found (Debian: apt install valgrind); no instruction counts", file=sys.stderr)
        return 0
    try:
        import dcap_qvl  # noqa: F401
        have_qvl = True
    except ImportError:
        have_qvl = False
        print("dcap-qvl not installed (pip install dcap-qvl==0.7.0); its rows are empty", file=sys.stderr)
    try:
        counts = _count_all(have_qvl)
    except RuntimeError as e:
        print(f"instructions: {e}", file=sys.stderr)
        return 1
    sig = counts["sig"]
    rows = [("P-256 verify (OpenSSL)", sig, None)]
    for label in QUOTES:
        peer = counts.get(f"qvl:{label}")
        rows += [(f"eaa cold, {label}", counts[f"cold:{label}"], peer),
                 (f"cold floor, {label}", counts[f"floor:{label}"], peer), (f"dcap-qvl, {label}", peer, None),
                 (f"eaa warm, {label}", counts[f"warm:{label}"], None)]
    rows += [("TLS peer check, cold", counts["peer"], None), ("TLS peer floor", counts["peerfloor"], None)]
    if args.json:
        print(json.dumps({name: value for name, value, _ in rows}, indent=1))
        return 0
    print(f"Instructions per call under callgrind (({MANY} calls) - ({FEW} calls)) / {MANY - FEW}")
    print(f"{'case':<24} {'M instr':>8} {'P-256 verifies':>15} {'/ dcap-qvl':>11}")
    for name, value, peer in rows:
        if value is None:
            print(f"{name:<24} {'-':>8}")
            continue
        ratio = f"{value / peer:.2f}x" if peer else ""
        print(f"{name:<24} {value / 1e6:8.2f} {value / sig:15.1f} {ratio:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
