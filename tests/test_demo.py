"""`make demo` runs the whole flow, for SGX and then for SEV-SNP, and leaves nothing running, also when
interrupted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from _procs import free_port

ROOT = Path(__file__).resolve().parent.parent


def _env() -> tuple[dict[str, str], int, int, tuple[int, ...]]:
    w, i, sw, si = free_port(), free_port(), free_port(), free_port()
    env = dict(os.environ, EAA_DEMO_BIN=str(Path(sys.executable).parent), EAA_DEMO_WORKLOAD_PORT=str(w),
               EAA_DEMO_INCLAVARED_PORT=str(i), EAA_DEMO_SNP_WORKLOAD_PORT=str(sw),
               EAA_DEMO_SNP_INCLAVARED_PORT=str(si))
    env.pop("EAA_TRUST_SIMULATION", None)
    return env, w, i, (w, i, sw, si)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_demo_succeeds_and_cleans_up() -> None:
    env, _, _, ports = _env()
    r = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    sgx, snp = r.stdout.split("SEV-SNP: the MEASUREMENT")
    assert "Remote attestation is successful." in sgx and "mrenclave" in sgx
    # SEV-SNP: both identities verified, the workload's MEASUREMENT pinned to the value shelter mrenclave computed
    assert "Remote attestation is successful." in snp
    assert "inclavared (tcp://127.0.0.1:" in snp and "sev_snp evidence verified, TEE sev-snp" in snp
    assert "workload: sev_snp (fresh: nonce bound) evidence verified" in snp
    measurement = snp.split("measurement: ", 1)[1].split()[0]
    assert len(measurement) == 96 and f"MEASUREMENT: {measurement}" in snp
    # the workload and inclavared are both pinned: shelter has nothing unchecked to warn about
    assert "not pinned" not in r.stdout and "--no-reference" not in r.stdout
    assert not any(_listening(p) for p in ports)


def test_demo_interrupted_stops_everything() -> None:
    env, w, _, ports = _env()
    p = subprocess.Popen(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while not _listening(w) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    p.wait(60)
    time.sleep(0.5)
    assert not any(_listening(p) for p in ports)
