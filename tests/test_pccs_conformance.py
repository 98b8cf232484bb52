"""eaa-pccs against the real clients of Intel's PCCS API: dcap-qvl's own ``get_collateral``, Intel's
PccsAdminTool request shapes (get, put, refresh, as its pccsadmin.py sends them), QCNL's /crl and
appraisal policies, and every status code Intel's PCCS answers (pccs_status_code.js).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dcap_qvl
import httpx
import pytest

from _sim import T0, plat  # noqa: F401 - plat is a fixture
from eaa.collateral.bundle import Collateral
from eaa.collateral.errors import CollateralNotFound, UpstreamUnavailable
from eaa.collateral.fetch import fetch_collateral_for_quote
from eaa.collateral.pcs import PcsClient
from eaa.collateral.qcnl import parse_qcnl
from eaa.errors import EaaError
from eaa.services.pccs import Mode, PccsServer, create_app
from eaa.services.pccs.auth import RateLimiter, Tokens
from eaa.services.pccs.records import PCK_CRL, records_from_collateral
from eaa.sim import SimPlatform
from eaa.verify.dcap import QuoteVerifier
from test_pccs_platform_collateral import document
from test_pccs_support import (
    EXPRESS_TEXT,
    INTEL_BODIES,
    client_for,
    error_json,
    fake_upstream,
    intel_routes,
    make_service,
    running,
    vector_case,
)

ADMIN = {"admin-token": "adm1n"}
PCCSADMIN = {"user-agent": "pccsadmin/0.1", "admin-token": "adm1n"}  # pccsadmin.py's HEADERS


def dcap_qvl_collateral(url: str, quote: bytes) -> Any:
    """dcap-qvl's ``get_collateral(pccs_url, raw_quote)`` (async in the pinned 0.7.0)."""
    async def go() -> Any:
        return await dcap_qvl.get_collateral(url, quote)

    return asyncio.run(go())


@pytest.mark.parametrize("vid", ["dcap-qvl/sgx_v3", "dcap-qvl/tdx_v4"])
def test_dcap_qvl_get_collateral_from_eaa_pccs(vid: str, tmp_path: Path) -> None:
    """dcap-qvl fetches everything (hex root CA CRL included) from eaa-pccs; eaa and dcap-qvl both verify."""
    case = vector_case(vid)
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors,
                       clock=lambda: float(case.verify_at))
    svc.import_records(records_from_collateral(case.collateral, now=case.verify_at))
    with running(svc) as srv:
        got = dcap_qvl_collateral(srv.url, case.quote)
    assert got.root_ca_crl == case.collateral.root_ca_crl and got.pck_crl == case.collateral.pck_crl
    assert got.tcb_info == case.collateral.tcb_info and got.qe_identity == case.collateral.qe_identity
    ours = QuoteVerifier(case.anchors, check_crl=True, cache_size=0).verify(
        case.quote, Collateral.from_qvl_json(got.to_json()), at=case.verify_at)
    theirs = dcap_qvl.verify(case.quote, got, case.verify_at)
    assert ours.status == theirs.status == case.vector["expected"]["status"]


@pytest.mark.parametrize("tee", ["sgx", "tdx"])
def test_dcap_qvl_get_collateral_for_simulated_quotes(tee: str, plat: SimPlatform,  # noqa: F811
                                                      tmp_path: Path) -> None:
    """The simulated platform's collateral, imported once, reaches dcap-qvl through eaa-pccs like Intel's."""
    at = T0 + timedelta(hours=1)
    quote = plat.make_quote(tee, b"\x07" * 64)
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=(plat.anchor(),),
                       clock=lambda: at.timestamp())
    svc.import_records(records_from_collateral(plat.collateral(tee), now=at.timestamp()))
    with running(svc) as srv:
        got = dcap_qvl_collateral(srv.url, quote)
    result = QuoteVerifier((plat.anchor(),), check_crl=True, cache_size=0).verify(
        quote, Collateral.from_qvl_json(got.to_json()), at=at)
    assert result.status == plat.expected_status and result.to_dict()["simulated"] is True


def test_seed_shaped_v3_qcnl_gets_collateral_imported_as_v4(plat: SimPlatform, tmp_path: Path) -> None:  # noqa: F811
    """A QCNL file naming /sgx/certification/v3/ (as the seed's) against simulated collateral imported once
    (TCB info version 3, an API v4 document): served on v3 too, verified end to end."""
    at = T0 + timedelta(hours=1)
    quote = plat.make_quote("sgx", b"\x01" * 64)
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=(plat.anchor(),),
                       clock=lambda: at.timestamp())
    svc.import_records(records_from_collateral(plat.collateral("sgx"), now=at.timestamp()))
    with running(svc) as srv:
        conf = parse_qcnl(f"PCCS_URL={srv.url}/sgx/certification/v3/\nUSE_SECURE_CERT=FALSE\n")
        assert conf is not None
        with PcsClient.from_config(conf, anchors=(plat.anchor(),), cache_dir=None, root_crl_from_dp=False,
                                   clock=lambda: at.timestamp()) as client:
            assert client.api_versions == (3,)
            coll = fetch_collateral_for_quote(quote, client)
        r = httpx.get(f"{srv.url}/sgx/certification/v3/tcb", params={"fmspc": json.loads(coll.tcb_info)["fmspc"]})
        assert r.status_code == 200 and "SGX-TCB-Info-Issuer-Chain" in r.headers
    result = QuoteVerifier((plat.anchor(),), check_crl=True, cache_size=0).verify(quote, coll, at=at)
    assert result.status == plat.expected_status


