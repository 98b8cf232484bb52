"""Real eaa processes on 127.0.0.1 for end-to-end tests: start, wait until listening, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode}: {out[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


class Proc:
    """A console program of eaa run as ``python -m``; output goes to a log file for diagnosis."""

    def __init__(self, module: str, args: Sequence[str], env: dict[str, str], log: Path,
                 port: int | None = None) -> None:
        self.log = log
        self._out = open(log, "wb")
        self.p = subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=self._out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        if port is not None:
            try:
                wait_listening(port, self.p)
            except RuntimeError as e:
                self.stop()
                raise RuntimeError(f"{module}: {e}\n{self.output()}") from None

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self._out.close()
        return self.p.returncode


def run(module: str, args: Sequence[str], env: dict[str, str],
        timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def sim_env(directory: Path) -> dict[str, str]:
    """The environment for a test's processes: a new simulated platform under ``directory`` (also
    ``EAA_TEST_DIR``), and nothing trusted or debugged by inheritance."""
    from eaa.sim import init_platform

    init_platform(directory / "sim")
    env = dict(os.environ)
    env.pop("EAA_TRUST_SIMULATION", None)
    env.pop("EAA_DEBUG", None)
    env["EAA_SIM_DIR"] = str(directory / "sim")
    env["EAA_TEST_DIR"] = str(directory)
    return env
