"""What eaa-pccs stores: one record per (kind, key), each validated before it is written.

A record is the upstream's answer reduced to what is needed to serve it again under either API
version: the exact body bytes (signed JSON must stay byte-identical), the issuer chain and the other
header values, and ``next_update`` so the service knows when to ask again. Keys are canonical
(upper-case hex, fixed order), so one platform's collateral is stored once however clients spell it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import field, replace
from datetime import datetime, timezone
from typing import Any

from cryptography import x509

from ...collateral.bundle import Collateral
from ...collateral.errors import CorruptCollateral
from ...collateral.kds import (
    KdsChain,
    check_hwid,
    check_product,
    load_der_certificate,
    validate_cert_chain,
    validate_crl,
    validate_vek,
    vek_extensions,
)
from ...collateral.validate import (
    IDENTITY_IDS,
    pck_ca_type,
    validate_enclave_identity,
    validate_pck_certificate,
    validate_pck_crl,
    validate_root_ca_crl,
    validate_tcb_info,
)
from ...errors import FormatError
from ...formats.signed_json import join_signed, loads_strict
from ...formats.snp_report import TcbVersion
from ...pki.chain import load_pem_chain
from ...pki.trust import TrustAnchor
from ...records import record

TCB = "tcb"
IDENTITY = "identity"
PCK_CRL = "pckcrl"
ROOT_CRL = "rootcacrl"
PCK_CERT = "pckcert"
KDS_VEK = "kds_vek"
KDS_CHAIN = "kds_chain"
KDS_CRL = "kds_crl"
PLATFORM = "platform"  # a platform registration (POST /platforms), not collateral
APPRAISAL = "appraisal"  # an appraisal policy (PUT /appraisalpolicy), keyed FMSPC/sha384
KINDS = (TCB, IDENTITY, PCK_CRL, ROOT_CRL, PCK_CERT, KDS_VEK, KDS_CHAIN, KDS_CRL, PLATFORM, APPRAISAL)

BUNDLE_FORMAT = "eaa-pccs-bundle"
BUNDLE_VERSION = 1
MAX_BUNDLE_RECORDS = 100_000


@record
class Record:
    """One stored record: an upstream answer reduced to its exact body and header values, under a canonical key."""

    kind: str
    key: str
    body: bytes
    meta: Mapping[str, str] = field(default_factory=dict)
    next_update: float | None = None  # unix seconds; None: valid until replaced
    fetched_at: float = 0.0
    source: str = "upstream"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "body": base64.b64encode(self.body).decode("ascii"),
                "meta": dict(self.meta), "next_update": self.next_update, "fetched_at": self.fetched_at,
                "source": self.source}

    @classmethod
    def from_json(cls, obj: Any) -> Record:
        if not isinstance(obj, dict):
            raise FormatError("bundle record is not an object", field="records")
        try:
            kind, key, meta = obj["kind"], obj["key"], obj.get("meta") or {}
            body = base64.b64decode(obj["body"], validate=True)
            next_update = obj.get("next_update")
            fetched_at = float(obj.get("fetched_at") or 0.0)
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"bad bundle record ({type(e).__name__})", field="records") from None
        if kind not in KINDS or not isinstance(key, str) or not key or len(key) > 1024:
            raise FormatError("bad bundle record: unknown kind, or a key that is not a string of 1-1024 "
                              "characters", field="records")
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise FormatError("bundle record meta must map strings to strings", field="records")
        if next_update is not None and not isinstance(next_update, (int, float)):
            raise FormatError("bundle record next_update must be a number", field="records")
        return cls(kind, key, body, meta, float(next_update) if next_update is not None else None, fetched_at,
                   str(obj.get("source") or "import"))


# ---- canonical keys ----

def tcb_key(tee: str, api_version: int, fmspc: str, update: str) -> str:
    return f"{tee}/v{api_version}/{fmspc.upper()}/{update}"


def identity_key(tee: str, which: str, update: str) -> str:
    return f"{tee}/{which}/{update}"


def pck_cert_key(qeid: str, cpusvn: str, pcesvn: str, pceid: str) -> str:
    return f"{qeid.upper()}/{cpusvn.upper()}/{pcesvn.upper()}/{pceid.upper()}"


def platform_key(qe_id: str, pce_id: str) -> str:
    """Intel's PCCS keys registrations by (QE ID, PCE ID): a re-registration replaces the old one."""
    return f"{qe_id.upper()}/{pce_id.upper()}"


