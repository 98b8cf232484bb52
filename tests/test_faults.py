"""Fault injection on the real EAA flow (processes on 127.0.0.1; bench/faults.py runs the cases).

A PCCS that is down, slow (beyond the collateral client's timeout) or serving collateral with a broken
signature: shelter fails with one typed line, whether its own fetch fails or the daemons' fetches do;
the daemons keep serving and succeed once the PCCS is back, and from their caches when it fails again.
The workload SIGKILLed inside its handshake with inclavared: shelter gets a typed error and inclavared
serves the next request once the workload is back. SIGTERM while 16 shelters are served: exit 0, no
traceback, every shelter answered. A long run: no descriptor growth, bounded memory growth. Success and
error codes are asserted, never a time; ``make reliability`` writes the times to docs/reliability.md.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from faults import (  # noqa: E402
    FAULTS,
    Flow,
    PccsSetup,
    base_env,
    corrupt_body,
    long_run,
    pccs_fault_case,
    pccs_setup,
    sigterm_under_load,
    workload_killed_mid_handshake,
)

LONG_RUN, LONG_RUN_WARMUP = 300, 300
RSS_GROWTH_BOUND_KIB = 32 << 10  # generous: the long run measures about 2 MiB after its warm-up

# what shelter's own fetch reports, per fault
OWN_CODE = {"down": "UPSTREAM_UNAVAILABLE", "slow": "UPSTREAM_UNAVAILABLE", "corrupt": "COLLATERAL_CORRUPT"}
DETAIL = {"down": "Connection refused", "slow": "timed out", "corrupt": "signature does not verify"}


@pytest.fixture(scope="module")
def pccs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PccsSetup]:
    setup = pccs_setup(tmp_path_factory.mktemp("faults-pccs"))
    yield setup
    setup.stop()


@pytest.mark.parametrize("fault", FAULTS)
def test_pccs_fault_is_one_typed_line_and_daemons_keep_serving(pccs: PccsSetup, fault: str,
                                                               tmp_path: Path) -> None:
    case = pccs_fault_case(pccs, tmp_path, fault)
    own, relayed, recovered, cached = case.steps
    for step in case.steps:
        assert not step.result.traceback, step
    # shelter's own check of inclavared's certificate needs collateral it cannot get
    assert own.result.rc == 1 and own.result.code == OWN_CODE[fault], own
    assert len(own.result.lines) == 1 and DETAIL[fault] in own.result.lines[0]
    # shelter has it cached; the daemons' checks of each other fail: inclavared relays their typed error
    assert relayed.result.rc == 1 and relayed.result.code == "PROTOCOL_ERROR", relayed
    assert len(relayed.result.lines) == 1
    assert f"[{OWN_CODE[fault]}]" in relayed.result.lines[0] and DETAIL[fault] in relayed.result.lines[0]
    # the same daemons serve once the PCCS is back, and then from their caches while it fails again
    assert recovered.result.ok, recovered
    assert cached.result.ok, cached
    assert case.daemons_alive and not case.daemon_tracebacks
    assert case.met


def test_the_corrupt_pccs_changes_a_signature_and_nothing_else() -> None:
    tcb = b'{"tcbInfo":{"id":"SGX"},"signature":"00aa11bb22cc"}'
    bad = corrupt_body(tcb)
    diff = [i for i, (a, b) in enumerate(zip(tcb, bad, strict=True)) if a != b]
    assert len(bad) == len(tcb) and len(diff) == 1 and diff[0] > tcb.index(b'"signature":"') + 12
    der = bytes(range(40))
    assert corrupt_body(der)[:-1] == der[:-1] and corrupt_body(der)[-1] != der[-1]


def test_workload_killed_mid_handshake_then_back(pccs: PccsSetup, tmp_path: Path) -> None:
    case = workload_killed_mid_handshake(pccs, tmp_path)
    assert case.killed_mid_handshake  # a verifier inside the daemons' handshake was waiting for collateral
    during, after = case.during, case.after_restart
    assert during is not None and during.rc == 1 and not during.traceback, during
    assert len(during.lines) == 1 and during.code == "PROTOCOL_ERROR"
    assert "TLS_HANDSHAKE_FAILED" in during.lines[0] or "TRANSPORT_ERROR" in during.lines[0], during
    assert after is not None and after.ok, after
    assert case.inclavared_alive and not case.daemon_tracebacks
    assert case.met


@pytest.fixture(scope="module")
def sim_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    work = tmp_path_factory.mktemp("faults-sim")
    return work, base_env(work)


def test_sigterm_under_load_exits_0_and_answers_every_shelter(sim_env: tuple[Path, dict[str, str]]) -> None:
    work, env = sim_env
    case = sigterm_under_load(work, env, shelters=16)
    assert case.in_flight > 0  # the signal came while connections were open
    assert case.exit_code == 0 and not case.daemon_traceback
    assert sum(case.shelter_outcomes.values()) == 16
    assert case.untyped == 0, case.shelter_outcomes  # each succeeded or said why with a code
    assert case.met


def test_long_run_no_descriptor_growth_and_bounded_memory(sim_env: tuple[Path, dict[str, str]]) -> None:
    work, env = sim_env
    flow = Flow(work, env, ["--trust-sim"], name="long")
    try:
        run = long_run(flow, LONG_RUN, warmup=LONG_RUN_WARMUP)
        assert flow.alive()
    finally:
        flow.stop()
    assert run.failures == 0, run.first_failure
    assert run.fds_after <= run.fds_before, run.samples
    assert run.rss_after_kib - run.rss_before_kib < RSS_GROWTH_BOUND_KIB, run.samples