@contextlib.contextmanager
def _lazy_pccs(tmp_path: Path, case: Any) -> Iterator[tuple[Any, Any]]:
    """A LAZY eaa-pccs (admin token "adm1n") in front of a fake Intel PCS serving ``case`` on v3 and v4:
    (the running server, its service)."""
    with fake_upstream(intel_routes(case, versions=(3, 4))) as up:
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url,
                           anchors=case.anchors, clock=lambda: float(case.verify_at))
        with running(svc, admin_token="adm1n") as srv:
            yield srv, svc


def test_pccsadmin_get_put_refresh_request_shapes(tmp_path: Path) -> None:
    """The three PccsAdminTool commands that talk to a PCCS, with its exact methods, headers and params."""
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    doc = document(case)
    with _lazy_pccs(tmp_path, case) as (srv, svc):
        base = f"{srv.url}/sgx/certification/v{case.api}"
        # pccsadmin put: requests.put(url, data=<file text>, headers={... 'Content-Type': 'application/json'})
        r = httpx.put(f"{base}/platformcollateral", content=json.dumps(doc),
                      headers={**PCCSADMIN, "Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        # pccsadmin get: GET {url}?source=... ; it json-loads the body
        for source in (None, "reg", "reg_na", "[]", f"[{case.fmspc}]"):
            url = f"{base}/platforms" + (f"?source={source}" if source else "")
            r = httpx.get(url, headers=PCCSADMIN)
            assert r.status_code == 200 and isinstance(r.json(), list), (source, r.text)
            assert int(r.headers["platform-count"]) == len(r.json())
        listed = httpx.get(f"{base}/platforms?source=[]", headers=PCCSADMIN).json()
        assert len(listed) == 1
        for platform in listed:  # what pccsadmin fetch does with each entry of the list it saved
            assert isinstance(len(platform["platform_manifest"]), int)
            assert "?encrypted_ppid={:s}&pceid={:s}".format(platform["enc_ppid"], platform["pce_id"])
        # pccsadmin refresh: requests.post(url, params={'type': 'certs', 'fmspc': ''}) for -f all, or
        # the FMSPC list as typed; no parameters otherwise
        for params in ({}, {"type": "certs", "fmspc": ""},
                       {"type": "certs", "fmspc": f"[{case.fmspc}, 00906ED50000]"}):
            r = httpx.post(f"{base}/refresh", params=params, headers=PCCSADMIN)
            assert r.status_code == 200, (params, r.text)
        assert httpx.post(f"{base}/refresh", headers={"user-agent": "pccsadmin/0.1"}).status_code == 401


def test_pccsadmin_fetch_checks_hold_against_eaa_pccs(tmp_path: Path) -> None:
    """What PccsAdminTool's PCS class checks on the answers fetch reads (lib/intelsgx/pcs.py): Request-ID,
    the issuer chain header of the API version, exact content types, DER PCK CRLs for encoding=der, and the
    signed body it cuts out between '"tcbInfo":' and '},"signature":'."""
    case = vector_case("dcap-qvl/sgx_v3")
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors)
    svc.import_records(records_from_collateral(case.collateral, now=case.verify_at))
    ca = next(svc.store.scan(PCK_CRL)).key
    with running(svc) as srv:
        base = f"{srv.url}/sgx/certification/v{case.api}/"
        r = httpx.get(f"{base}tcb?fmspc={case.fmspc}")
        chain_header = "TCB-Info-Issuer-Chain" if case.api >= 4 else "SGX-TCB-Info-Issuer-Chain"
        assert r.headers["Request-ID"] and r.headers[chain_header] and r.headers["Content-Type"] == "application/json"
        text = r.content.decode("ascii")
        start, end = text.find('"tcbInfo":{') + len('"tcbInfo":'), text.find('},"signature":')
        assert text[start:end + 1] == case.collateral.tcb_info
        r = httpx.get(f"{base}qe/identity")
        assert r.headers["Request-ID"] and r.headers["SGX-Enclave-Identity-Issuer-Chain"]
        assert r.headers["Content-Type"] == "application/json"
        r = httpx.get(f"{base}pckcrl?ca={ca}&encoding=der")
        assert r.headers["Request-ID"] and r.headers["SGX-PCK-CRL-Issuer-Chain"]
        assert r.content == case.collateral.pck_crl


def _policy_jwt(class_id: str, marker: str = "") -> str:
    payload = {"policy_payload": json.dumps({"policy_array": [{"environment": {"class_id": class_id}}]}),
               "marker": marker}
    seg = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJFUzM4NCJ9.{seg}.c2ln"


SGX_CLASS = "3123ec35-8d38-4ea5-87a5-d6c48b567570"
TDX15_CLASS = "f708b97f-0fb2-4e6b-8b03-8a5bcd1221d3"


def test_appraisal_policies_stored_and_served_as_intels(tmp_path: Path) -> None:
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE)
    with running(svc, admin_token="adm1n") as srv:
        url = f"{srv.url}/sgx/certification/v4/appraisalpolicy"
        fmspc = "00906ED50000"
        assert httpx.get(url, params={"fmspc": fmspc}).status_code == 404  # NO_CACHE_DATA
        a, b, c = _policy_jwt(SGX_CLASS, "a"), _policy_jwt(SGX_CLASS, "b"), _policy_jwt(TDX15_CLASS, "c")
        body = {"fmspc": fmspc.lower(), "policy": a, "is_default": True}
        assert httpx.put(url, json=body).status_code == 401
        r = httpx.put(url, json=body, headers=ADMIN)
        assert r.status_code == 200 and r.text == hashlib.sha384(a.encode()).hexdigest()  # Intel's id
        r = httpx.get(url, params={"fmspc": fmspc})
        assert r.status_code == 200 and r.text == a and r.headers["content-type"].startswith("text/html")
        # a new SGX default replaces the old one; a TDX default sits beside it; a non-default is kept, not served
        for pol, default in ((b, True), (c, True), (_policy_jwt(SGX_CLASS, "d"), False)):
            assert httpx.put(url, json={"fmspc": fmspc, "policy": pol, "is_default": default},
                             headers=ADMIN).status_code == 200
        assert sorted(httpx.get(url, params={"fmspc": fmspc.lower()}).text.split(",")) == sorted([b, c])
        assert httpx.get(f"{srv.url}/sgx/certification/v3/appraisalpolicy", params={"fmspc": fmspc}).status_code == 200
        bad = [{"fmspc": fmspc, "policy": a}, {"fmspc": "123", "policy": a, "is_default": True},
               {"fmspc": fmspc, "policy": "no-dots", "is_default": True},
               {"fmspc": fmspc, "policy": _policy_jwt("00000000-0000-0000-0000-000000000000"), "is_default": True},
               {"fmspc": fmspc, "policy": "a.!!!.c", "is_default": True}, [1]]
        for item in bad:
            r = httpx.put(url, json=item, headers=ADMIN)
            assert r.status_code == 400 and error_json(r)["code"] == "BAD_REQUEST", item
        assert httpx.get(url, params={"fmspc": "xyz"}).status_code == 400
        exported = svc.export_records()
    assert sorted(r.kind for r in exported) == ["appraisal"] * 4  # they travel in bundles too


