"""The EAA flow under load: slowloris connections held open, and many real attestations at once.

Real processes on 127.0.0.1 (enclave-tls-server and inclavared with the seed's flags, simulated
attesters). Success is asserted, never a time: every attestation must succeed within its normal
timeout, with no retry. ``make reliability`` prints the times (bench/reliability.py).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import eaa
from _procs import Proc, free_port, run, sim_env
from eaa.policy import Policy, ReferenceValues
from eaa.services.server import raise_fd_limit
from eaa.services.shelter import Shelter, ShelterOptions
from eaa.sim import measure_files
from eaa.tls import TlsConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from reliability import Slowloris  # noqa: E402

IDLE, RECONNECTING, RUNS = 500, 500, 20


PROGRAM = [str(Path(eaa.__file__).parent / rel) for rel in ("services/workload.py", "cli/enclave_tls_server.py")]


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], int, Path]]:
    raise_fd_limit(IDLE + RECONNECTING + 2048)  # this process holds the attacker's sockets; children inherit
    d = tmp_path_factory.mktemp("reliability")
    env = sim_env(d)
    wport, iport = free_port(), free_port()
    workload = Proc("eaa.cli.enclave_tls_server", ["--ip", "127.0.0.1", "--port", str(wport), "--mutual",
                                                   "--attester", "sim_sgx_ecdsa", "--trust-sim"],
                    env, d / "workload.log", port=wport)
    try:
        inclavared = Proc("eaa.cli.inclavared", ["--listen", f"127.0.0.1:{iport}", "--xfer", f"127.0.0.1:{wport}",
                                                 "--attester", "sim_sgx_ecdsa", "--verifier", "sgx_ecdsa_qve",
                                                 "--mutual", "--trust-sim"], env, d / "inclavared.log", port=iport)
        try:
            reference = d / "reference.toml"  # the workload measures its own program files
            r = run("eaa.cli.shelter", ["mrenclave", "--sim", *PROGRAM, "-o", str(reference)], env)
            assert r.returncode == 0, r.stderr
            yield env, iport, reference
            assert inclavared.alive() and workload.alive()
        finally:
            inclavared.stop()
    finally:
        workload.stop()


def test_real_attestations_succeed_while_slowloris_holds_a_thousand_connections(flow):
    env, port, reference = flow
    addr = f"tcp://127.0.0.1:{port}"
    attacker = Slowloris("127.0.0.1", port, idle=IDLE, reconnecting=RECONNECTING,
                         sources=tuple(f"127.0.0.{i}" for i in range(2, 10))).start()
    try:
        assert attacker.wait_open() == IDLE + RECONNECTING
        failures = []
        for _ in range(RUNS):
            r = run("eaa.cli.shelter", ["remoteattestation", "--addr", addr, "--trust-sim", "--reference",
                                        str(reference)], env)
            if r.returncode != 0 or "Remote attestation is successful." not in r.stdout:
                failures.append(r.stderr.strip()[-300:])
        assert failures == []
        # The attack was on all along: the connections were held, the trickling ones reconnected.
        assert attacker.count("idle") + attacker.count("slow") > (IDLE + RECONNECTING) // 2
        assert attacker.stats.opened > IDLE + RECONNECTING
    finally:
        attacker.stop()


def test_64_concurrent_attestations_through_the_real_flow(flow):
    env, port, _ = flow
    policy = Policy(reference=ReferenceValues.from_mapping({"mrenclave": measure_files(PROGRAM).hex()}))
    tls = TlsConfig(verifier="sgx_ecdsa", trust_simulation=True, sim_dir=env["EAA_SIM_DIR"],
                    policy=policy.without_reference(), max_message=4 << 20)
    shelter = Shelter(ShelterOptions(tls=tls, policy=policy, timeout=30))
    start = threading.Barrier(64)
    reports: list = [None] * 64

    def one(i: int) -> None:
        start.wait(60)
        reports[i] = shelter.attest(f"tcp://127.0.0.1:{port}")  # once: no retry

    threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    failed = [(r.error_code, r.error) for r in reports if r is None or not r.ok]
    assert failed == []
