"""eaa-pccs end to end: a verifier fetching through a running eaa-pccs reaches the same results as with
collateral files, LAZY from a fake upstream serving the vectors' PCS files and OFFLINE after an import;
cache hits never reach the upstream; an upstream outage and corrupt upstream data are handled."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from eaa.collateral.fetch import fetch_collateral_for_quote
from eaa.services.pccs import Mode
from eaa.services.pccs.records import TCB, parse_bundle, records_from_collateral
from eaa.verify.dcap import QuoteVerifier
from test_pccs_support import (
    client_for,
    error_json,
    fake_upstream,
    intel_routes,
    make_service,
    outcome,
    running,
    vector_case,
)

VECTORS = [
    "dcap-qvl/sgx_v3",
    "dcap-qvl/tdx_v4",
    "go-tdx-guest/tdx_v4_spr_e4",
    "intel-qvl-sample/sgx_v3_synthetic_test_root",  # certification data type 1 (/pckcert), TCB info v2 (API v3)
]


def _verify(case, coll):  # type: ignore[no-untyped-def]
    v = QuoteVerifier(case.anchors, check_crl=case.check_crl, cache_size=0)
    return outcome(lambda: v.verify(case.quote, coll, at=case.verify_at))


def _expected(case):  # type: ignore[no-untyped-def]
    coll = case.collateral
    if case.pck_leaf:  # the files form of a type-1 quote supplies the PCK chain next to the collateral
        from dataclasses import replace

        coll = replace(coll, pck_certificate_chain=case.pck_leaf + case.pck_issuer_chain)
    return _verify(case, coll)


@pytest.mark.parametrize("vid", VECTORS)
def test_lazy_then_offline_match_collateral_files(vid: str, tmp_path: Path) -> None:
    case = vector_case(vid)
    expected = _expected(case)
    assert expected.get("status") or expected.get("error")
    clock = lambda: float(case.verify_at)  # noqa: E731
    with fake_upstream(intel_routes(case)) as up:
        svc = make_service(str(tmp_path / "lazy.sqlite3"), mode=Mode.LAZY, upstream_url=up.url,
                           anchors=case.anchors, clock=clock)
        with running(svc) as srv:
            got = _verify(case, fetch_collateral_for_quote(case.quote, client_for(srv.url, case)))
            assert got == expected
            filled = up.total
            assert filled > 0
            # a fresh client (empty client cache): every answer comes from eaa-pccs's store
            again = _verify(case, fetch_collateral_for_quote(case.quote, client_for(srv.url, case)))
            assert again == expected
            assert up.total == filled, f"cache hits reached the upstream: {dict(up.hits)}"
            bundle = svc.export_records()
    assert {r.kind for r in bundle} >= {"tcb", "identity", "pckcrl", "rootcacrl"}

    # OFFLINE, after importing what the LAZY instance exported: no upstream at all
    off = make_service(str(tmp_path / "offline.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors, clock=clock)
    assert off.import_records(bundle) == len(bundle)
    with running(off) as srv:
        assert _verify(case, fetch_collateral_for_quote(case.quote, client_for(srv.url, case))) == expected


@pytest.mark.parametrize("vid", ["dcap-qvl/sgx_v3", "dcap-qvl/tdx_v4"])
def test_offline_import_of_collateral_files(vid: str, tmp_path: Path) -> None:
    case = vector_case(vid)
    off = make_service(str(tmp_path / "o.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors,
                       clock=lambda: float(case.verify_at))
    off.import_records(records_from_collateral(case.collateral, now=case.verify_at))
    with running(off) as srv:
        assert _verify(case, fetch_collateral_for_quote(case.quote, client_for(srv.url, case))) == _expected(case)
        # OFFLINE never guesses: an FMSPC it was not given is a 404 naming the mode
        r = httpx.get(f"{srv.url}/sgx/certification/v4/tcb", params={"fmspc": "00112233AABB"})
        assert r.status_code == 404 and "OFFLINE" in error_json(r)["message"]


def test_upstream_down_serves_cached_and_504_for_uncached(tmp_path: Path) -> None:
    """An unreachable upstream: what is cached is served; a miss gets Intel's PCS_ACCESS_FAILURE (504,
    pcs_client.js), as text, with eaa's reason in headers."""
    case = vector_case("dcap-qvl/sgx_v3")
    up_ctx = fake_upstream(intel_routes(case))
    up = up_ctx.__enter__()
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url, anchors=case.anchors,
                       clock=lambda: float(case.verify_at))
    with running(svc) as srv:
        fetch_collateral_for_quote(case.quote, client_for(srv.url, case))
        up_ctx.__exit__(None, None, None)  # the upstream goes away
        coll = fetch_collateral_for_quote(case.quote, client_for(srv.url, case))
        assert _verify(case, coll) == _expected(case)
        r = httpx.get(f"{srv.url}/sgx/certification/v4/tcb", params={"fmspc": "00906ED50000"})
        assert r.status_code == 504
        err = error_json(r)
        assert err["code"] == "UPSTREAM_UNAVAILABLE"
        assert "not cached" in err["message"] and "unavailable" in err["message"]
        assert r.headers["content-type"] == "text/html; charset=utf-8"