def test_crl_by_distribution_point(tmp_path: Path) -> None:
    """/crl?uri= (QCNL pccs_api_version 3.1): Intel's URL patterns only, raw DER, from the cached CRLs."""
    case = vector_case("dcap-qvl/sgx_v3")
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors)
    svc.import_records(records_from_collateral(case.collateral, now=case.verify_at))
    ca = next(svc.store.scan(PCK_CRL)).key
    other = {"processor": "platform", "platform": "processor"}[ca]
    with running(svc) as srv:
        for api in (3, 4):
            url = f"{srv.url}/sgx/certification/v{api}/crl"
            r = httpx.get(url, params={"uri": "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"})
            assert r.status_code == 200 and r.content == case.collateral.root_ca_crl
            assert r.headers["content-type"] == "application/pkix-crl"
            r = httpx.get(url, params={"uri": "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl"
                                              f"?ca={ca}&encoding=der"})
            assert r.status_code == 200 and r.content == case.collateral.pck_crl
            for uri in ("", "http://certificates.trustedservices.intel.com/IntelSGXRootCA.der",
                        "https://evil.example/?u=https://certificates.trustedservices.intel.com/IntelSGXRootCA.der",
                        "https://api.trustedservices.intel.com/sgx/certification/v0/pckcrl?ca=platform",
                        "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=root",
                        "https://x/" + "a" * 3000):
                r = httpx.get(url, params={"uri": uri} if uri else None)
                assert r.status_code == 400, uri
        # the other CA's CRL was never imported: Intel's NO_CACHE_DATA
        r = httpx.get(f"{srv.url}/sgx/certification/v4/crl",
                      params={"uri": f"https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca={other}"})
        assert r.status_code == 404


def _intel(resp: httpx.Response, status: int, code: str | None = None) -> None:
    """An answer as Intel's PCCS sends it: the status, Express's text/html and the exact text of
    pccs_status_code.js (middleware/error.js sends err.message), a Request-ID; eaa's code in a header."""
    assert resp.status_code == status, (resp.request.method, resp.request.url, resp.status_code, resp.text)
    assert resp.headers["content-type"] == EXPRESS_TEXT, resp.headers
    assert resp.content == INTEL_BODIES[status].encode(), resp.content
    assert resp.headers["request-id"]
    if code is not None:
        assert resp.headers["eaa-error-code"] == code, resp.headers
        assert resp.headers["eaa-error-message"]


