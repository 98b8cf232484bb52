"""Quote verifications per second: eaa cold and warm against dcap-qvl 0.7.0, same quotes, same times.

cold  = a new verifier per call: every chain, CRL and collateral signature is checked again.
warm  = one verifier reused: collateral work, and a QE report already verified under the same PCK key, is
        cached under its exact bytes; validity windows, revocation lookups, TCB evaluation and the
        quote signature are still done on every call.
Run with ``make bench`` (installs dcap-qvl from PyPI). One process pinned to one core. The columns are
measured in interleaved rounds and each reports its median round, so a slow moment on a shared machine
shifts all of them alike instead of one.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from eaa.collateral.bundle import Collateral  # noqa: E402
from eaa.verify.dcap import QuoteVerifier  # noqa: E402

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
            "cold": lambda: QuoteVerifier(cache_size=0).verify(raw, coll, at=at),
            "warm": lambda: warm_verifier.verify(raw, coll, at=at),
        }
        if dcap_qvl is not None:
            pc = dcap_qvl.QuoteCollateralV3.from_json(coll_json)
            assert dcap_qvl.verify(raw, pc, at).status == expected
            runs["peer"] = lambda: dcap_qvl.verify(raw, pc, at)
        rounds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(ROUNDS):
            for name, fn in runs.items():
                rounds[name].append(rate(fn))
        med = {name: statistics.median(r) for name, r in rounds.items()}
        rows.append((label, med["cold"], med["warm"], med.get("peer")))
    print(f"{'quote':8} {'eaa cold/s':>11} {'eaa warm/s':>11} {'dcap-qvl/s':>11} {'cold ratio':>11} {'warm ratio':>11}")
    for label, cold, warm, peer in rows:
        pr = f"{peer:11.0f}" if peer else f"{'-':>11}"
        cr = f"{cold / peer:10.2f}x" if peer else f"{'-':>11}"
        wr = f"{warm / peer:10.2f}x" if peer else f"{'-':>11}"
        print(f"{label:8} {cold:11.0f} {warm:11.0f} {pr} {cr} {wr}")
    print("targets: warm >= 3x dcap-qvl, cold >= 0.6x dcap-qvl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
