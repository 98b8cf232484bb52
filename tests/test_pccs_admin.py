"""Intel PCCS's registration and admin routes: POST/GET /platforms and /refresh on /sgx/certification/v3 and v4.

Registrations are validated like Intel's PCCS, stored (SQLite and PostgreSQL) and listed to the admin;
a LAZY registration fetches the platform's PCK certificate at once, and an upstream outage leaves it
pending instead of failing. /refresh re-fetches cached collateral, replacing it only with valid data
that is not older, and is refused (503, as Intel's) by an OFFLINE instance.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from eaa.services.pccs import Mode, PccsServer, PccsService, create_app
from eaa.services.pccs.records import IDENTITY, PCK_CERT, PLATFORM, identity_key
from test_pccs_pg import new_database, pg_url  # noqa: F401 - pg_url is a fixture used below
from test_pccs_support import (
    error_json,
    fake_upstream,
    intel_routes,
    make_service,
    refresh_counts,
    registered,
    running,
    vector_case,
)

ADMIN = {"admin-token": "adm1n"}
REG = {"qe_id": "ab" * 16, "pce_id": "0000", "cpu_svn": "05" * 16, "pce_svn": "0500", "enc_ppid": "11" * 384}


@contextmanager
def serving(service: PccsService, *, admin_token: str | None = None,
            user_token: str | None = None) -> Iterator[PccsServer]:
    """Like ``running``, with the optional user token (``running`` predates it)."""
    server = PccsServer(create_app(service, admin_token=admin_token, user_token=user_token)).start()
    try:
        yield server
    finally:
        server.stop()
        service.store.close()


BAD_REGISTRATIONS: list[tuple[Any, str]] = [
    ({k: v for k, v in REG.items() if k != "qe_id"}, "qe_id"),
    ({**REG, "qe_id": "0" * 262}, "qe_id"),
    ({**REG, "qe_id": "abc"}, "qe_id"),
    ({**REG, "qe_id": 1234}, "qe_id"),
    ({**REG, "pce_id": "000"}, "pce_id"),
    ({**REG, "cpu_svn": "zz" * 16}, "cpu_svn"),
    ({**REG, "cpu_svn": "05" * 15}, "cpu_svn"),
    ({**REG, "pce_svn": "050000"}, "pce_svn"),
    ({**REG, "enc_ppid": "11" * 256}, "enc_ppid"),  # RSA-2048 size: Intel's PCCS takes 768 digits only
    ({**REG, "platform_manifest": "xyz"}, "platform_manifest"),
    ([REG], ""),
]


def test_registration_validation(tmp_path: Path) -> None:
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE)
    with running(svc, admin_token="adm1n") as srv:
        for body, field in BAD_REGISTRATIONS:
            r = httpx.post(f"{srv.url}/sgx/certification/v4/platforms", json=body, headers=ADMIN)
            assert r.status_code == 400, (body, r.text)
            err = error_json(r)
            assert err["code"] == "BAD_REQUEST" and field in err["message"], (field, err)
        r = httpx.post(f"{srv.url}/sgx/certification/v3/platforms", content=b"{not json",
                       headers={"content-type": "application/json", **ADMIN})
        assert r.status_code == 400 and error_json(r)["message"]
    assert svc.export_records() == []


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    return new_database(request.getfixturevalue("pg_url"))


def test_registration_stored_and_listed(store_url: str, tmp_path: Path) -> None:
    svc = make_service(store_url, mode=Mode.OFFLINE)
    with running(svc, admin_token="adm1n") as srv:
        r = httpx.post(f"{srv.url}/sgx/certification/v4/platforms", json=REG, headers=ADMIN)
        assert registered(r) == "pending"  # OFFLINE: queued for the admin
        # a re-registration of the same (QE ID, PCE ID) replaces it, however the hex is spelt
        r = httpx.post(f"{srv.url}/sgx/certification/v3/platforms",
                       json={**REG, "qe_id": REG["qe_id"].upper(), "cpu_svn": "06" * 16, "extra": 1}, headers=ADMIN)
        assert r.status_code == 200
        other = {"qe_id": "cd" * 8, "pce_id": "0001", "cpu_svn": "00" * 16, "pce_svn": "0000"}
        assert httpx.post(f"{srv.url}/sgx/certification/v4/platforms", json=other, headers=ADMIN).status_code == 200
        url = f"{srv.url}/sgx/certification/v4/platforms"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"admin-token": "wrong"}).status_code == 401
        # Intel's platformsRegDao.findRegisteredPlatforms columns, in its order, and nothing else
        expected = [
            {"qe_id": "AB" * 16, "pce_id": "0000", "cpu_svn": "06" * 16, "pce_svn": "0500",
             "platform_manifest": "", "enc_ppid": "11" * 384},
            {"qe_id": "CD" * 8, "pce_id": "0001", "cpu_svn": "00" * 16, "pce_svn": "0000",
             "platform_manifest": "", "enc_ppid": ""},
        ]
        r = httpx.get(url, headers=ADMIN)  # source=reg (the default), as PccsAdminTool get sends it
        assert r.status_code == 200 and r.json() == expected and r.headers["platform-count"] == "2"
        assert r.content == json.dumps(expected, separators=(",", ":")).encode()  # Express's res.send(array)
        # Intel's PCCS removes what it returned from the registration queue: the next get is empty
        r = httpx.get(f"{srv.url}/sgx/certification/v3/platforms", params={"source": "reg"}, headers=ADMIN)
        assert r.status_code == 200 and r.json() == [] and r.headers["platform-count"] == "0"
        # registering again queues it again
        assert httpx.post(url, json=other, headers=ADMIN).status_code == 200
        assert [p["qe_id"] for p in httpx.get(url, headers=ADMIN).json()] == ["CD" * 8]
        # nothing is cached in OFFLINE mode: the cached listing ([] = all FMSPCs) and reg_na are empty
        for source in ("[]", "[00906ED50000]", "reg_na"):
            r = httpx.get(url, params={"source": source}, headers=ADMIN)
            assert r.status_code == 200 and r.json() == [] and r.headers["platform-count"] == "0", source
        for source in ("nonsense", "[123]", "[00906ED50000", "00906ED50000"):
            r = httpx.get(url, params={"source": source}, headers=ADMIN)
            assert r.status_code == 400 and error_json(r)["code"] == "BAD_REQUEST", source
        exported = svc.export_records()
    assert [r.kind for r in exported] == [PLATFORM, PLATFORM]
    # registrations travel in bundles like collateral does
    copy = make_service(str(tmp_path / "copy.sqlite3"), mode=Mode.OFFLINE)
    assert copy.import_records(exported) == 2
    assert copy.platforms("reg") == []  # both were listed (and so left the queue) before the export
    assert [p.key for p in copy.store.scan(PLATFORM)] == [f"{'AB' * 16}/0000", f"{'CD' * 8}/0001"]
    copy.store.close()
    # without an admin token the listing is off, as the other admin endpoints, and so is registration
    # unless the operator opened it explicitly: Intel's 401 (no configured hash matches any token)
    svc = make_service(str(tmp_path / "noadmin.sqlite3"), mode=Mode.OFFLINE)
    with running(svc) as srv:
        r = httpx.get(f"{srv.url}/sgx/certification/v4/platforms", headers=ADMIN)
        assert r.status_code == 401 and error_json(r)["code"] == "FORBIDDEN"
        r = httpx.post(f"{srv.url}/sgx/certification/v4/platforms", json=REG)
        assert r.status_code == 401 and "--open-registration" in error_json(r)["message"]
    svc = make_service(str(tmp_path / "open.sqlite3"), mode=Mode.OFFLINE)
    server = PccsServer(create_app(svc, open_registration=True)).start()
    try:
        assert httpx.post(f"{server.url}/sgx/certification/v4/platforms", json=REG).status_code == 200
    finally:
        server.stop()
        svc.store.close()


def test_user_token(tmp_path: Path) -> None:
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE)
    with serving(svc, admin_token="adm1n", user_token="us3r") as srv:
        url = f"{srv.url}/sgx/certification/v4/platforms"
        assert httpx.post(url, json=REG).status_code == 401
        r = httpx.post(url, json=REG, headers={"user-token": "wrong"})
        assert r.status_code == 401 and "user-token" in error_json(r)["message"]
        assert httpx.post(url, json=REG, headers={"user-token": "us3r"}).status_code == 200
        assert httpx.post(url, json=REG, headers={"user-token": "adm1n"}).status_code == 200
        assert httpx.post(url, json=REG, headers=ADMIN).status_code == 200
        assert httpx.get(url, headers={"admin-token": "us3r"}).status_code == 401  # user token is not admin


def test_lazy_registration_prefetches_the_pck_certificate(tmp_path: Path) -> None:
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    reg = {"qe_id": "00" * 16, "pce_id": "0000", "cpu_svn": "05" * 16, "pce_svn": "0500"}
    with fake_upstream(intel_routes(case, versions=(3, 4))) as up:
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url,
                           anchors=case.anchors, clock=lambda: float(case.verify_at))
        with running(svc, admin_token="adm1n") as srv:
            r = httpx.post(f"{srv.url}/sgx/certification/v4/platforms", json=reg, headers=ADMIN)
            assert registered(r) == "cached"
            assert up.hits["/sgx/certification/v4/pckcert"] == 1
            assert svc.store.get(PCK_CERT, "/".join(reg[k].upper() for k in ("qe_id", "cpu_svn", "pce_svn",
                                                                               "pce_id"))) is not None
            total = up.total
            r = httpx.get(f"{srv.url}/sgx/certification/v4/pckcert",
                          params={"qeid": reg["qe_id"], "cpusvn": reg["cpu_svn"], "pcesvn": reg["pce_svn"],
                                  "pceid": reg["pce_id"]})
            assert r.status_code == 200 and r.headers["eaa-cache-status"] == "hit"
            assert up.total == total
            url = f"{srv.url}/sgx/certification/v4/platforms"
            assert httpx.get(url, headers=ADMIN).json() == []  # cached: not in the registration queue
            fmspc = svc.store.get(PCK_CERT, "/".join(reg[k].upper() for k in ("qe_id", "cpu_svn", "pce_svn",
                                                                                "pce_id"))).meta["fmspc"]
            for source in ("[]", f"[{fmspc.lower()}]", f"[112233445566, {fmspc}]"):
                r = httpx.get(url, params={"source": source}, headers=ADMIN)
                assert [p["qe_id"] for p in r.json()] == [reg["qe_id"].upper()], source
                assert r.headers["platform-count"] == "1", source
            assert httpx.get(url, params={"source": "[112233445566]"}, headers=ADMIN).json() == []
            # refresh with type=certs fetches the PCK certificate again; the default refresh does not
            r = httpx.get(f"{srv.url}/sgx/certification/v4/refresh", headers=ADMIN)
            assert r.status_code == 200 and up.hits["/sgx/certification/v4/pckcert"] == 1
            r = httpx.get(f"{srv.url}/sgx/certification/v4/refresh", params={"type": "certs"}, headers=ADMIN)
            assert r.status_code == 200, r.text
            assert refresh_counts(r)["unchanged"] == 1 and refresh_counts(r)["failed"] == 0
            assert up.hits["/sgx/certification/v4/pckcert"] == 2
            # an FMSPC filter that matches nothing refreshes nothing
            r = httpx.get(f"{srv.url}/sgx/certification/v4/refresh",
                          params={"type": "certs", "fmspc": "[112233445566]"}, headers=ADMIN)
            assert refresh_counts(r)["unchanged"] == 0 and up.hits["/sgx/certification/v4/pckcert"] == 2


def test_registration_with_the_upstream_down_is_still_queued(tmp_path: Path) -> None:
    """Intel's answer to the registration is the fetch's error (504: its PCS unreachable, platformsRegService.js
    and pcs_client.js); the platform stays queued as pending for the admin."""
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    with fake_upstream(intel_routes(case)) as up:
        url = up.url
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=url, anchors=case.anchors,
                       clock=lambda: float(case.verify_at))
    with running(svc, admin_token="adm1n") as srv:
        r = httpx.post(f"{srv.url}/sgx/certification/v3/platforms", json=REG, headers=ADMIN)
        assert r.status_code == 504, r.text
        err = error_json(r)
        assert r.headers["eaa-platform-state"] == "pending" and "unavailable" in err["message"]
        listed = httpx.get(f"{srv.url}/sgx/certification/v3/platforms", headers=ADMIN).json()
        assert [p["qe_id"] for p in listed] == [REG["qe_id"].upper()]  # source=reg: queued, i.e. pending


def test_refresh_replaces_only_with_newer_valid_data(tmp_path: Path) -> None:
    """Two genuine Intel TD_QE identities (2023 and 2025): the upstream moves from the old to the new one."""
    old = vector_case("go-tdx-guest/tdx_v4_spr_e4")
    new = vector_case("dcap-qvl/tdx_v4")
    path = "/tdx/certification/v4/qe/identity"
    routes = intel_routes(old)
    old_route, new_route = routes[path], intel_routes(new)[path]
    key = identity_key("tdx", "qe", "standard")
    with fake_upstream(routes) as up:
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url,
                           anchors=(*old.anchors, *new.anchors), clock=lambda: float(new.verify_at))
        with running(svc, admin_token="adm1n") as srv:
            refresh = f"{srv.url}/sgx/certification/v4/refresh"
            assert httpx.get(srv.url + path).status_code == 200
            cached = svc.store.get(IDENTITY, key)
            assert cached is not None and b'"issueDate":"2023' in cached.body
            assert httpx.get(refresh).status_code == 401
            assert httpx.get(refresh, headers={"admin-token": "x"}).status_code == 401

            up.routes[path] = new_route
            r = httpx.get(refresh, headers=ADMIN)
            assert r.status_code == 200, r.text
            assert refresh_counts(r)["refreshed"] == 1 and refresh_counts(r)["failed"] == 0
            newer = svc.store.get(IDENTITY, key)
            assert newer is not None and b'"issueDate":"2025' in newer.body
            assert httpx.get(srv.url + path).content == newer.body

            up.corrupt.add(path)  # invalid data: counted as failed (503, as Intel's), the cached record stays
            resp = httpx.get(refresh, headers=ADMIN)
            r = refresh_counts(resp)
            assert resp.status_code == 503 and error_json(resp)["code"] == "SERVICE_UNAVAILABLE"
            assert r["failed"] == 1 and r["refreshed"] == 0 and f"first: {IDENTITY} " in error_json(resp)["message"]
            assert svc.store.get(IDENTITY, key) == newer
            up.corrupt.clear()

            up.routes[path] = old_route  # valid but older (a rollback): not followed
            r = refresh_counts(httpx.get(refresh, headers=ADMIN))
            assert r["kept"] == 1 and r["refreshed"] == 0 and r["failed"] == 0
            assert svc.store.get(IDENTITY, key) == newer

            up.fail_status = 503  # upstream down: failed, kept
            r = refresh_counts(httpx.get(refresh, headers=ADMIN))
            assert r["failed"] == 1 and svc.store.get(IDENTITY, key) == newer

            for params in ({"type": "everything"}, {"type": "fmspcs", "fmspc": "123"}):
                r = httpx.get(refresh, params=params, headers=ADMIN)
                assert r.status_code == 400 and error_json(r)["code"] == "BAD_REQUEST", params


def test_refresh_when_offline_is_503_as_intels(tmp_path: Path) -> None:
    """Intel's refreshService throws PCCS_STATUS_SERVICE_UNAVAILABLE when the caching mode cannot refresh;
    PccsAdminTool refresh sends POST, older tools GET: both routes exist."""
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE)
    with running(svc, admin_token="adm1n") as srv:
        for api in (3, 4):
            for method in ("GET", "POST"):
                r = httpx.request(method, f"{srv.url}/sgx/certification/v{api}/refresh", headers=ADMIN)
                assert r.status_code == 503
                err = error_json(r)
                assert err["code"] == "SERVICE_UNAVAILABLE" and "OFFLINE" in err["message"]
        spec = httpx.get(f"{srv.url}/openapi.json").json()
        for api in (3, 4):
            paths = spec["paths"]
            assert {"get", "post"} <= set(paths[f"/sgx/certification/v{api}/platforms"])
            assert {"get", "post"} <= set(paths[f"/sgx/certification/v{api}/refresh"])