@pytest.mark.parametrize("api", [3, 4])
def test_every_intel_status_code(api: int, tmp_path: Path) -> None:
    """Every error of Intel's PCCS routes with Intel's status and byte-exact body (constants/
    pccs_status_code.js, middleware/error.js, middleware/auth.js, controllers/*.js), on v3 and v4; 413 and
    429 where eaa-pccs adds a check Intel's lacks (body limit, registration rate), in the same form."""
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors,
                       clock=lambda: float(case.verify_at))
    svc.import_records(records_from_collateral(case.collateral, now=case.verify_at))
    ticks = [0.0]
    # the six registrations below before the limit (two 400, two 401, one 413, one accepted) fill the bucket
    app = create_app(svc, tokens=Tokens.from_plain("adm1n", "us3r"),
                     registration_limiter=RateLimiter(1 / 60, 6, clock=lambda: ticks[0]))
    server = PccsServer(app).start()
    try:
        base = f"{server.url}/sgx/certification/v{api}"
        pck = {"qeid": "00" * 16, "cpusvn": "05" * 16, "pcesvn": "0500", "pceid": "0000"}
        reg = {"qe_id": "ab" * 16, "pce_id": "0000", "cpu_svn": "05" * 16, "pce_svn": "0500", "enc_ppid": "11" * 384}
        user = {"user-token": "us3r"}
        r = httpx.get(f"{server.url}/sgx/certification/v{case.api}/tcb", params={"fmspc": case.fmspc})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"  # res.send(Buffer)
        # 400 PCCS_STATUS_INVALID_REQ: controllers' parameter checks, schema checks, body-parser's SyntaxError
        for resp in (httpx.get(f"{base}/tcb", params={"fmspc": "12"}), httpx.get(f"{base}/tcb"),
                     httpx.get(f"{base}/tcb", params={"fmspc": case.fmspc, "update": "late"}),
                     httpx.get(f"{base}/pckcrl", params={"ca": "root"}), httpx.get(f"{base}/pckcert"),
                     httpx.get(f"{base}/pckcert", params={**pck, "cpusvn": "05"}),
                     httpx.get(f"{base}/crl", params={"uri": "https://evil.example/x.crl"}),
                     httpx.get(f"{base}/appraisalpolicy", params={"fmspc": "xyz"}),
                     httpx.get(f"{base}/platforms", params={"source": "nonsense"}, headers=ADMIN),
                     httpx.get(f"{base}/refresh", params={"type": "everything"}, headers=ADMIN),
                     httpx.post(f"{base}/platforms", content=b"{not json", headers=user),
                     httpx.post(f"{base}/platforms", json={**reg, "cpu_svn": "zz"}, headers=user),
                     httpx.put(f"{base}/platformcollateral", content=b"{not json", headers=ADMIN),
                     httpx.put(f"{base}/appraisalpolicy", json={"fmspc": "12"}, headers=ADMIN)):
            _intel(resp, 400, "BAD_REQUEST")
        # 401 PCCS_STATUS_UNAUTHORIZED (auth.js validateAdmin/validateUser): missing or wrong token
        for resp in (httpx.get(f"{base}/platforms"), httpx.get(f"{base}/platforms", headers={"admin-token": "x"}),
                     httpx.post(f"{base}/refresh"), httpx.get(f"{base}/refresh", headers={"admin-token": "us3r"}),
                     httpx.put(f"{base}/platformcollateral", json={}), httpx.put(f"{base}/appraisalpolicy", json={}),
                     httpx.post(f"{base}/platforms", json=reg), httpx.post(f"{base}/platforms", json=reg,
                                                                          headers={"user-token": "wrong"})):
            _intel(resp, 401, "UNAUTHORIZED")
        # 404 PCCS_STATUS_NO_CACHE_DATA: nothing cached, and OFFLINE fetches nothing
        for resp in (httpx.get(f"{base}/tcb", params={"fmspc": "00906ED50000"}),
                     httpx.get(f"{base}/tcb", params={"fmspc": case.fmspc, "update": "early"}),
                     httpx.get(f"{base}/qve/identity"),
                     httpx.get(f"{base}/appraisalpolicy", params={"fmspc": case.fmspc})):
            _intel(resp, 404, "NOT_FOUND")
        # 460 PCCS_STATUS_INTEGRITY_ERROR: uploaded collateral whose signature does not verify
        doc = document(vector_case("dcap-qvl/sgx_v3"))
        entry = doc["collaterals"]["tcbinfos"][0]
        next(v for k, v in entry.items() if k != "fmspc")["tcbInfo"]["tcbEvaluationDataNumber"] += 1
        _intel(httpx.put(f"{base}/platformcollateral", json=doc, headers=ADMIN), 460, "INTEGRITY_ERROR")
        # 461 PCCS_STATUS_PLATFORM_UNKNOWN (caching_modes/cachingMode.js: OFFLINE and REQ fetch nothing)
        _intel(httpx.get(f"{base}/pckcert", params=pck), 461, "PLATFORM_UNKNOWN")
        # 503 PCCS_STATUS_SERVICE_UNAVAILABLE (refreshService.js: the caching mode cannot refresh)
        for method in ("GET", "POST"):
            _intel(httpx.request(method, f"{base}/refresh", headers=ADMIN), 503, "SERVICE_UNAVAILABLE")
        # eaa-pccs's own limits, answered in Intel's form
        _intel(httpx.post(f"{base}/platforms", content=b"x" * (300 << 10), headers=user), 413, "PAYLOAD_TOO_LARGE")
        ok = httpx.post(f"{base}/platforms", json=reg, headers=user)
        assert ok.status_code == 200 and ok.content == b"Operation successful."
        limited = httpx.post(f"{base}/platforms", json=reg, headers=user)
        _intel(limited, 429, "TOO_MANY_REQUESTS")
        assert int(limited.headers["retry-after"]) >= 1
        ticks[0] += 61.0  # the bucket refills
        assert httpx.post(f"{base}/platforms", json=reg, headers=user).status_code == 200
        # a registered platform with no certificate for the TCB is 404 (no cache data), not 461
        _intel(httpx.get(f"{base}/pckcert", params={**pck, "qeid": "ab" * 16}), 404, "NOT_FOUND")
    finally:
        server.stop()
        svc.store.close()
    svc = make_service(str(tmp_path / "noadmin.sqlite3"), mode=Mode.OFFLINE)
    with running(svc) as srv:  # no token configured: Intel's auth.js finds no hash to match, 401
        base = f"{srv.url}/sgx/certification/v{api}"
        _intel(httpx.get(f"{base}/platforms", headers=ADMIN), 401, "FORBIDDEN")
        _intel(httpx.post(f"{base}/platforms", json={}, headers={"user-token": "x"}), 401, "FORBIDDEN")
        # eaa-pccs's own admin API keeps its JSON answers
        r = httpx.get(f"{srv.url}/eaa/v1/export", headers=ADMIN)
        assert r.status_code == 403 and error_json(r)["code"] == "FORBIDDEN"


