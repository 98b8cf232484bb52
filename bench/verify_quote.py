"""Quote verifications per second: eaa cold and warm against dcap-qvl 0.7.0, same quotes, same times.

cold  = a new verifier per call: every chain, CRL and collateral signature is checked again.
warm  = one verifier reused: collateral work, and a QE report already verified under the same PCK key, is
        cached under its exact bytes; validity windows, revocation lookups, TCB evaluation and the
        quote signature are still done on every call.
floor = one ECDSA-P256-SHA256 verification through cryptography (OpenSSL) of the quote's own signature:
        what a warm verification cannot avoid, so warm/floor says how close warm is to it.
nine  = the nine signature checks of a cold verification alone, keys and data prepared: no cold
        verification through OpenSSL runs faster, so nine/dcap-qvl is the ceiling of cold/dcap-qvl.
cold floor = a cold verification reduced to its library calls, none of eaa's own checks (bench/floors.py).
Run with ``make bench`` (installs dcap-qvl from PyPI). One process pinned to one core. The columns are
measured in interleaved rounds; ratios are taken within each round and shown as median (min-max), so a
slow moment on a shared machine shifts a round's columns alike instead of one of them.
Targets: cold >= 1.0x dcap-qvl, warm >= 0.7x the floor.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from eaa.collateral.bundle import Collateral  # noqa: E402
from eaa.verify.dcap import QuoteVerifier  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from floors import cold_floor, nine_signatures, signature_floor  # noqa: E402

VECTORS = ROOT.parent / "shared" / "vectors"
CASES = [("SGX v3", "dcap-qvl/sgx_v3"), ("TDX v4", "dcap-qvl/tdx_v4")]
ROUNDS = 7


def rate(fn: Callable[[], object], seconds: float = 0.3) -> float:
    fn()
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            fn()
        n += 20
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    manifest = {v["id"]: v for v in json.loads((VECTORS / "MANIFEST.json").read_text())["vectors"]}
    try:
        import dcap_qvl  # type: ignore[import-not-found]
    except ImportError:
        dcap_qvl = None
        print("dcap-qvl not installed (pip install dcap-qvl==0.7.0); its column is empty", file=sys.stderr)
    rows = []
    for label, vid in CASES:
        v = manifest[vid]
        raw = (VECTORS / v["quote"]).read_bytes()
        coll_json = (VECTORS / v["collateral"]["qvl_json"]).read_text()
        coll = Collateral.from_qvl_json(coll_json)
        at = v["verify_at"]
        warm_verifier = QuoteVerifier()
        expected = warm_verifier.verify(raw, coll, at=at).status
        runs: dict[str, Callable[[], object]] = {
            "cold": lambda raw=raw, coll=coll, at=at: QuoteVerifier(cache_size=0).verify(raw, coll, at=at),
            "warm": lambda raw=raw, coll=coll, at=at, v=warm_verifier: v.verify(raw, coll, at=at),
            "floor": signature_floor(raw),
            "nine": nine_signatures(raw, coll),
            "cold floor": cold_floor(raw, coll),
        }
        if dcap_qvl is not None:
            pc = dcap_qvl.QuoteCollateralV3.from_json(coll_json)
            assert dcap_qvl.verify(raw, pc, at).status == expected
            runs["peer"] = lambda raw=raw, pc=pc, at=at: dcap_qvl.verify(raw, pc, at)
        rounds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(ROUNDS):
            for name, fn in runs.items():
                rounds[name].append(rate(fn))
        rows.append((label, rounds))
    print(f"{'quote':8} {'cold/s':>7} {'warm/s':>7} {'floor/s':>8} {'nine/s':>7} {'cold floor/s':>12} "
          f"{'dcap-qvl/s':>10}  {'cold/dcap-qvl':>20}  {'nine/dcap-qvl':>20}  {'cold floor/dcap-qvl':>20}  "
          f"{'cold/cold floor':>20}  {'warm/floor':>20}  {'warm/dcap-qvl':>20}")
    met = True
    for label, r in rows:
        med = {name: statistics.median(values) for name, values in r.items()}
        cold_peer = _ratio(r, "cold", "peer")
        warm_floor = _ratio(r, "warm", "floor")
        met &= (cold_peer is None or cold_peer[0] >= 1.0) and warm_floor is not None and warm_floor[0] >= 0.7
        print(f"{label:8} {med['cold']:7.0f} {med['warm']:7.0f} {med['floor']:8.0f} {med['nine']:7.0f} "
              f"{med['cold floor']:12.0f} {med.get('peer', float('nan')):10.0f}  {_fmt(cold_peer):>20}  "
              f"{_fmt(_ratio(r, 'nine', 'peer')):>20}  {_fmt(_ratio(r, 'cold floor', 'peer')):>20}  "
              f"{_fmt(_ratio(r, 'cold', 'cold floor')):>20}  "
              f"{_fmt(warm_floor):>20}  {_fmt(_ratio(r, 'warm', 'peer')):>20}")
    print(f"targets: cold >= 1.0x dcap-qvl, warm >= 0.7x floor: {'met' if met else 'NOT met'} "
          "(no cold verification through OpenSSL beats nine)")
    return 0


def _ratio(r: dict[str, list[float]], a: str, b: str) -> tuple[float, float, float] | None:
    if a not in r or b not in r:
        return None
    values = [x / y for x, y in zip(r[a], r[b], strict=True)]
    return statistics.median(values), min(values), max(values)


def _fmt(x: tuple[float, float, float] | None) -> str:
    return "-" if x is None else f"{x[0]:.2f}x ({x[1]:.2f}-{x[2]:.2f})"


if __name__ == "__main__":
    sys.exit(main())
