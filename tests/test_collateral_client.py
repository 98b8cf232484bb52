"""The PCS/PCCS client on its own: API v4 -> v3 fallback, memory and disk caches bounded by nextUpdate,
stale copies only when the service is down, corrupt answers never cached, retries and timeouts."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest

from eaa.collateral.cache import DiskCache, default_cache_dir
from eaa.collateral.errors import CollateralNotFound, CorruptCollateral, UpstreamRejected, UpstreamUnavailable
from eaa.collateral.fetch import fetch_collateral_for_quote
from eaa.collateral.pcs import PcsClient
from eaa.verify.dcap import QuoteVerifier
from test_pccs_support import fake_upstream, intel_routes, outcome, vector_case


def _client(url: str, case, now: list[float], **kw):  # type: ignore[no-untyped-def]
    return PcsClient(url, anchors=case.anchors, retries=kw.pop("retries", 0), retry_delay=0.0, timeout=5,
                     clock=lambda: now[0], root_crl_from_dp=False, **kw)


def _verify(case, coll):  # type: ignore[no-untyped-def]
    v = QuoteVerifier(case.anchors, check_crl=case.check_crl, cache_size=0)
    return outcome(lambda: v.verify(case.quote, coll, at=case.verify_at))


def test_v4_falls_back_to_v3_and_fetches_the_pck_certificate() -> None:
    """Intel's QVL sample: certification data type 1, TCB info v2, served by a v3-only PCCS."""
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    with fake_upstream(intel_routes(case, versions=(3,))) as up:
        client = _client(up.url, case, [float(case.verify_at)])
        coll = fetch_collateral_for_quote(case.quote, client)
        assert coll.pck_certificate_chain and coll.pck_certificate_chain.count("BEGIN CERTIFICATE") >= 2
        expected = _verify(case, replace(case.collateral, pck_certificate_chain=case.pck_leaf + case.pck_issuer_chain))
        assert _verify(case, coll) == expected and expected["status"] == "UpToDate"
        assert up.hits["/sgx/certification/v4/tcb"] == 1 and up.hits["/sgx/certification/v3/tcb"] == 1
        q = up.hits["/sgx/certification/v3/pckcert"]
        assert q == 1
        v3_only = _client(up.url + "/sgx/certification/v3/", case, [float(case.verify_at)])
        assert v3_only.api_versions == (3,)
        fetch_collateral_for_quote(case.quote, v3_only)
        assert up.hits["/sgx/certification/v4/tcb"] == 1  # a v3 URL never tries v4


def test_memory_and_disk_caches_honour_next_update(tmp_path: Path) -> None:
    case = vector_case("dcap-qvl/tdx_v4")
    now = [float(case.verify_at)]
    with fake_upstream(intel_routes(case)) as up:
        client = _client(up.url, case, now, disk=DiskCache(tmp_path))
        first = fetch_collateral_for_quote(case.quote, client)
        n = up.total
        assert n == 4
        assert fetch_collateral_for_quote(case.quote, client) == first  # memory
        other = _client(up.url, case, now, disk=DiskCache(tmp_path))
        assert fetch_collateral_for_quote(case.quote, other) == first  # disk, re-validated
        assert up.total == n
        now[0] += 40 * 86400  # past every nextUpdate: fetched again
        assert fetch_collateral_for_quote(case.quote, _client(up.url, case, now, disk=DiskCache(tmp_path))) == first
        assert up.total > n


def test_tampered_disk_entry_is_discarded(tmp_path: Path) -> None:
    case = vector_case("dcap-qvl/sgx_v3")
    now = [float(case.verify_at)]
    with fake_upstream(intel_routes(case)) as up:
        fetch_collateral_for_quote(case.quote, _client(up.url, case, now, disk=DiskCache(tmp_path)))
        for f in tmp_path.glob("*.json"):
            obj = json.loads(f.read_text())
            if obj["key"].startswith("tcb/"):
                body = base64.b64decode(obj["body"])
                i = body.index(b'"signature":"') + 20
                body = body[:i] + (b"1" if body[i:i + 1] == b"0" else b"0") + body[i + 1:]
                obj["body"] = base64.b64encode(body).decode()
                f.write_text(json.dumps(obj))
        n = up.total
        coll = fetch_collateral_for_quote(case.quote, _client(up.url, case, now, disk=DiskCache(tmp_path)))
        assert up.hits["/sgx/certification/v4/tcb"] == 2 and up.total == n + 1
        assert _verify(case, coll) == _verify(case, case.collateral)