def vek_key(product: str, hwid: str, query: Mapping[str, str]) -> str:
    return f"{product}/{hwid.lower()}/" + "/".join(f"{k}={v}" for k, v in sorted(query.items()))


def kds_key(key_type: str, product: str) -> str:
    return f"{key_type}/{product}"


# ---- validation of a record, whatever its origin ----

def _ts(dt: datetime) -> float:
    return dt.timestamp()


def validate_record(rec: Record, anchors: Sequence[TrustAnchor],
                    trusted_arks: Sequence[x509.Certificate] | None = None,
                    kds_chain: KdsChain | None = None) -> Record:
    """Check ``rec`` as its kind requires; return it with ``next_update`` taken from the data itself.

    Keys must agree with the content (a TCB info filed under another FMSPC is corrupt). A VEK record
    needs the product's certificate chain (``kds_chain``) to be checked against.
    """
    parts = rec.key.split("/")
    chain = rec.meta.get("issuer_chain", "")
    if rec.kind == TCB:
        if len(parts) != 4 or parts[1] not in ("v3", "v4"):
            raise FormatError("bad TCB info key", field="key")
        info = validate_tcb_info(rec.body, chain, anchors, tee=parts[0], fmspc=parts[2])
        if (info.version == 3) != (parts[1] == "v4"):
            raise CorruptCollateral(f"TCB info version {info.version} does not belong to API {parts[1]}")
        return replace(rec, next_update=_ts(info.next_update))
    if rec.kind == IDENTITY:
        if len(parts) != 3 or (parts[0], parts[1]) not in IDENTITY_IDS:
            raise FormatError("bad enclave identity key", field="key")
        ident = validate_enclave_identity(rec.body, chain, anchors, identity_id=IDENTITY_IDS[(parts[0], parts[1])])
        return replace(rec, next_update=_ts(ident.next_update))
    if rec.kind == PCK_CRL:
        crl = validate_pck_crl(rec.body, chain, anchors, ca=rec.key)
        return replace(rec, next_update=_ts(crl.next_update))
    if rec.kind == ROOT_CRL:
        crl = validate_root_ca_crl(rec.body, anchors)
        return replace(rec, key="root", next_update=_ts(crl.next_update))
    if rec.kind == PCK_CERT:
        if len(parts) != 4:
            raise FormatError("bad PCK certificate key", field="key")
        pck = validate_pck_certificate(rec.body, chain, anchors)
        meta = {**rec.meta, "tcbm": rec.meta.get("tcbm") or pck.tcbm, "fmspc": pck.fmspc.hex().upper(),
                "ca_type": pck.ca_type.upper()}
        return replace(rec, meta=meta, next_update=_ts(pck.not_after))
    if rec.kind == KDS_CHAIN:
        key_type, product = _kds_parts(rec.key)
        kc = validate_cert_chain(rec.body, product, key_type, trusted_arks)
        return replace(rec, next_update=_ts(min(kc.ask.not_valid_after_utc, kc.ark.not_valid_after_utc)))
    if rec.kind == KDS_CRL:
        key_type, product = _kds_parts(rec.key)
        if kds_chain is None:
            raise CorruptCollateral(f"no {key_type} certificate chain for {product} to check its CRL against")
        amd_crl = validate_crl(rec.body, kds_chain)
        if amd_crl.next_update_utc is None:
            raise CorruptCollateral("KDS CRL has no nextUpdate")
        return replace(rec, next_update=_ts(amd_crl.next_update_utc))
    if rec.kind == KDS_VEK:
        product = check_product(parts[0]) if parts else ""
        if kds_chain is None:
            raise CorruptCollateral(f"no VCEK certificate chain for {product} to check the VCEK against")
        cert = load_der_certificate(rec.body, "VCEK")
        ext = vek_extensions(cert)
        hwid = ext.hwid.hex() if ext.hwid is not None else ""
        if len(parts) < 2 or check_hwid(product, parts[1]) != hwid:
            raise CorruptCollateral("VCEK hwID does not match its key")
        validate_vek(rec.body, kds_chain, product, hwid=hwid, tcb=tcb_from_key(product, parts[2:]))
        return replace(rec, next_update=_ts(cert.not_valid_after_utc))
    if rec.kind == PLATFORM:
        from .platforms import registration_from_record

        registration_from_record(rec)
        return replace(rec, next_update=None)
    if rec.kind == APPRAISAL:
        from .appraisal import policy_from_record

        policy_from_record(rec)
        return replace(rec, next_update=None)
    raise FormatError("unknown record kind", field="kind")


