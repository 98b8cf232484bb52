"""eaa-pccs as a cache of AMD's KDS: VCEKs by chip and TCB, certificate chains and CRLs; LAZY from a fake
KDS (real vector certificates), OFFLINE after an export/import; corrupt KDS answers are not kept."""

from __future__ import annotations

from pathlib import Path

import httpx

from eaa.collateral.kds import KdsClient, kds_query
from eaa.services.pccs import Mode
from test_collateral_client_kds import kds_routes, make_test_pki, vector_kds
from test_pccs_support import error_json, fake_upstream, make_service, running


def test_vcek_chain_cached_then_offline(tmp_path: Path) -> None:
    milan, turin = vector_kds("Milan"), vector_kds("Turin")
    with fake_upstream(kds_routes(milan, turin)) as kds:
        svc = make_service(str(tmp_path / "lazy.sqlite3"), mode=Mode.LAZY, kds_url=kds.url)
        with running(svc) as srv:
            for f in (milan, turin):
                client = KdsClient(srv.url, retries=0)  # eaa-pccs speaks KDS's API
                assert client.vcek(f.product, f.hwid, f.tcb) == f.vcek
                r = httpx.get(f"{srv.url}/vcek/v1/{f.product}/{f.hwid}", params=kds_query(f.tcb))
                assert r.status_code == 200 and r.headers["eaa-cache-status"] == "hit"
                assert r.headers["content-type"] == "application/pkix-cert"
                r = httpx.get(f"{srv.url}/vcek/v1/{f.product}/cert_chain")
                assert r.content == f.chain and r.headers["eaa-cache-status"] == "hit"
            assert kds.hits[f"/vcek/v1/Milan/{milan.hwid}"] == 1 and kds.hits["/vcek/v1/Milan/cert_chain"] == 1
            # unknown TCB: the fake KDS has none -> 404 passed on; down KDS -> 503 for uncached only
            q = {**kds_query(milan.tcb), "ucodeSPL": "1"}
            assert httpx.get(f"{srv.url}/vcek/v1/Milan/{milan.hwid}", params=q).status_code == 404
            kds.stop()
            r = httpx.get(f"{srv.url}/vcek/v1/Milan/{milan.hwid}", params={**q, "ucodeSPL": "2"})
            assert r.status_code == 503 and error_json(r)["code"] == "UPSTREAM_UNAVAILABLE"
            assert httpx.get(f"{srv.url}/vcek/v1/Milan/{milan.hwid}",
                             params=kds_query(milan.tcb)).status_code == 200
            bundle = svc.export_records()
    off = make_service(str(tmp_path / "off.sqlite3"), mode=Mode.OFFLINE)
    assert off.import_records(bundle) == 4
    with running(off) as srv:
        assert KdsClient(srv.url, retries=0).vcek("Turin", turin.hwid, turin.tcb) == turin.vcek
        r = httpx.get(f"{srv.url}/vlek/v1/Milan/cert_chain")
        assert r.status_code == 404


def test_corrupt_kds_answers_are_not_cached(tmp_path: Path) -> None:
    f = vector_kds("Milan")
    with fake_upstream(kds_routes(f)) as kds:
        kds.corrupt.add(f"/vcek/v1/Milan/{f.hwid}")
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, kds_url=kds.url)
        with running(svc) as srv:
            url = f"{srv.url}/vcek/v1/Milan/{f.hwid}"
            r = httpx.get(url, params=kds_query(f.tcb))
            assert r.status_code == 502 and error_json(r)["code"] == "UPSTREAM_BAD_DATA"
            assert [rec.kind for rec in svc.store.scan()] == ["kds_chain"]
            kds.corrupt.clear()
            assert httpx.get(url, params=kds_query(f.tcb)).status_code == 200


def test_crl_with_test_roots(tmp_path: Path) -> None:
    files, ark = make_test_pki()
    with fake_upstream(kds_routes(files)) as kds:
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, kds_url=kds.url, trusted_arks=[ark])
        with running(svc) as srv:
            r = httpx.get(f"{srv.url}/vcek/v1/Milan/crl")
            assert r.status_code == 200 and r.content == files.crl
            assert httpx.get(f"{srv.url}/vcek/v1/Milan/crl").headers["eaa-cache-status"] == "hit"
        # the pinned AMD roots do not include the test ARK: nothing is accepted
        svc = make_service(str(tmp_path / "db2.sqlite3"), mode=Mode.LAZY, kds_url=kds.url)
        with running(svc) as srv:
            assert httpx.get(f"{srv.url}/vcek/v1/Milan/crl").status_code == 502
            assert svc.store.count() == 0
