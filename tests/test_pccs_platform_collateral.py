"""PUT /platformcollateral: the document Intel's PccsAdminTool writes fills an OFFLINE eaa-pccs, from which a
verifier then reaches the same results as with collateral files; anything that fails validation is refused
and nothing of it is stored."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from _vectors import vectors_dir
from eaa.collateral.fetch import fetch_collateral_for_quote
from eaa.collateral.validate import pck_ca_type, pck_certificate_info
from eaa.errors import EaaError
from eaa.formats.quote import parse_quote
from eaa.formats.signed_json import join_signed
from eaa.pki.chain import load_pem_chain, pem_bodies
from eaa.services.pccs import Mode
from eaa.services.pccs.platform_collateral import records_from_platform_collateral
from eaa.services.pccs.records import PCK_CERT, PLATFORM, Record
from eaa.verify.dcap import QuoteVerifier
from test_pccs_support import (
    VectorCase,
    client_for,
    error_json,
    make_service,
    outcome,
    running,
    vector_case,
)

ADMIN = {"admin-token": "adm1n"}


def _pck(case: VectorCase) -> tuple[str, str]:
    """(PCK leaf PEM, its issuer chain PEM) for the vector's platform."""
    if case.pck_leaf is not None:
        assert case.pck_issuer_chain is not None
        return case.pck_leaf, case.pck_issuer_chain
    data = parse_quote(case.quote).certification_data.data
    blocks = [b"-----BEGIN CERTIFICATE-----" + b + b"-----END CERTIFICATE-----\n" for b in pem_bodies(data)]
    return blocks[0].decode(), b"".join(blocks[1:]).decode()


def document(case: VectorCase) -> dict[str, Any]:
    """What ``PccsAdminTool fetch`` writes for the vector's platform (TCB info as parsed JSON, identities as
    text, CRLs as hex, chains percent-encoded as PCS sends them)."""
    c = case.collateral
    leaf_pem, chain_pem = _pck(case)
    leaf = x509.load_pem_x509_certificate(leaf_pem.encode())
    info = pck_certificate_info(leaf)
    q = parse_quote(case.quote)
    reg = {"qe_id": q.header.user_data[:16].hex(), "pce_id": info.pce_id.hex(), "cpu_svn": info.cpu_svn.hex(),
           "pce_svn": info.pce_svn.to_bytes(2, "little").hex(), "enc_ppid": "ab" * 384}
    tcb = {"tcbInfo": json.loads(c.tcb_info), "signature": c.tcb_info_signature.hex()}
    tcb_field = "tcbinfo" if case.api < 4 else f"{case.tee}_tcbinfo"
    identity = join_signed("enclaveIdentity", c.qe_identity, c.qe_identity_signature)
    ca = pck_ca_type(load_pem_chain(c.pck_crl_issuer_chain, "x")[0])
    collaterals: dict[str, Any] = {
        "pck_certs": [{"qe_id": reg["qe_id"], "pce_id": reg["pce_id"], "enc_ppid": reg["enc_ppid"],
                       "certs": [{"tcb": {}, "tcbm": info.tcbm, "cert": quote(leaf_pem)}]}],
        "tcbinfos": [{"fmspc": case.fmspc, tcb_field: tcb}],
        "pckcacrl": {f"{ca}Crl": (c.pck_crl or b"").hex()},
        "tdqeidentity" if case.tee == "tdx" else "qeidentity": identity,
        "certificates": {
            "SGX-PCK-Certificate-Issuer-Chain": {info.ca_type.upper(): quote(chain_pem)},
            ("TCB-Info-Issuer-Chain" if case.api >= 4 else "SGX-TCB-Info-Issuer-Chain"): quote(c.tcb_info_issuer_chain),
            "SGX-Enclave-Identity-Issuer-Chain": quote(c.qe_identity_issuer_chain),
        },
        "rootcacrl": (c.root_ca_crl or b"").hex(),
    }
    return {"platforms": [reg], "collaterals": collaterals}


def _expected(case: VectorCase) -> Any:
    from dataclasses import replace

    coll = case.collateral
    if case.pck_leaf:
        coll = replace(coll, pck_certificate_chain=case.pck_leaf + (case.pck_issuer_chain or ""))
    v = QuoteVerifier(case.anchors, check_crl=case.check_crl, cache_size=0)
    return outcome(lambda: v.verify(case.quote, coll, at=case.verify_at))


@pytest.mark.parametrize("vid", ["dcap-qvl/tdx_v4", "dcap-qvl/sgx_v3",
                                 "intel-qvl-sample/sgx_v3_synthetic_test_root"])  # API v4 (TDX, SGX) and v3