def test_success_answers_as_intels(tmp_path: Path) -> None:
    """What Intel's controllers send on success: "Operation successful." as text/html (platformsController,
    platformCollateralController, refreshController), GET /platforms as Express's res.send(array)
    (compact JSON, application/json; charset=utf-8, platform-count), the policy id as text
    (appraisalPolicyController), and each collateral with the content type Express gives its value
    (x-pem-file with charset for strings: the PCK certificate and hex CRLs; none for Buffers)."""
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    doc = document(case)
    with _lazy_pccs(tmp_path, case) as (srv, svc):
        base = f"{srv.url}/sgx/certification/v{case.api}"
        r = httpx.put(f"{base}/platformcollateral", json=doc, headers=ADMIN)
        _success(r)
        assert int(r.headers["eaa-imported"]) > 0
        reg = {k: doc["platforms"][0][k] for k in ("qe_id", "pce_id", "cpu_svn", "pce_svn", "enc_ppid")}
        r = httpx.post(f"{base}/platforms", json=reg, headers={"user-token": "adm1n"})
        _success(r)
        assert r.headers["eaa-platform-state"] == "cached"
        for method in ("GET", "POST"):
            r = httpx.request(method, f"{base}/refresh", headers=ADMIN)
            _success(r)
            assert "failed=0" in r.headers["eaa-refresh"]
        r = httpx.get(f"{base}/platforms", params={"source": "[]"}, headers=ADMIN)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json; charset=utf-8"
        assert r.content == json.dumps(r.json(), separators=(",", ":")).encode()
        assert r.headers["platform-count"] == "1"
        pck = {"qeid": reg["qe_id"], "cpusvn": reg["cpu_svn"], "pcesvn": reg["pce_svn"], "pceid": reg["pce_id"]}
        r = httpx.get(f"{base}/pckcert", params=pck)
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-pem-file; charset=utf-8"
        assert r.text.startswith("-----BEGIN CERTIFICATE-----")
        ca = next(svc.store.scan(PCK_CRL)).key
        r = httpx.get(f"{base}/pckcrl", params={"ca": ca})
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-pem-file; charset=utf-8"
        assert bytes.fromhex(r.text) == case.collateral.pck_crl
        r = httpx.get(f"{base}/pckcrl", params={"ca": ca, "encoding": "der"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/pkix-crl"
        r = httpx.get(f"{base}/rootcacrl")
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-pem-file; charset=utf-8"
        assert bytes.fromhex(r.text) == case.collateral.root_ca_crl
        r = httpx.get(f"{base}/qe/identity")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        policy = _policy_jwt(SGX_CLASS)
        r = httpx.put(f"{base}/appraisalpolicy", json={"fmspc": case.fmspc, "policy": policy, "is_default": True},
                      headers=ADMIN)
        assert r.status_code == 200 and r.headers["content-type"] == EXPRESS_TEXT
        assert r.text == hashlib.sha384(policy.encode()).hexdigest()


def _success(resp: httpx.Response) -> None:
    assert resp.status_code == 200, (resp.request.url, resp.text)
    assert resp.headers["content-type"] == EXPRESS_TEXT and resp.content == b"Operation successful."
    assert resp.headers["request-id"]


def test_no_route_is_expresss_404_page(tmp_path: Path) -> None:
    """A path or method none of Intel's routes takes: Express's finalhandler page (404, no 405), exactly."""
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE)
    with running(svc) as srv:
        for method, path in (("GET", "/sgx/certification/v4/nothing"), ("PUT", "/sgx/certification/v4/tcb"),
                             ("DELETE", "/sgx/certification/v3/platforms"), ("GET", "/tdx/certification/v4/pckcrl"),
                             ("GET", "/sgx/certification/v5/tcb"), ("GET", "/")):
            r = httpx.request(method, srv.url + path)
            assert r.status_code == 404 and r.headers["content-type"] == EXPRESS_TEXT, (method, path)
            assert r.text == ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error'
                              f'</title>\n</head>\n<body>\n<pre>Cannot {method} {path}</pre>\n</body>\n</html>\n')
            assert r.headers["content-security-policy"] == "default-src 'none'"
            assert r.headers["x-content-type-options"] == "nosniff"
        r = httpx.get(srv.url + "/sgx/certification/v4/a<b>&'")
        assert "<pre>Cannot GET /sgx/certification/v4/a%3Cb%3E&amp;&#39;</pre>" in r.text
        # eaa-pccs's own paths keep their JSON answers
        r = httpx.get(srv.url + "/eaa/v1/nothing")
        assert r.status_code == 404 and r.headers["content-type"] == "application/json"


