"""eaa-pccs against the real clients of Intel's PCCS API: dcap-qvl's own ``get_collateral``, Intel's
PccsAdminTool request shapes (get, put, refresh, as its pccsadmin.py sends them), QCNL's /crl and
appraisal policies, and every status code Intel's PCCS answers (pccs_status_code.js).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import dcap_qvl
import httpx
import pytest

from _sim import T0, plat  # noqa: F401 - plat is a fixture
from eaa.collateral.bundle import Collateral
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


def test_pccsadmin_get_put_refresh_request_shapes(tmp_path: Path) -> None:
    """The three PccsAdminTool commands that talk to a PCCS, with its exact methods, headers and params."""
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    doc = document(case)
    with fake_upstream(intel_routes(case, versions=(3, 4))) as up:
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url,
                           anchors=case.anchors, clock=lambda: float(case.verify_at))
        with running(svc, admin_token="adm1n") as srv:
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


def test_every_intel_status_code(tmp_path: Path) -> None:
    """200, 400, 401, 404, 461 and 503 as Intel's PCCS answers them; 403, 413 and 429 where eaa-pccs adds
    a check Intel's lacks (admin API off, body limit, registration rate)."""
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors)
    svc.import_records(records_from_collateral(case.collateral, now=case.verify_at))
    ticks = [0.0]
    app = create_app(svc, tokens=Tokens.from_plain("adm1n", "us3r"),
                     registration_limiter=RateLimiter(1 / 60, 2, clock=lambda: ticks[0]))
    server = PccsServer(app).start()
    try:
        v3 = f"{server.url}/sgx/certification/v3"
        pck = {"qeid": "00" * 16, "cpusvn": "05" * 16, "pcesvn": "0500", "pceid": "0000"}
        reg = {"qe_id": "ab" * 16, "pce_id": "0000", "cpu_svn": "05" * 16, "pce_svn": "0500", "enc_ppid": "11" * 384}
        cases = [
            (httpx.get(f"{v3}/tcb", params={"fmspc": case.fmspc}), 200, None),
            (httpx.get(f"{v3}/tcb", params={"fmspc": "12"}), 400, "BAD_REQUEST"),
            (httpx.get(f"{v3}/platforms", headers={"admin-token": "wrong"}), 401, "UNAUTHORIZED"),
            (httpx.get(f"{v3}/tcb", params={"fmspc": "00906ED50000"}), 404, "NOT_FOUND"),
            (httpx.get(f"{v3}/pckcert", params=pck), 461, "PLATFORM_UNKNOWN"),
            (httpx.post(f"{v3}/refresh", headers=ADMIN), 503, "SERVICE_UNAVAILABLE"),
            (httpx.post(f"{v3}/platforms", content=b"x" * (300 << 10), headers={"user-token": "us3r"}), 413,
             "PAYLOAD_TOO_LARGE"),
            (httpx.post(f"{v3}/platforms", json=reg, headers={"user-token": "us3r"}), 200, None),
            (httpx.post(f"{v3}/platforms", json=reg, headers={"user-token": "us3r"}), 429, "TOO_MANY_REQUESTS"),
        ]
        for resp, status, code in cases:
            assert resp.status_code == status, (resp.request.url, resp.text)
            assert resp.headers["request-id"]
            if code:
                assert error_json(resp)["code"] == code
        assert int(cases[-1][0].headers["retry-after"]) >= 1
        ticks[0] += 61.0  # the bucket refills
        assert httpx.post(f"{v3}/platforms", json=reg, headers={"user-token": "us3r"}).status_code == 200
        # a registered platform with no certificate for the TCB is 404 (no cache data), not 461
        r = httpx.get(f"{v3}/pckcert", params={**pck, "qeid": "ab" * 16})
        assert r.status_code == 404
    finally:
        server.stop()
        svc.store.close()
    svc = make_service(str(tmp_path / "noadmin.sqlite3"), mode=Mode.OFFLINE)
    with running(svc) as srv:  # no admin token configured: the admin API is off
        assert httpx.get(f"{srv.url}/sgx/certification/v4/platforms", headers=ADMIN).status_code == 403


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
        assert r.status_code == 200 and r.json() == {"state": "cached"}
        assert httpx.get(f"{base}/platforms", headers=ADMIN).json() == []
        other = {**reg, "qe_id": "12" * 16}
        assert httpx.post(f"{base}/platforms", json=other, headers=ADMIN).json() == {"state": "pending"}
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
