"""`make demo` runs the whole flow and leaves nothing running, also when interrupted."""

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


def _env() -> tuple[dict[str, str], int, int]:
    w, i = free_port(), free_port()
    env = dict(os.environ, EAA_DEMO_BIN=str(Path(sys.executable).parent), EAA_DEMO_WORKLOAD_PORT=str(w),
               EAA_DEMO_INCLAVARED_PORT=str(i))
    env.pop("EAA_TRUST_SIMULATION", None)
    return env, w, i


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_demo_succeeds_and_cleans_up() -> None:
    env, w, i = _env()
    r = subprocess.run(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Remote attestation is successful." in r.stdout
    assert "mrenclave" in r.stdout
    # the workload and inclavared are both pinned: shelter has nothing unchecked to warn about
    assert "not pinned" not in r.stdout and "--no-reference" not in r.stdout
    assert not _listening(w) and not _listening(i)


def test_demo_interrupted_stops_everything() -> None:
    env, w, i = _env()
    p = subprocess.Popen(["bash", "scripts/demo.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while not _listening(w) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    p.wait(60)
    time.sleep(0.5)
    assert not _listening(w) and not _listening(i)