# what a LAZY miss gets when the upstream fails, per Intel's services/logic/commonCacheLogic.js (any upstream
# status but 200: NO_CACHE_DATA) and pcs_client/pcs_client.js (no answer at all: PCS_ACCESS_FAILURE)
LAZY_ROUTES = [
    ("/sgx/certification/v4/tcb", {"fmspc": "00906ED50000"}),
    ("/tdx/certification/v4/tcb", {"fmspc": "00806F050000"}),
    ("/sgx/certification/v4/qe/identity", {}),
    ("/tdx/certification/v4/qe/identity", {}),
    ("/sgx/certification/v3/qve/identity", {}),
    ("/sgx/certification/v4/pckcrl", {"ca": "processor"}),
    ("/sgx/certification/v3/pckcrl", {"ca": "platform", "encoding": "der"}),
    ("/sgx/certification/v4/rootcacrl", {}),
    ("/sgx/certification/v4/crl", {"uri": "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"}),
    ("/sgx/certification/v4/pckcert", {"qeid": "00" * 16, "cpusvn": "05" * 16, "pcesvn": "0500", "pceid": "0000"}),
]


@pytest.mark.parametrize("failure, status, code", [
    ("404", 404, "NOT_FOUND"), ("500", 404, "UPSTREAM_UNAVAILABLE"), ("503", 404, "UPSTREAM_UNAVAILABLE"),
    ("400", 404, "UPSTREAM_BAD_DATA"), ("corrupt", 404, "UPSTREAM_BAD_DATA"), ("down", 504, "UPSTREAM_UNAVAILABLE"),
])
def test_lazy_upstream_failures_as_intels(failure: str, status: int, code: str, tmp_path: Path) -> None:
    """LAZY, nothing cached, the upstream fails: the upstream's 404, 5xx, another 4xx or data that does not
    verify are Intel's 404 (NO_CACHE_DATA), an upstream that cannot be reached Intel's 504
    (PCS_ACCESS_FAILURE), on every collateral route; never 502/503. eaa's reason travels in headers."""
    case = vector_case("dcap-qvl/sgx_v3")
    up_ctx = fake_upstream(intel_routes(case, versions=(3, 4)))
    up = up_ctx.__enter__()
    try:
        if failure.isdigit():
            up.fail_status = int(failure)
        elif failure == "corrupt":
            up.corrupt.update(f"/{t}/certification/v{v}/{p}" for t in ("sgx", "tdx") for v in (3, 4)
                              for p in ("tcb", "qe/identity", "qve/identity", "pckcrl", "rootcacrl", "pckcert"))
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url, anchors=case.anchors,
                           clock=lambda: float(case.verify_at))
        if failure == "down":
            up_ctx.__exit__(None, None, None)
        routes = LAZY_ROUTES if failure != "corrupt" else [
            (p, q) for p, q in LAZY_ROUTES if "tdx" not in p and "qve" not in p and "pckcert" not in p
            and "fmspc" not in q and q.get("ca") != "platform"] + [
            ("/sgx/certification/v4/tcb", {"fmspc": case.fmspc})]
        with running(svc) as srv:
            for path, params in routes:
                r = httpx.get(srv.url + path, params=params)
                _intel(r, status, code)
                if failure == "down":
                    assert "unavailable" in r.headers["eaa-error-message"]
        assert svc.store.count() == 0
    finally:
        up_ctx.__exit__(None, None, None)


