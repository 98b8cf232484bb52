"""eaa-pccs in REQ mode (Intel's "CachingFillMode": "REQ"): collateral is fetched when a platform registers,
and requests are served from the cache only, never reaching the upstream."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from eaa.collateral.fetch import fetch_collateral_for_quote
from eaa.errors import EaaError
from eaa.formats.quote import parse_quote
from eaa.services.pccs import Mode
from eaa.services.pccs.errors import NotFound
from eaa.verify.dcap import QuoteVerifier
from test_pccs_support import (
    client_for,
    error_json,
    fake_upstream,
    intel_routes,
    make_service,
    outcome,
    refresh_counts,
    registered,
    running,
    vector_case,
)

SAMPLE = "intel-qvl-sample/sgx_v3_synthetic_test_root"  # certification data type 1: the PCK comes from /pckcert


def _registration(quote: bytes) -> dict[str, str]:
    """What the platform's PCK ID retrieval would send for the quote's platform (as the client asks it)."""
    q = parse_quote(quote)
    ppid = q.certification_data.ppid_info
    assert ppid is not None
    return {"qe_id": q.header.user_data[:16].hex(), "cpu_svn": ppid.cpu_svn.hex(),
            "pce_svn": ppid.pce_svn.to_bytes(2, "little").hex(), "pce_id": (ppid.pce_id or b"\x00\x00").hex()}


def test_registration_fills_the_cache_and_requests_never_reach_the_upstream(tmp_path: Path) -> None:
    case = vector_case(SAMPLE)
    verifier = QuoteVerifier(case.anchors, check_crl=case.check_crl, cache_size=0)
    with fake_upstream(intel_routes(case, versions=(3, 4))) as up:
        svc = make_service(str(tmp_path / "req.sqlite3"), mode=Mode.REQ, upstream_url=up.url, anchors=case.anchors,
                           clock=lambda: float(case.verify_at))
        with running(svc, admin_token="adm1n") as srv:
            # before registration: nothing is fetched, a miss names the mode
            r = httpx.get(f"{srv.url}/sgx/certification/v3/tcb", params={"fmspc": case.fmspc})
            assert r.status_code == 404 and "REQ mode" in error_json(r)["message"]
            with pytest.raises(EaaError):
                fetch_collateral_for_quote(case.quote, client_for(srv.url, case))
            reg = _registration(case.quote)
            params = {"qeid": reg["qe_id"], "cpusvn": reg["cpu_svn"], "pcesvn": reg["pce_svn"], "pceid": reg["pce_id"]}
            r = httpx.get(f"{srv.url}/sgx/certification/v3/pckcert", params=params)
            assert r.status_code == 461 and error_json(r)["code"] == "PLATFORM_UNKNOWN"  # Intel's status
            assert up.total == 0

            r = httpx.post(f"{srv.url}/sgx/certification/v{case.api}/platforms", json=reg,
                           headers={"user-token": "adm1n"})
            assert registered(r) == "cached"
            fetched = up.total
            assert fetched > 0

            got = outcome(lambda: verifier.verify(case.quote, fetch_collateral_for_quote(
                case.quote, client_for(srv.url, case)), at=case.verify_at))
            assert got.get("status"), got
            assert up.total == fetched, f"a request reached the upstream: {dict(up.hits)}"

            # /refresh works in REQ mode (it has an upstream), and still only refreshes what is cached
            r = httpx.get(f"{srv.url}/sgx/certification/v4/refresh", headers={"admin-token": "adm1n"})
            assert r.status_code == 200 and refresh_counts(r)["failed"] == 0, r.text


def test_registration_reports_collateral_it_could_not_fetch(tmp_path: Path) -> None:
    case = vector_case(SAMPLE)
    routes = intel_routes(case, versions=(3, 4))
    del routes[f"/sgx/certification/v{case.api}/pckcrl"]
    with fake_upstream(routes) as up:
        svc = make_service(str(tmp_path / "req.sqlite3"), mode=Mode.REQ, upstream_url=up.url, anchors=case.anchors,
                           clock=lambda: float(case.verify_at))
        answer = svc.register_platform(case.api, _registration(case.quote))
    assert answer.state == "cached"
    missing = answer.missing
    assert isinstance(missing, list) and len(missing) == 1 and missing[0].startswith("PCK CRL")
    # Intel's REQ mode fails the registration when the collateral cannot be fetched (platformsRegService.js)
    assert isinstance(answer.failure, NotFound)


def test_registration_with_the_upstream_down_is_pending(tmp_path: Path) -> None:
    case = vector_case(SAMPLE)
    with fake_upstream(intel_routes(case, versions=(3, 4))) as up:
        up.fail_status = 503
        svc = make_service(str(tmp_path / "req.sqlite3"), mode=Mode.REQ, upstream_url=up.url, anchors=case.anchors,
                           clock=lambda: float(case.verify_at))
        answer = svc.register_platform(case.api, _registration(case.quote))
        assert answer.state == "pending" and "unavailable" in answer.error
        assert answer.failure is not None and answer.failure.intel[0] == 404  # upstream 5xx: Intel's 404
        up.fail_status = None  # registering again retries
        again = svc.register_platform(case.api, _registration(case.quote))
        assert again.state == "cached" and again.failure is None


def test_serve_builds_a_req_service_with_an_upstream(tmp_path: Path) -> None:
    from eaa.cli.pccs_server import build_parser
    from eaa.services.pccs.setup import ServiceOptions, build_service

    args = build_parser().parse_args(["serve", "--mode", "req", "--refresh-every", "1d", "--insecure-http"])
    assert args.mode == "req" and args.refresh_every == "1d"
    svc = build_service(ServiceOptions(db=str(tmp_path / "s.sqlite3"), mode=Mode(args.mode),
                                       upstream="http://127.0.0.1:9", kds_upstream=None))
    try:
        assert svc.mode is Mode.REQ and svc.upstream is not None
        with pytest.raises(NotFound, match="REQ mode"):  # a miss is not fetched (port 9 would refuse anyway)
            svc.root_ca_crl(4)
    finally:
        svc.store.close()