def test_stale_records_are_refreshed_but_served_while_upstream_is_down(tmp_path: Path) -> None:
    case = vector_case("dcap-qvl/tdx_v4")
    now = [float(case.verify_at)]
    with fake_upstream(intel_routes(case)) as up:
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url,
                           anchors=case.anchors, clock=lambda: now[0], min_refresh=60)
        with running(svc) as srv:
            url = f"{srv.url}/tdx/certification/v4/tcb"
            assert httpx.get(url, params={"fmspc": case.fmspc}).headers["eaa-cache-status"] == "miss"
            assert httpx.get(url, params={"fmspc": case.fmspc}).headers["eaa-cache-status"] == "hit"
            assert up.hits["/tdx/certification/v4/tcb"] == 1
            now[0] += 90 * 86400  # far past nextUpdate: LAZY asks the upstream again
            assert httpx.get(url, params={"fmspc": case.fmspc}).headers["eaa-cache-status"] == "miss"
            assert up.hits["/tdx/certification/v4/tcb"] == 2
            now[0] += 3600
            up.fail_status = 503
            r = httpx.get(url, params={"fmspc": case.fmspc})
            assert r.status_code == 200 and r.headers["eaa-cache-status"] == "stale"


@pytest.mark.parametrize("path", ["/sgx/certification/v4/tcb", "/sgx/certification/v4/qe/identity",
                                  "/sgx/certification/v4/pckcrl", "/sgx/certification/v4/rootcacrl"])
def test_corrupt_upstream_data_is_neither_cached_nor_served(path: str, tmp_path: Path) -> None:
    """Data that does not verify is never stored; the client gets Intel's NO_CACHE_DATA (404, what Intel's
    commonCacheLogic.js answers for any upstream answer it cannot use), eaa's code says why."""
    case = vector_case("dcap-qvl/sgx_v3")
    params = {"/sgx/certification/v4/tcb": {"fmspc": case.fmspc},
              "/sgx/certification/v4/pckcrl": {"ca": "processor", "encoding": "der"}}.get(path, {})
    with fake_upstream(intel_routes(case)) as up:
        up.corrupt.add(path)
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url,
                           anchors=case.anchors, clock=lambda: float(case.verify_at))
        with running(svc) as srv:
            r = httpx.get(srv.url + path, params=params)
            assert r.status_code == 404, r.text
            assert error_json(r)["code"] == "UPSTREAM_BAD_DATA"
            assert svc.store.count() == 0
            up.corrupt.clear()  # the upstream recovers: the next request fetches again and is served
            r = httpx.get(srv.url + path, params=params)
            assert r.status_code == 200 and r.headers["eaa-cache-status"] == "miss"
            assert up.hits[path] == 2


def test_upstream_chain_to_an_untrusted_root_is_rejected(tmp_path: Path) -> None:
    """The Intel QVL sample is signed by a test root: without that root as an anchor it is rejected."""
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    with fake_upstream(intel_routes(case)) as up:
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url,
                           clock=lambda: float(case.verify_at))  # Intel's root only
        with running(svc) as srv:
            r = httpx.get(f"{srv.url}/sgx/certification/v3/tcb", params={"fmspc": case.fmspc})
            assert r.status_code == 404 and error_json(r)["code"] == "UPSTREAM_BAD_DATA"
            assert "trusted root" in error_json(r)["message"]
            assert svc.store.count() == 0