def test_circuit_open_fails_fast_with_intels_504_and_healthz_degraded(tmp_path: Path) -> None:
    """The breaker still fails fast once the upstream failed repeatedly, with Intel's PCS_ACCESS_FAILURE;
    /healthz (eaa's own route) reports degraded; eaa's client reads it as an upstream outage."""
    case = vector_case("dcap-qvl/sgx_v3")
    with fake_upstream({}) as up:
        url = up.url
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=url, anchors=case.anchors,
                       clock=lambda: float(case.verify_at))
    with running(svc) as srv:
        tcb = f"{srv.url}/sgx/certification/v4/tcb"
        for _ in range(3):
            _intel(httpx.get(tcb, params={"fmspc": case.fmspc}), 504, "UPSTREAM_UNAVAILABLE")
        health = httpx.get(f"{srv.url}/healthz").json()
        assert health["status"] == "degraded" and health["upstream"]["intel"] == "open"
        r = httpx.get(tcb, params={"fmspc": case.fmspc})
        _intel(r, 504, "UPSTREAM_UNAVAILABLE")
        assert "circuit open" in r.headers["eaa-error-message"]
        with pytest.raises(UpstreamUnavailable, match="circuit open"):
            client_for(srv.url, case).tcb_info("sgx", case.fmspc)


def test_lazy_registration_failing_upstream_answers_intels_error(tmp_path: Path) -> None:
    """Intel's platformsRegService.js lets the PCK certificate fetch's error answer the registration (504
    when its PCS cannot be reached, 404 when the PCS has no certificates); eaa-pccs does so and keeps the
    platform queued as pending (EAA-Platform-State), so an admin sees it and registering again retries."""
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    doc = document(case)
    reg = {k: doc["platforms"][0][k] for k in ("qe_id", "pce_id", "cpu_svn", "pce_svn", "enc_ppid")}
    with fake_upstream({}) as up:
        url = up.url
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=url, anchors=case.anchors,
                           clock=lambda: float(case.verify_at))
        with running(svc, admin_token="adm1n") as srv:
            base = f"{srv.url}/sgx/certification/v{case.api}"
            r = httpx.post(f"{base}/platforms", json=reg, headers={"user-token": "adm1n"})
            _intel(r, 404, "NOT_FOUND")  # the upstream has no certificate for it
            assert r.headers["eaa-platform-state"] == "pending"
            up.stop()
            other = {**reg, "qe_id": "12" * 16}
            r = httpx.post(f"{base}/platforms", json=other, headers={"user-token": "adm1n"})
            _intel(r, 504, "UPSTREAM_UNAVAILABLE")
            assert r.headers["eaa-platform-state"] == "pending"
            listed = httpx.get(f"{base}/platforms", headers=ADMIN).json()
            assert sorted(p["qe_id"] for p in listed) == sorted([reg["qe_id"].upper(), "12" * 16])