def test_stale_copy_only_when_the_service_is_down(tmp_path: Path) -> None:
    case = vector_case("dcap-qvl/sgx_v3")
    now = [float(case.verify_at)]
    up_ctx = fake_upstream(intel_routes(case))
    up = up_ctx.__enter__()
    url = up.url
    first = fetch_collateral_for_quote(case.quote, _client(url, case, now, disk=DiskCache(tmp_path)))
    up_ctx.__exit__(None, None, None)
    now[0] += 60 * 86400
    stale = fetch_collateral_for_quote(case.quote, _client(url, case, now, disk=DiskCache(tmp_path)))
    assert stale == first
    with pytest.raises(UpstreamUnavailable):  # nothing cached: the outage is reported
        fetch_collateral_for_quote(case.quote, _client(url, case, now, retries=1))


def test_corrupt_answers_raise_and_are_not_cached(tmp_path: Path) -> None:
    case = vector_case("dcap-qvl/sgx_v3")
    now = [float(case.verify_at)]
    with fake_upstream(intel_routes(case)) as up:
        up.corrupt.add("/sgx/certification/v4/qe/identity")
        client = _client(up.url, case, now, disk=DiskCache(tmp_path))
        with pytest.raises(CorruptCollateral, match="enclave identity"):
            fetch_collateral_for_quote(case.quote, client)
        assert not any(json.loads(f.read_text())["key"].startswith("qe/") for f in tmp_path.glob("*.json"))
        up.corrupt.clear()
        assert _verify(case, fetch_collateral_for_quote(case.quote, client)) == _verify(case, case.collateral)


def test_wrong_fmspc_from_upstream_is_corrupt() -> None:
    case = vector_case("dcap-qvl/sgx_v3")
    routes = intel_routes(case)
    tcb = routes["/sgx/certification/v4/tcb"]
    routes["/sgx/certification/v4/tcb"] = lambda q: tcb({"fmspc": case.fmspc})  # answers any FMSPC
    with fake_upstream(routes) as up:
        with pytest.raises(CorruptCollateral, match="FMSPC"):
            _client(up.url, case, [float(case.verify_at)]).tcb_info("sgx", "00906ED50000")


def test_retries_and_status_errors() -> None:
    case = vector_case("dcap-qvl/sgx_v3")
    with fake_upstream(intel_routes(case)) as up:
        up.fail_status = 503
        with pytest.raises(UpstreamUnavailable, match="503"):
            _client(up.url, case, [0.0], retries=2).qe_identity("sgx")
        assert up.hits["/sgx/certification/v4/qe/identity"] == 3
        up.fail_status = 401
        with pytest.raises(UpstreamRejected, match="401"):
            _client(up.url, case, [0.0], retries=2).qe_identity("sgx")
        assert up.hits["/sgx/certification/v4/qe/identity"] == 4  # not retried
        up.fail_status = None
        with pytest.raises(CollateralNotFound):
            _client(up.url, case, [0.0]).tcb_info("sgx", "00906ED50000")
    with pytest.raises(UpstreamUnavailable):
        _client("http://127.0.0.1:9", case, [0.0]).root_ca_crl()


def test_default_client_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    case = vector_case("dcap-qvl/sgx_v3")
    with fake_upstream(intel_routes(case)) as up:
        monkeypatch.setenv("EAA_PCCS_URL", up.url + "/sgx/certification/v4/")
        monkeypatch.setenv("EAA_QCNL_CONF", str(tmp_path / "none"))
        with pytest.raises(Exception, match="does not exist"):
            fetch_collateral_for_quote(case.quote)
        monkeypatch.delenv("EAA_QCNL_CONF")
        monkeypatch.setattr("eaa.collateral.qcnl.DEFAULT_QCNL_PATH", str(tmp_path / "none"))
        monkeypatch.setenv("EAA_COLLATERAL_CACHE_DIR", str(tmp_path / "cache"))
        assert default_cache_dir() == tmp_path / "cache"
        coll = fetch_collateral_for_quote(case.quote)
        assert _verify(case, coll) == _verify(case, case.collateral)
    monkeypatch.setenv("EAA_COLLATERAL_CACHE_DIR", "none")
    assert default_cache_dir() is None
