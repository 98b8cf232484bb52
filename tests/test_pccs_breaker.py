"""An unreachable upstream: the circuit breaker fails fast after repeated failures, probes again after
its cooldown, logs each state change once, and /healthz reports it while cached data is still served.
Time is a pinned clock throughout."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from eaa.collateral.errors import CollateralNotFound, UpstreamUnavailable
from eaa.collateral.pcs import PcsClient
from eaa.services.pccs import Mode, PccsService, open_store
from eaa.services.pccs.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from eaa.services.pccs.upstream import Upstream
from test_pccs_support import error_json, fake_upstream, intel_routes, running, vector_case


def test_breaker_states(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    calls = [0]
    b = CircuitBreaker("test", threshold=3, cooldown=30.0, clock=lambda: now[0])

    def down() -> None:
        calls[0] += 1
        raise UpstreamUnavailable("connection refused")

    def up() -> str:
        calls[0] += 1
        return "ok"

    caplog.set_level(logging.INFO, logger="eaa.pccs")
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            b.call(down)
    assert b.state == OPEN and calls[0] == 3
    for _ in range(10):  # fail fast: the upstream is not asked
        with pytest.raises(UpstreamUnavailable, match="circuit open"):
            b.call(up)
    assert calls[0] == 3
    now[0] = 29.9
    with pytest.raises(UpstreamUnavailable):
        b.call(up)
    now[0] = 30.0
    assert b.state == HALF_OPEN
    with pytest.raises(UpstreamUnavailable):  # the probe fails: open again for a full cooldown
        b.call(down)
    assert b.state == OPEN and calls[0] == 4
    now[0] = 45.0
    with pytest.raises(UpstreamUnavailable, match="circuit open"):
        b.call(up)
    now[0] = 60.0
    assert b.call(up) == "ok" and b.state == CLOSED and calls[0] == 5
    with pytest.raises(CollateralNotFound):  # a 404 proves the upstream answers: not a failure
        b.call(lambda: (_ for _ in ()).throw(CollateralNotFound("no")))
    assert b.state == CLOSED
    changes = [r.getMessage() for r in caplog.records if "circuit" in r.getMessage()]
    assert [m.split("circuit ")[1].split(" ")[0] for m in changes] == ["open", "half-open", "open", "half-open",
                                                                       "closed"]


def test_unreachable_upstream_fails_fast_and_healthz_says_degraded(tmp_path: Path) -> None:
    case = vector_case("dcap-qvl/sgx_v3")
    now = [0.0]
    with fake_upstream(intel_routes(case)) as up:
        pcs = PcsClient(up.url, anchors=case.anchors, retries=0, timeout=5, clock=lambda: float(case.verify_at),
                        root_crl_from_dp=False)
        breaker = CircuitBreaker("Intel PCS", threshold=2, cooldown=60.0, clock=lambda: now[0])
        svc = PccsService(open_store(str(tmp_path / "db.sqlite3")), mode=Mode.LAZY,
                          upstream=Upstream(pcs, None, anchors=case.anchors, clock=lambda: float(case.verify_at),
                                            pcs_breaker=breaker),
                          anchors=case.anchors, clock=lambda: float(case.verify_at))
        with running(svc) as srv:
            tcb = f"{srv.url}/sgx/certification/v{case.api}/tcb"
            assert httpx.get(tcb, params={"fmspc": case.fmspc}).status_code == 200  # cached now
            assert httpx.get(f"{srv.url}/healthz").json()["status"] == "ok"
            up.fail_status = 503  # the upstream goes down
            for _ in range(2):  # Intel's answer to an upstream answering 5xx: no cache data (404)
                r = httpx.get(f"{srv.url}/sgx/certification/v{case.api}/qe/identity")
                assert r.status_code == 404 and error_json(r)["code"] == "UPSTREAM_UNAVAILABLE"
            hits = up.total
            for _ in range(5):  # open: uncached requests fail at once without reaching the upstream, still
                # answered as the failure that opened the circuit (an upstream answering 5xx: 404)
                r = httpx.get(f"{srv.url}/sgx/certification/v{case.api}/qe/identity")
                assert r.status_code == 404 and "circuit open" in error_json(r)["message"]
            assert up.total == hits
            h = httpx.get(f"{srv.url}/healthz")
            assert h.status_code == 200 and h.json()["status"] == "degraded"
            assert h.json()["upstream"] == {"intel": "open"}
            assert httpx.get(tcb, params={"fmspc": case.fmspc}).status_code == 200  # the cache is still served
            now[0] = 61.0  # after the cooldown one probe goes through; the upstream is back
            up.fail_status = None
            assert httpx.get(f"{srv.url}/sgx/certification/v{case.api}/qe/identity").status_code == 200
            assert up.total == hits + 1
            assert httpx.get(f"{srv.url}/healthz").json()["status"] == "ok"