def test_eaa_client_types_eaa_pccs_failures(tmp_path: Path) -> None:
    """eaa's collateral client against eaa-pccs's Intel statuses: 404 for data that does not exist is
    missing collateral; 404 or 504 for an upstream outage is an outage (so it retries and may use a stale
    copy); 461 is an unknown platform, i.e. missing collateral, not a configuration error."""
    case = vector_case("dcap-qvl/sgx_v3")
    with fake_upstream(intel_routes(case, versions=(3, 4))) as up:
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url, anchors=case.anchors,
                           clock=lambda: float(case.verify_at))
        with running(svc) as srv:
            client = client_for(srv.url, case)
            with pytest.raises(CollateralNotFound, match="No cache data|not found"):
                client.tcb_info("sgx", "00906ED50000")
            up.fail_status = 503
            with pytest.raises(UpstreamUnavailable, match="HTTP 404.*unavailable"):
                client_for(srv.url, case).tcb_info("sgx", "00906ED50001")
            up.stop()
            with pytest.raises(UpstreamUnavailable, match="HTTP 504.*unavailable"):
                client_for(srv.url, case).qe_identity("sgx")
    off = make_service(str(tmp_path / "off.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors)
    with running(off) as srv:
        with pytest.raises(CollateralNotFound, match="HTTP 461: platform .* is not in the cache"):
            client_for(srv.url, case).pck_certificate(qeid="00" * 16, cpusvn="05" * 16, pcesvn="0500",
                                                      pceid="0000")
    # Intel's own PCCS (no EAA-Error-* headers): its statuses and texts alone
    answers = {"tcb": (404, "No cache data for this platform."), "qe/identity": (504, INTEL_BODIES[504]),
               "pckcert": (461, INTEL_BODIES[461]), "pckcrl": (500, INTEL_BODIES[500])}

    def intel_pccs(request: httpx.Request) -> httpx.Response:
        status, text = answers[request.url.path.split("/v4/", 1)[1]]
        return httpx.Response(status, content=text.encode(), headers={"content-type": EXPRESS_TEXT})

    intel = PcsClient("https://pccs.example", anchors=case.anchors, retries=0,
                      transport=httpx.MockTransport(intel_pccs), api_versions=(4,))
    with pytest.raises(CollateralNotFound, match="HTTP 404.*No cache data"):
        intel.tcb_info("sgx", case.fmspc)
    with pytest.raises(UpstreamUnavailable, match="HTTP 504.*Unable to retrieve"):
        intel.qe_identity("sgx")
    with pytest.raises(CollateralNotFound, match="platform unknown .HTTP 461.*not found in the cache"):
        intel.pck_certificate(qeid="00" * 16, cpusvn="05" * 16, pcesvn="0500", pceid="0000")
    with pytest.raises(UpstreamUnavailable, match="HTTP 500.*Internal server error"):
        intel.pck_crl("processor")


def test_qcnl_client_keys_in_requests() -> None:
    """local_pck_url first (then pccs_url), custom_request_options on get_cert, local_cache_only, and
    pccs_api_version 3.1's /crl?uri= for the root CA CRL, observed on the wire."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503 if request.url.host == "local" else 404, content=b"no")

    conf = parse_qcnl(json.dumps({
        "pccs_url": "https://pccs.example/sgx/certification/v4/", "local_pck_url": "https://local/sgx/certification/v4/",
        "pccs_api_version": "3.1", "retry_times": 0,
        "custom_request_options": {"get_cert": {"headers": {"x-tenant": "t1"}, "params": {"region": "eu"}}}}))
    assert conf is not None
    client = PcsClient.from_config(conf, cache_dir=None, transport=httpx.MockTransport(handler))
    with pytest.raises(EaaError):
        client.pck_certificate(qeid="00" * 16, cpusvn="00" * 16, pcesvn="0000", pceid="0000")
    hosts = [r.url.host for r in seen]
    assert hosts[0] == "local" and "pccs.example" in hosts[1:]
    assert all(r.headers.get("x-tenant") == "t1" and r.url.params.get("region") == "eu" for r in seen)
    seen.clear()
    with pytest.raises(EaaError):
        client.root_ca_crl()
    assert seen and seen[0].url.path.endswith("/crl") and seen[0].url.params["uri"].startswith("https://")
    assert "x-tenant" not in seen[0].headers  # options of get_cert only
    cache_only = PcsClient.from_config(
        parse_qcnl('{"pccs_url": "https://pccs.example/", "local_cache_only": true}'),  # type: ignore[arg-type]
        cache_dir=None, transport=httpx.MockTransport(handler))
    seen.clear()
    with pytest.raises(EaaError, match="local_cache_only"):
        cache_only.pck_certificate(qeid="00" * 16, cpusvn="00" * 16, pcesvn="0000", pceid="0000")
    assert seen == []


def test_offline_registration_of_a_cached_platform_is_not_queued(tmp_path: Path) -> None:
    """Intel's checkPCKCertCacheStatus: OFFLINE, a platform whose PCK certificate is cached (here from
    PccsAdminTool put) is answered from the cache and not queued for the admin's next get."""
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    doc = document(case)
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors,
                       clock=lambda: float(case.verify_at))
    with running(svc, admin_token="adm1n") as srv:
        base = f"{srv.url}/sgx/certification/v{case.api}"
        assert httpx.put(f"{base}/platformcollateral", json=doc, headers=ADMIN).status_code == 200
        reg = {k: doc["platforms"][0][k] for k in ("qe_id", "pce_id", "cpu_svn", "pce_svn")}
        r = httpx.post(f"{base}/platforms", json=reg, headers={"user-token": "adm1n"})
        _success(r)
        assert r.headers["eaa-platform-state"] == "cached"
        assert httpx.get(f"{base}/platforms", headers=ADMIN).json() == []
        other = {**reg, "qe_id": "12" * 16}
        r = httpx.post(f"{base}/platforms", json=other, headers=ADMIN)
        _success(r)
        assert r.headers["eaa-platform-state"] == "pending"
        assert [p["qe_id"] for p in httpx.get(f"{base}/platforms", headers=ADMIN).json()] == ["12" * 16]


def test_a_repeated_query_parameter_counts_once_as_in_intels(tmp_path: Path) -> None:
    """Intel's filterDuplicatedParams keeps the first value of a repeated parameter."""
    case = vector_case("dcap-qvl/sgx_v3")
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors)
    svc.import_records(records_from_collateral(case.collateral, now=case.verify_at))
    with running(svc) as srv:
        tcb = f"{srv.url}/sgx/certification/v{case.api}/tcb"
        assert httpx.get(f"{tcb}?fmspc={case.fmspc}&fmspc=zz").status_code == 200
        assert httpx.get(f"{tcb}?fmspc=zz&fmspc={case.fmspc}").status_code == 400
        ca = next(svc.store.scan(PCK_CRL)).key
        r = httpx.get(f"{srv.url}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der&encoding=pem")
        assert r.status_code == 200 and r.content == case.collateral.pck_crl