def tcb_from_key(product: str, items: Sequence[str]) -> TcbVersion:
    """The TCB of a VEK record from the ``name=value`` parts of its key."""
    try:
        q = dict(item.split("=", 1) for item in items)
        fmc = q.get("fmcSPL")
        return TcbVersion.of(product, bl=int(q["blSPL"]), tee=int(q["teeSPL"]), snp=int(q["snpSPL"]),
                             ucode=int(q["ucodeSPL"]), fmc=int(fmc) if fmc is not None else None)
    except (KeyError, ValueError):
        raise FormatError("VCEK key lacks its TCB (blSPL, teeSPL, snpSPL, ucodeSPL)", field="key") from None


def _kds_parts(key: str) -> tuple[str, str]:
    parts = key.split("/")
    if len(parts) != 2 or parts[0] not in ("vcek", "vlek"):
        raise FormatError("bad KDS key", field="key")
    return parts[0], check_product(parts[1])


# ---- bundles (eaa-pccs import / export) ----

def bundle_json(records: Iterable[Record], *, now: float) -> str:
    exported = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "exported_at": exported,
                       "records": [r.to_json() for r in records]}, indent=1)


def parse_bundle(text: str | bytes) -> list[Record]:
    obj = loads_strict(text.decode("utf-8", "replace") if isinstance(text, bytes) else text, "bundle")
    if not isinstance(obj, dict) or obj.get("format") != BUNDLE_FORMAT:
        raise FormatError(f"not an {BUNDLE_FORMAT} document", field="format")
    if obj.get("version") != BUNDLE_VERSION:
        raise FormatError(f"unsupported bundle version (this eaa-pccs reads version {BUNDLE_VERSION})", field="version")
    records = obj.get("records")
    if not isinstance(records, list):
        raise FormatError("bundle lacks a records list", field="records")
    if len(records) > MAX_BUNDLE_RECORDS:
        raise FormatError(f"bundle holds more than {MAX_BUNDLE_RECORDS} records", field="records")
    return [Record.from_json(r) for r in records]


def signed_response(body_key: str, body: str, signature: bytes) -> bytes:
    """The PCS response form of signed JSON, with the body bytes exactly as signed."""
    return join_signed(body_key, body, signature).encode("utf-8")


def records_from_collateral(c: Collateral, *, now: float, update: str = "standard") -> list[Record]:
    """Records for one quote's collateral (QuoteCollateralV3 JSON or a PCS-style directory).

    TCB info v3 is served on API v4, v2 on v3; the identity by its id; the PCK CRL under the CA
    named by its issuer chain. A bare PCK chain cannot be filed (its QE ID is unknown) and is skipped.
    """
    from ...formats.enclave_identity import EnclaveIdentity
    from ...formats.tcb_info import TcbInfo

    out: list[Record] = []
    tcb = TcbInfo.from_body(c.tcb_info, c.tcb_info_signature)
    api = 4 if tcb.version == 3 else 3
    out.append(Record(TCB, tcb_key(tcb.id.lower(), api, tcb.fmspc.hex(), update),
                      signed_response("tcbInfo", c.tcb_info, c.tcb_info_signature),
                      {"issuer_chain": c.tcb_info_issuer_chain}, fetched_at=now, source="import"))
    ident = EnclaveIdentity.from_body(c.qe_identity, c.qe_identity_signature)
    where = {v: k for k, v in IDENTITY_IDS.items()}.get(ident.id)
    if where is None:
        raise FormatError(f"cannot serve enclave identity {ident.id!r}", field="qe_identity")
    out.append(Record(IDENTITY, identity_key(where[0], where[1], update),
                      signed_response("enclaveIdentity", c.qe_identity, c.qe_identity_signature),
                      {"issuer_chain": c.qe_identity_issuer_chain or c.tcb_info_issuer_chain},
                      fetched_at=now, source="import"))
    if c.pck_crl and c.pck_crl_issuer_chain:
        ca = pck_ca_type(load_pem_chain(c.pck_crl_issuer_chain, "PCK CRL issuer chain")[0])
        out.append(Record(PCK_CRL, ca, c.pck_crl, {"issuer_chain": c.pck_crl_issuer_chain}, fetched_at=now,
                          source="import"))
    if c.root_ca_crl:
        out.append(Record(ROOT_CRL, "root", c.root_ca_crl, {}, fetched_at=now, source="import"))
    return out
