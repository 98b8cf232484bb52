"""``--processes N``: inclavared and enclave-tls-server served by N supervised processes on one port.

Real processes on 127.0.0.1 with simulated attesters. Asserted: attestations through the real flow
succeed; every child serves connections (each names its pid in its log lines); SIGTERM and SIGINT stop
every child and the parent exits 0 / 130; a killed child is replaced and the port keeps serving; a
killed parent takes its children with it; and the configuration errors.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import eaa
from _procs import Proc, free_port, run, sim_env
from eaa.errors import ConfigError
from eaa.policy import Policy, ReferenceValues
from eaa.services.address import Address
from eaa.services.limits import ServerLimits
from eaa.services.processes import (
    FIRST_RESTART_DELAY,
    MAX_RESTART_DELAY,
    check_processes,
    describe_status,
    listen_shared,
    restart_delay,
)
from eaa.services.shelter import Shelter, ShelterOptions
from eaa.sim import measure_files
from eaa.tls import TlsConfig

PROGRAM = [str(Path(eaa.__file__).parent / rel) for rel in ("services/workload.py", "cli/enclave_tls_server.py")]
SERVING = re.compile(r"serving with (\d+) processes \(pids ([\d ]+)\); supervisor pid (\d+)")


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a reparented child may wait to be reaped by init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_for(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def children(proc: Proc) -> list[int]:
    """The children's pids from the parent's start-up line."""
    assert wait_for(lambda: SERVING.search(proc.output()) is not None), proc.output()
    m = SERVING.search(proc.output())
    assert m is not None and int(m.group(3)) == proc.p.pid
    pids = [int(p) for p in m.group(2).split()]
    assert len(pids) == int(m.group(1))
    return pids


def pids_logging(proc: Proc, component: str, marker: str) -> set[int]:
    return {int(m.group(1)) for m in re.finditer(rf"{re.escape(component)}\[(\d+)\]: [^\n]*{re.escape(marker)}",
                                                 proc.output())}


class Flow:
    """enclave-tls-server and inclavared, both with ``--processes 2``."""

    def __init__(self, d: Path, name: str) -> None:
        self.env = sim_env(d / name)
        self.dir = d / name
        wport, self.port = free_port(), free_port()
        self.addr = f"tcp://127.0.0.1:{self.port}"
        self.workload = Proc("eaa.cli.enclave_tls_server",
                             ["--ip", "127.0.0.1", "--port", str(wport), "--mutual", "--attester", "sim_sgx_ecdsa",
                              "--trust-sim", "--processes", "2"], self.env, self.dir / "workload.log", port=wport)
        try:
            self.inclavared = Proc("eaa.cli.inclavared",
                                   ["--listen", f"127.0.0.1:{self.port}", "--xfer", f"127.0.0.1:{wport}",
                                    "--attester", "sim_sgx_ecdsa", "--verifier", "sgx_ecdsa_qve", "--mutual",
                                    "--trust-sim", "--processes", "2"], self.env, self.dir / "inclavared.log",
                                   port=self.port)
        except BaseException:
            self.workload.stop()
            raise
        policy = Policy(reference=ReferenceValues.from_mapping({"mrenclave": measure_files(PROGRAM).hex()}))
        tls = TlsConfig(verifier="sgx_ecdsa", trust_simulation=True, sim_dir=self.env["EAA_SIM_DIR"],
                        policy=policy.without_reference(), max_message=4 << 20)
        self.shelter = Shelter(ShelterOptions(tls=tls, policy=policy, timeout=30))

    def attest(self) -> None:
        report = self.shelter.attest(self.addr)
        assert report.ok, (report.error_code, report.error)

    def stop(self) -> None:
        self.inclavared.stop()
        self.workload.stop()


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    f = Flow(tmp_path_factory.mktemp("multiprocess"), "flow")
    yield f
    f.stop()


def test_attestations_succeed_and_every_child_serves(flow: Flow) -> None:
    inclavared_children, workload_children = set(children(flow.inclavared)), set(children(flow.workload))
    assert len(inclavared_children) == 2 and len(workload_children) == 2
    # The kernel spreads connections by their addresses: with a new source port each time, both children
    # of each daemon serve within a few attestations (all 40 on one child: probability 2**-39).
    for _ in range(40):
        flow.attest()
        served = pids_logging(flow.inclavared, "eaa.inclavared", "version=2 result=ok")
        verified = pids_logging(flow.workload, "eaa.workload", "verified: sgx_ecdsa evidence")
        if served == inclavared_children and verified == workload_children:
            break
    assert served == inclavared_children
    assert verified == workload_children


def test_the_shelter_command_succeeds(flow: Flow) -> None:
    reference = flow.dir / "reference.toml"
    r = run("eaa.cli.shelter", ["mrenclave", "--sim", *PROGRAM, "-o", str(reference)], flow.env)
    assert r.returncode == 0, r.stderr
    r = run("eaa.cli.shelter", ["remoteattestation", "--addr", flow.addr, "--trust-sim", "--reference",
                                str(reference)], flow.env)
    assert r.returncode == 0 and "Remote attestation is successful." in r.stdout, r.stderr


def test_a_killed_child_is_replaced(flow: Flow) -> None:
    before = children(flow.inclavared)
    os.kill(before[0], signal.SIGKILL)
    pattern = re.compile(rf"process {before[0]} was killed by SIGKILL; starting another\n.*process (\d+) started "
                         r"in place of the one that exited")
    assert wait_for(lambda: pattern.search(flow.inclavared.output()) is not None), flow.inclavared.output()
    m = pattern.search(flow.inclavared.output())
    assert m is not None
    new = int(m.group(1))
    assert new not in before and running(new) and running(before[1])
    for _ in range(40):  # the replacement serves: the port is the same listener, its queue kept
        flow.attest()
        if new in pids_logging(flow.inclavared, "eaa.inclavared", "version=2 result=ok"):
            break
    assert new in pids_logging(flow.inclavared, "eaa.inclavared", "version=2 result=ok")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_a_signal_stops_every_child(tmp_path: Path, sig: int, code: int) -> None:
    f = Flow(tmp_path, "stop")
    try:
        f.attest()
        pids = children(f.inclavared) + children(f.workload)
        assert all(running(p) for p in pids)
        assert f.inclavared.stop(sig) == code
        assert f.workload.stop(sig) == code
        assert wait_for(lambda: not any(running(p) for p in pids)), [p for p in pids if running(p)]
        for proc in (f.inclavared, f.workload):
            assert "Traceback" not in proc.output()
            assert re.search(rf"\[{proc.p.pid}\]: stopped \(signal {int(sig)}\)", proc.output()), proc.output()
    finally:
        f.stop()


def test_a_repeated_sigterm_still_exits_0(tmp_path: Path) -> None:
    f = Flow(tmp_path, "twice")
    try:
        pids = children(f.inclavared)
        f.inclavared.p.send_signal(signal.SIGTERM)
        f.inclavared.p.send_signal(signal.SIGTERM)
        assert f.inclavared.p.wait(30) == 0, f.inclavared.output()
        assert wait_for(lambda: not any(running(p) for p in pids))
    finally:
        f.stop()


def test_a_killed_parent_takes_its_children(tmp_path: Path) -> None:
    f = Flow(tmp_path, "orphans")
    try:
        pids = children(f.inclavared)
        os.kill(f.inclavared.p.pid, signal.SIGKILL)
        f.inclavared.p.wait(10)
        assert wait_for(lambda: not any(running(p) for p in pids)), [p for p in pids if running(p)]
    finally:
        f.stop()


# ---- configuration ----

def test_unix_socket_listener_needs_one_process(tmp_path: Path) -> None:
    env = sim_env(tmp_path)
    r = run("eaa.cli.inclavared", ["--listen", str(tmp_path / "i.sock"), "--xfer", "127.0.0.1:1", "--attester",
                                   "sim_sgx_ecdsa", "--trust-sim", "--processes", "2"], env)
    assert r.returncode == 2 and "--processes above 1 needs a TCP listener" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "i.sock").exists()


@pytest.mark.parametrize("module, extra", [
    ("eaa.cli.inclavared", ["--listen", "127.0.0.1:0", "--xfer", "127.0.0.1:1"]),
    ("eaa.cli.enclave_tls_server", ["--ip", "127.0.0.1", "--port", "1"]),
])
@pytest.mark.parametrize("value", ["0", "257", "-1"])
def test_processes_out_of_range(tmp_path: Path, module: str, extra: list[str], value: str) -> None:
    r = run(module, [*extra, "--attester", "sim_sgx_ecdsa", "--trust-sim", "--processes", value], sim_env(tmp_path))
    assert r.returncode == 2 and "--processes must be 1..256" in r.stderr, r.stderr


def test_client_mode_takes_no_processes(tmp_path: Path) -> None:
    r = run("eaa.cli.inclavared", ["--connect", "127.0.0.1:1", "--attester", "sim_sgx_ecdsa", "--trust-sim",
                                   "--processes", "2"], sim_env(tmp_path))
    assert r.returncode == 2 and "--processes applies to server mode" in r.stderr, r.stderr


def test_check_processes() -> None:
    tcp, unix = Address("tcp", host="127.0.0.1", port=1), Address("unix", path="/tmp/x.sock")
    assert check_processes(1, unix) == 1 and check_processes(4, tcp) == 4 and check_processes(2, None) == 2
    for n, addr in ((2, unix), (0, tcp), (257, tcp)):
        with pytest.raises(ConfigError):
            check_processes(n, addr)


def test_limits_are_divided_so_the_totals_hold() -> None:
    limits = ServerLimits(max_connections=4096, max_per_source=255, workers=64, backlog=1024, handshake_timeout=5)
    each = limits.divided(2)
    assert (each.max_connections, each.max_per_source, each.workers) == (2048, 128, 32)
    assert (each.backlog, each.handshake_timeout) == (1024, 5)
    assert limits.divided(1) == limits
    tiny = ServerLimits(max_connections=1, max_per_source=1, workers=1).divided(8)
    assert (tiny.max_connections, tiny.max_per_source, tiny.workers) == (1, 1, 1)


def test_listen_shared_binds_one_port_per_child() -> None:
    socks = listen_shared(Address("tcp", host="127.0.0.1", port=0), 128, 3)
    try:
        assert len({id(s) for s in socks}) == 3
        assert len({s.getsockname() for s in socks}) == 1
        port = socks[0].getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        for s in socks:
            s.close()


def test_listen_shared_reports_a_taken_port() -> None:
    from eaa.errors import TransportError

    with socket.create_server(("127.0.0.1", 0)) as taken:  # no SO_REUSEPORT: nobody may join it
        with pytest.raises(TransportError, match="cannot listen on"):
            listen_shared(Address("tcp", host="127.0.0.1", port=taken.getsockname()[1]), 128, 2)


def test_describe_status() -> None:
    assert describe_status(signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_status(3 << 8) == "exited with status 3"


def test_restart_delay_grows_while_children_die_young() -> None:
    wait, delay = restart_delay(0.01, FIRST_RESTART_DELAY)
    assert wait == delay == 2 * FIRST_RESTART_DELAY
    for _ in range(20):
        wait, delay = restart_delay(0.01, delay)
    assert wait == delay == MAX_RESTART_DELAY
    assert restart_delay(60.0, MAX_RESTART_DELAY) == (0.0, FIRST_RESTART_DELAY)  # a long life: replaced at once


FAILING_CHILD = """
import logging, sys
from eaa.cli.common import setup_daemon_logging
from eaa.services.address import Address
from eaa.services.processes import Supervisor, listen_shared
setup_daemon_logging("info", stream=sys.stdout, loggers=("eaa",))
def serve(sock):
    raise RuntimeError("cannot serve")
socks = listen_shared(Address("tcp", host="127.0.0.1", port=0), 128, 2)
sys.exit(Supervisor(socks, serve, logging.getLogger("eaa.test")).run())
"""


def test_a_failing_child_is_reported_and_replaced_and_the_parent_still_stops(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    with open(log, "wb") as out:
        p = subprocess.Popen([sys.executable, "-c", FAILING_CHILD], stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            assert wait_for(lambda: log.read_text().count("exited with status 70; starting another") >= 4), \
                log.read_text()
            p.send_signal(signal.SIGTERM)
            assert p.wait(30) == 0
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    text = log.read_text()
    assert "failed: RuntimeError: cannot serve" in text and "Traceback" not in text
    assert "started in place of the one that exited" in text and "stopped (signal 15)" in text
