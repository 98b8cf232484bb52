"""Intel PCCS ``PUT /platformcollateral``: the document Intel's ``PccsAdminTool fetch`` writes
(``platform_collaterals.json``), turned into eaa-pccs records.

This is how an OFFLINE PCCS is filled on Intel's side: registrations are exported, the admin tool
fetches their collateral on a machine with internet access, and the result is uploaded. The layout
follows Intel's PCCS (``services/platformCollateralService.js``, ``pccs_schemas.js``): PCK
certificates per platform with their TCBm, TCB infos as parsed JSON (``tcbinfo`` on API v3;
``sgx_tcbinfo``/``tdx_tcbinfo`` on v4, each optionally ``_early``), identities as the exact response
text, CRLs as hex DER, issuer chains under the PCS header names (percent-encoded PEM, as PCS sends
them). Every record then goes through the same validation as any import, all or nothing.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from cryptography import x509

from ...collateral.validate import pck_certificate_info
from ...errors import EaaError
from ...formats.x509_errors import PARSE_ERRORS
from .errors import BadRequest
from .platforms import PCE_ID_SIZE, QE_ID_MAX, STATE_CACHED, STATE_PENDING, Registration, check_hex
from .records import (
    IDENTITY,
    PCK_CERT,
    PCK_CRL,
    ROOT_CRL,
    TCB,
    Record,
    identity_key,
    pck_cert_key,
    platform_key,
    tcb_key,
)

PCK_CHAIN = "sgx-pck-certificate-issuer-chain"
TCB_CHAINS = ("tcb-info-issuer-chain", "sgx-tcb-info-issuer-chain")
IDENTITY_CHAIN = "sgx-enclave-identity-issuer-chain"
TCBM_DIGITS = 36

# (document field, tee, which) of each enclave identity; "_early" variants add update=early.
IDENTITIES = (("qeidentity", "sgx", "qe"), ("tdqeidentity", "tdx", "qe"), ("qveidentity", "sgx", "qve"))

_NOT_A_PCK_CERTIFICATE: tuple[type[Exception], ...] = (*PARSE_ERRORS, UnicodeEncodeError, EaaError)


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a JSON object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequest(f"{where} must be a JSON array")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{where} must be a non-empty string")
    return value


def _hex(value: Any, where: str) -> bytes:
    try:
        return binascii.unhexlify(_text(value, where))
    except (binascii.Error, ValueError):
        raise BadRequest(f"{where} must be hex") from None


def _compact(obj: Any) -> str:
    """The signed JSON text again: Intel's PCS signs its compact serialisation and the admin tool keeps the
    parsed object, so serialising it compactly in the same key order restores the signed bytes (the
    signature check on import tells whether it did)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def records_from_platform_collateral(document: Any, api: int, *, now: float) -> list[Record]:
    """Records for every certificate, TCB info, identity, CRL and registration in ``document``."""
    doc = _obj(document, "the platform collateral")
    platforms = [Registration.parse(_obj(p, "platforms[]")) for p in _list(doc.get("platforms", []), "platforms")]
    coll = _obj(doc.get("collaterals"), "collaterals")
    certificates = {str(k).lower(): v for k, v in _obj(coll.get("certificates"), "collaterals.certificates").items()}
    pck_chains = {str(k).upper(): unquote(_text(v, f"certificates.{PCK_CHAIN}.{k}"))
                  for k, v in _obj(certificates.get(PCK_CHAIN), f"certificates.{PCK_CHAIN}").items()}
    tcb_chain = next((unquote(_text(certificates[k], f"certificates.{k}")) for k in TCB_CHAINS if k in certificates),
                     None)
    identity_chain = certificates.get(IDENTITY_CHAIN)
    identity_chain = unquote(_text(identity_chain, f"certificates.{IDENTITY_CHAIN}")) if identity_chain else None

    out: list[Record] = []
    cached: set[str] = set()
    for i, entry in enumerate(_list(coll.get("pck_certs", []), "collaterals.pck_certs")):
        key, certs = _pck_certs(_obj(entry, f"pck_certs[{i}]"), i, pck_chains, now)
        cached.add(key)
        out += certs
    for i, entry in enumerate(_list(coll.get("tcbinfos", []), "collaterals.tcbinfos")):
        out += _tcb_infos(_obj(entry, f"tcbinfos[{i}]"), i, api, tcb_chain, now)
    for field, tee, which in IDENTITIES:
        for suffix, update in (("", "standard"), ("_early", "early")):
            text = coll.get(field + suffix)
            if text:
                if identity_chain is None:
                    raise BadRequest(f"collaterals.{field}{suffix} needs certificates.{IDENTITY_CHAIN}")
                out.append(Record(IDENTITY, identity_key(tee, which, update),
                                  _text(text, f"collaterals.{field}{suffix}").encode("utf-8"),
                                  {"issuer_chain": identity_chain}, fetched_at=now, source="platformcollateral"))
    crls = coll.get("pckcacrl") or {}
    for field, ca in (("processorCrl", "processor"), ("platformCrl", "platform")):
        if _obj(crls, "collaterals.pckcacrl").get(field):
            chain = pck_chains.get(ca.upper())
            if chain is None:
                raise BadRequest(f"pckcacrl.{field} needs certificates.{PCK_CHAIN}.{ca.upper()}")
            out.append(Record(PCK_CRL, ca, _hex(crls[field], f"pckcacrl.{field}"), {"issuer_chain": chain},
                              fetched_at=now, source="platformcollateral"))
    if coll.get("rootcacrl"):
        out.append(Record(ROOT_CRL, "root", _hex(coll["rootcacrl"], "collaterals.rootcacrl"), {}, fetched_at=now,
                          source="platformcollateral"))
    for reg in platforms:
        out.append(reg.to_record(state=STATE_CACHED if reg.key in cached else STATE_PENDING, now=now))
    return out