def test_intel_headers_and_encodings(tmp_path: Path) -> None:
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    dcap = vector_case("dcap-qvl/sgx_v3")
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=(*case.anchors, *dcap.anchors),
                       clock=lambda: float(case.verify_at))
    svc.import_records(records_from_collateral(case.collateral, now=case.verify_at))
    with running(svc) as srv:
        v3 = f"{srv.url}/sgx/certification/v3"
        r = httpx.get(f"{v3}/tcb", params={"fmspc": case.fmspc.lower()})
        assert r.status_code == 200
        assert "SGX-TCB-Info-Issuer-Chain" in r.headers and "TCB-Info-Issuer-Chain" not in r.headers
        assert r.headers["SGX-TCB-Info-Issuer-Chain"].startswith("-----BEGIN%20CERTIFICATE-----%0A")
        assert json.loads(r.content)["tcbInfo"]["version"] == 2
        assert httpx.get(f"{srv.url}/sgx/certification/v4/tcb", params={"fmspc": case.fmspc}).status_code == 404
        for api in (3, 4):  # hex on both versions, as Intel's PCCS ("to keep backward compatibility")
            r = httpx.get(f"{srv.url}/sgx/certification/v{api}/rootcacrl")
            assert r.status_code == 200 and bytes.fromhex(r.text) == case.collateral.root_ca_crl
            # Intel sets application/x-pem-file, then Express's res.send(string) adds the charset
            assert r.headers["content-type"] == "application/x-pem-file; charset=utf-8"
            assert len(r.headers["request-id"]) == 32  # Intel's addRequestId: a UUID without dashes
        r = httpx.get(f"{v3}/rootcacrl", headers={"Request-ID": "abc-123"})
        assert r.headers["request-id"] == "abc-123"
        r = httpx.get(f"{v3}/rootcacrl", headers={"Request-ID": "bad id;x=1"})
        assert "bad" not in r.headers["request-id"] and len(r.headers["request-id"]) == 32
        r = httpx.get(f"{v3}/pckcrl", params={"ca": "PROCESSOR"})
        assert bytes.fromhex(r.text) == case.collateral.pck_crl  # default: hex, as Intel's PCCS
        assert "SGX-PCK-CRL-Issuer-Chain" in r.headers
        r = httpx.get(f"{v3}/pckcrl", params={"ca": "processor", "encoding": "der"})
        assert r.content == case.collateral.pck_crl and r.headers["content-type"] == "application/pkix-crl"
        r = httpx.get(f"{v3}/qe/identity")
        assert "SGX-Enclave-Identity-Issuer-Chain" in r.headers
    # v4 TCB info header name
    svc = make_service(str(tmp_path / "db2.sqlite3"), mode=Mode.OFFLINE, anchors=dcap.anchors)
    svc.import_records(records_from_collateral(dcap.collateral, now=dcap.verify_at))
    with running(svc) as srv:
        r = httpx.get(f"{srv.url}/sgx/certification/v4/tcb", params={"fmspc": dcap.fmspc})
        assert "TCB-Info-Issuer-Chain" in r.headers and "SGX-TCB-Info-Issuer-Chain" not in r.headers


def test_pckcert_headers_and_selection(tmp_path: Path) -> None:
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    with fake_upstream(intel_routes(case, versions=(3, 4))) as up:
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url,
                           anchors=case.anchors, clock=lambda: float(case.verify_at))
        with running(svc) as srv:
            q = {"qeid": "00" * 16, "cpusvn": "05" * 16, "pcesvn": "0500", "pceid": "0000"}
            r = httpx.get(f"{srv.url}/sgx/certification/v4/pckcert", params=q)
            assert r.status_code == 200, r.text
            assert r.headers["SGX-TCBm"] == "05" * 16 + "0500"
            assert r.headers["SGX-FMSPC"] == case.fmspc
            assert r.headers["SGX-PCK-Certificate-CA-Type"] in ("PROCESSOR", "PLATFORM")
            assert r.headers["SGX-PCK-Certificate-Issuer-Chain"].startswith("-----BEGIN%20CERTIFICATE")
            assert r.text.startswith("-----BEGIN CERTIFICATE-----")
            # a higher raw TCB of the same platform is served the cached certificate (PCK cert selection)
            hits = up.total
            r = httpx.get(f"{srv.url}/sgx/certification/v4/pckcert", params={**q, "cpusvn": "07" * 16})
            assert r.status_code == 200 and r.headers["SGX-TCBm"] == "05" * 16 + "0500"
            assert up.total == hits
            # a lower one is not covered by it: fetched from the upstream
            r = httpx.get(f"{srv.url}/sgx/certification/v4/pckcert", params={**q, "cpusvn": "04" * 16})
            assert r.status_code == 200 and up.total == hits + 1