def test_offline_pccs_filled_by_platform_collateral(vid: str, tmp_path: Path) -> None:
    case = vector_case(vid)
    svc = make_service(str(tmp_path / "off.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors,
                       clock=lambda: float(case.verify_at))
    doc = document(case)
    with running(svc, admin_token="adm1n") as srv:
        url = f"{srv.url}/sgx/certification/v{case.api}/platformcollateral"
        assert httpx.put(url, json=doc).status_code == 401
        r = httpx.put(url, json=doc, headers=ADMIN)
        assert r.status_code == 200 and r.content == b"Operation successful.", r.text  # Intel's answer
        assert r.headers["eaa-imported"] == "6"  # PCK certificate, TCB info, PCK CRL, identity, root CRL, registration
        v = QuoteVerifier(case.anchors, check_crl=case.check_crl, cache_size=0)
        got = outcome(lambda: v.verify(case.quote, fetch_collateral_for_quote(case.quote, client_for(srv.url, case)),
                                       at=case.verify_at))
        assert got == _expected(case)
        platforms = f"{srv.url}/sgx/certification/v{case.api}/platforms"
        assert httpx.get(platforms, headers=ADMIN).json() == []  # cached, so not queued for PccsAdminTool
        listed = httpx.get(platforms, params={"source": "[]"}, headers=ADMIN).json()
        assert [p["qe_id"] for p in listed] == [doc["platforms"][0]["qe_id"].upper()]  # the cached listing
        reg = doc["platforms"][0]
        r = httpx.get(f"{srv.url}/sgx/certification/v{case.api}/pckcert",
                      params={"qeid": reg["qe_id"], "cpusvn": reg["cpu_svn"], "pcesvn": reg["pce_svn"],
                              "pceid": reg["pce_id"]})
        assert r.status_code == 200 and r.text.startswith("-----BEGIN CERTIFICATE-----")


def _tampered_tcb(doc: dict[str, Any]) -> None:
    entry = doc["collaterals"]["tcbinfos"][0]
    info = next(v for k, v in entry.items() if k != "fmspc")["tcbInfo"]
    info["tcbEvaluationDataNumber"] += 1


def _no_chains(doc: dict[str, Any]) -> None:
    del doc["collaterals"]["certificates"]


def _bad_tcbm(doc: dict[str, Any]) -> None:
    doc["collaterals"]["pck_certs"][0]["certs"][0]["tcbm"] = "12"


def _not_a_pck(doc: dict[str, Any]) -> None:
    doc["collaterals"]["pck_certs"][0]["certs"][0]["cert"] = "garbage"


def _bad_crl(doc: dict[str, Any]) -> None:
    crls = doc["collaterals"]["pckcacrl"]
    key = next(iter(crls))
    crls[key] = crls[key][:-4] + "0000"


def _bad_registration(doc: dict[str, Any]) -> None:
    doc["platforms"][0]["cpu_svn"] = "xyz"


@pytest.mark.parametrize("edit, message, status", [
    (_tampered_tcb, "signature", 460), (_no_chains, "certificates", 400), (_bad_tcbm, "tcbm", 400),
    (_not_a_pck, "not a PCK certificate", 400), (_bad_crl, "CRL", 460), (_bad_registration, "cpu_svn", 400),
])
def test_bad_documents_are_refused_whole(edit: Any, message: str, status: int, tmp_path: Path) -> None:
    """Malformed documents are 400; collateral that fails its signature checks is Intel's 460 (integrity)."""
    case = vector_case("dcap-qvl/sgx_v3")
    svc = make_service(str(tmp_path / "off.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors,
                       clock=lambda: float(case.verify_at))
    doc = copy.deepcopy(document(case))
    edit(doc)
    with running(svc, admin_token="adm1n") as srv:
        r = httpx.put(f"{srv.url}/sgx/certification/v4/platformcollateral", json=doc, headers=ADMIN)
        assert r.status_code == status, r.text
        assert message in error_json(r)["message"]
        r = httpx.put(f"{srv.url}/sgx/certification/v4/platformcollateral", content=b"{not json", headers=ADMIN)
        assert r.status_code == 400 and "JSON" in error_json(r)["message"]
    assert list(svc.store.scan(PCK_CERT)) == [] and list(svc.store.scan(PLATFORM)) == []


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: (st.lists(inner, max_size=4)
                                    | st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                     max_leaves=20)
_FIELDS = ["platforms", "collaterals", "pck_certs", "tcbinfos", "certificates", "pckcacrl", "rootcacrl", "qeidentity",
           "sgx_tcbinfo", "tcbinfo", "certs", "tcbm", "cert", "qe_id", "pce_id", "fmspc"]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_document_is_a_typed_refusal_or_records(data: st.DataObject) -> None:
    """Random values dropped anywhere into a valid document never escape as anything but a typed error."""
    doc = copy.deepcopy(_DOC)
    target: Any = doc
    for _ in range(data.draw(st.integers(0, 3))):
        if isinstance(target, dict) and target:
            target = target[data.draw(st.sampled_from(sorted(target)))]
        elif isinstance(target, list) and target:
            target = target[data.draw(st.integers(0, len(target) - 1))]
    if isinstance(target, dict):
        target[data.draw(st.sampled_from(_FIELDS))] = data.draw(_json)
    try:
        records = records_from_platform_collateral(doc if data.draw(st.booleans()) else data.draw(_json), 4, now=0.0)
    except EaaError:
        return
    assert all(isinstance(r, Record) for r in records)


_DOC = document(vector_case("dcap-qvl/sgx_v3")) if vectors_dir() is not None else {}