def _pck_certs(entry: Mapping[str, Any], i: int, chains: Mapping[str, str],
               now: float) -> tuple[str, list[Record]]:
    """(the platform's registration key, a record per certificate, filed under the raw TCB of its TCBm)."""
    where = f"pck_certs[{i}]"
    qe_id = check_hex(entry.get("qe_id"), f"{where}.qe_id", max_size=QE_ID_MAX)
    pce_id = check_hex(entry.get("pce_id"), f"{where}.pce_id", size=PCE_ID_SIZE)
    assert qe_id and pce_id  # not optional: check_hex raised otherwise
    out = []
    for j, item in enumerate(_list(entry.get("certs"), f"{where}.certs")):
        item = _obj(item, f"{where}.certs[{j}]")
        tcbm = _text(item.get("tcbm"), f"{where}.certs[{j}].tcbm").upper()
        if len(tcbm) != TCBM_DIGITS or any(c not in "0123456789ABCDEF" for c in tcbm):
            raise BadRequest(f"{where}.certs[{j}].tcbm must be {TCBM_DIGITS} hex digits (CPUSVN then PCESVN)")
        pem = unquote(_text(item.get("cert"), f"{where}.certs[{j}].cert"))
        try:
            ca = pck_certificate_info(x509.load_pem_x509_certificate(pem.encode("ascii"))).ca_type.upper()
        except _NOT_A_PCK_CERTIFICATE as e:
            raise BadRequest(f"{where}.certs[{j}].cert is not a PCK certificate: {e}") from None
        chain = chains.get(ca)
        if chain is None:
            raise BadRequest(f"{where}.certs[{j}] needs certificates.{PCK_CHAIN}.{ca}")
        out.append(Record(PCK_CERT, pck_cert_key(qe_id, tcbm[:32], tcbm[32:], pce_id), pem.encode("ascii"),
                          {"issuer_chain": chain, "tcbm": tcbm}, fetched_at=now, source="platformcollateral"))
    if not out:
        raise BadRequest(f"{where}.certs is empty")
    return platform_key(qe_id, pce_id), out


def _tcb_infos(entry: Mapping[str, Any], i: int, api: int, chain: str | None, now: float) -> list[Record]:
    fmspc = _text(entry.get("fmspc"), f"tcbinfos[{i}].fmspc")
    fields = (("tcbinfo", "sgx"),) if api < 4 else (("sgx_tcbinfo", "sgx"), ("tdx_tcbinfo", "tdx"))
    out = []
    for name, tee in fields:
        for suffix, update in (("", "standard"), ("_early", "early")):
            value = entry.get(name + suffix)
            if value is None:
                continue
            where = f"tcbinfos[{i}].{name}{suffix}"
            response = _obj(value, where)
            if chain is None:
                raise BadRequest(f"{where} needs certificates.{TCB_CHAINS[0 if api >= 4 else 1]}")
            body = '{"tcbInfo":' + _compact(_obj(response.get("tcbInfo"), f"{where}.tcbInfo")) + \
                   ',"signature":' + json.dumps(_text(response.get("signature"), f"{where}.signature")) + "}"
            out.append(Record(TCB, tcb_key(tee, api, fmspc, update), body.encode("utf-8"), {"issuer_chain": chain},
                              fetched_at=now, source="platformcollateral"))
    return out