BAD_REQUESTS = [
    ("/sgx/certification/v4/tcb", {}),
    ("/sgx/certification/v4/tcb", {"fmspc": "123"}),
    ("/sgx/certification/v4/tcb", {"fmspc": "ZZZZZZZZZZZZ"}),
    ("/sgx/certification/v4/tcb", {"fmspc": "00906ED50000", "update": "sometimes"}),
    ("/tdx/certification/v4/qe/identity", {"update": "x"}),
    ("/sgx/certification/v4/pckcrl", {}),
    ("/sgx/certification/v4/pckcrl", {"ca": "root"}),
    ("/sgx/certification/v4/pckcrl", {"ca": "processor", "encoding": "base64"}),
    ("/sgx/certification/v3/pckcert", {"qeid": "00", "cpusvn": "00", "pcesvn": "0000", "pceid": "0000"}),
    ("/sgx/certification/v4/pckcert", {"qeid": "0" * 300, "cpusvn": "0" * 32, "pcesvn": "0000", "pceid": "0000"}),
    ("/sgx/certification/v4/pckcert", {"qeid": "00", "cpusvn": "0" * 32, "pcesvn": "0000", "pceid": "0000",
                                       "encrypted_ppid": "00"}),
    ("/vcek/v1/Rome/" + "00" * 64, {"blSPL": "1", "teeSPL": "0", "snpSPL": "1", "ucodeSPL": "1"}),
    ("/vcek/v1/Milan/00", {"blSPL": "1", "teeSPL": "0", "snpSPL": "1", "ucodeSPL": "1"}),
    ("/vcek/v1/Milan/" + "00" * 64, {"blSPL": "1", "teeSPL": "0", "snpSPL": "1"}),
    ("/vcek/v1/Milan/" + "00" * 64, {"blSPL": "256", "teeSPL": "0", "snpSPL": "1", "ucodeSPL": "1"}),
    ("/vcek/v1/Milan/" + "00" * 64, {"blSPL": "-1", "teeSPL": "0", "snpSPL": "1", "ucodeSPL": "1"}),
    ("/vcek/v1/Turin/" + "00" * 8, {"blSPL": "1", "teeSPL": "0", "snpSPL": "1", "ucodeSPL": "1"}),
    ("/vlek/v1/Rome/cert_chain", {}),
]


def test_bad_parameters_are_400_with_a_message(tmp_path: Path) -> None:
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE)
    with running(svc) as srv:
        for path, params in BAD_REQUESTS:
            r = httpx.get(srv.url + path, params=params)
            assert r.status_code == 400, (path, params, r.status_code, r.text)
            err = error_json(r)
            assert err["code"] == "BAD_REQUEST" and err["message"], (path, params)


def test_admin_import_export_token(tmp_path: Path) -> None:
    case = vector_case("dcap-qvl/sgx_v3")
    doc = case.collateral.to_qvl_json()
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors)
    with running(svc, admin_token="s3cret-token") as srv:
        url = f"{srv.url}/eaa/v1/import"
        assert httpx.post(url, content=doc).status_code == 401
        assert httpx.post(url, content=doc, headers={"admin-token": "wrong"}).status_code == 401
        r = httpx.post(url, content=doc, headers={"admin-token": "s3cret-token"})
        assert r.status_code == 200 and r.json()["imported"] == 4
        bad = doc.replace(case.collateral.tcb_info_signature.hex(), "00" * 64)
        r = httpx.post(url, content=bad, headers={"admin-token": "s3cret-token"})
        assert r.status_code == 460 and "rejected" in error_json(r)["message"]  # Intel's integrity error
        assert httpx.post(url, content=b"{not json", headers={"admin-token": "s3cret-token"}).status_code == 400
        r = httpx.get(f"{srv.url}/eaa/v1/export", headers={"admin-token": "s3cret-token"})
        assert r.status_code == 200 and len(parse_bundle(r.content)) == 4
        assert httpx.get(f"{srv.url}/eaa/v1/export").status_code == 401
    svc = make_service(str(tmp_path / "db2.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors)
    with running(svc) as srv:  # no admin token configured: the admin API is off
        r = httpx.post(f"{srv.url}/eaa/v1/import", content=doc, headers={"admin-token": "x"})
        assert r.status_code == 403


def test_healthz_metrics_openapi(tmp_path: Path) -> None:
    case = vector_case("dcap-qvl/sgx_v3")
    with fake_upstream(intel_routes(case)) as up:
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url,
                           anchors=case.anchors, clock=lambda: float(case.verify_at))
        with running(svc) as srv:
            for _ in range(2):
                httpx.get(f"{srv.url}/sgx/certification/v4/tcb", params={"fmspc": case.fmspc})
            h = httpx.get(f"{srv.url}/healthz").json()
            assert h == {"status": "ok", "mode": "lazy", "records": 1, "upstream": {"intel": "closed"}}
            m = httpx.get(f"{srv.url}/metrics").text
            assert 'eaa_pccs_cache_lookups_total{kind="tcb",result="hit"} 1.0' in m
            assert 'eaa_pccs_cache_lookups_total{kind="tcb",result="miss"} 1.0' in m
            assert 'eaa_pccs_upstream_fetches_total{kind="tcb",outcome="ok"} 1.0' in m
            assert 'route="/sgx/certification/v4/tcb",status="200"' in m
            assert "eaa_pccs_records 1.0" in m
            spec = httpx.get(f"{srv.url}/openapi.json").json()
            for p in ("/sgx/certification/v3/tcb", "/sgx/certification/v4/pckcert", "/tdx/certification/v4/tcb",
                      "/tdx/certification/v4/qe/identity", "/vcek/v1/{product}/{hwid}", "/healthz", "/metrics"):
                assert p in spec["paths"], p
    assert svc.store.count() == 1 and list(svc.store.scan(TCB))[0].source == "upstream"
