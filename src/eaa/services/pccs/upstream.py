"""Where eaa-pccs fetches on a cache miss (LAZY mode): Intel's PCS or another PCCS, and AMD's KDS.

Each method makes exactly one upstream request in the API version the client used (a v3 client
expects v3 formats), turns the answer into a :class:`Record` and validates it with the same checks
as an import (:func:`validate_record`), so nothing unverified can reach the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from cryptography import x509

from ...collateral.errors import CollateralNotFound
from ...collateral.http import HttpResponse
from ...collateral.kds import KdsChain, KdsClient, chain_path, crl_path, kds_query, vcek_path
from ...collateral.pcs import (
    H_IDENTITY_ISSUER_CHAIN,
    H_PCK_CRL_ISSUER_CHAIN,
    H_PCK_ISSUER_CHAIN,
    H_TCB_ISSUER_CHAIN_V3,
    H_TCB_ISSUER_CHAIN_V4,
    H_TCBM,
    PcsClient,
    crl_der,
    header_chain,
    status_error,
)
from ...formats.snp_report import TcbVersion
from ...pki.trust import TrustAnchor
from .breaker import CircuitBreaker
from .records import (
    IDENTITY,
    KDS_CHAIN,
    KDS_CRL,
    KDS_VEK,
    PCK_CERT,
    PCK_CRL,
    ROOT_CRL,
    TCB,
    Record,
    identity_key,
    kds_key,
    pck_cert_key,
    tcb_key,
    validate_record,
    vek_key,
)


def _reachable(resp: HttpResponse) -> HttpResponse:
    """A 5xx or 429 answer counts against the circuit like a connection failure."""
    if resp.status == 429 or resp.status >= 500:
        raise status_error(resp)
    return resp


def _ok(resp: HttpResponse) -> HttpResponse:
    if resp.status != 200:
        raise status_error(resp)
    return resp


class Upstream:
    def __init__(self, pcs: PcsClient | None, kds: KdsClient | None, *, anchors: Sequence[TrustAnchor],
                 trusted_arks: Sequence[x509.Certificate] | None = None,
                 clock: Callable[[], float] = time.time, pcs_breaker: CircuitBreaker | None = None,
                 kds_breaker: CircuitBreaker | None = None) -> None:
        self.pcs = pcs
        self.kds = kds
        self.anchors = tuple(anchors)
        self.trusted_arks = trusted_arks
        self.clock = clock
        self.pcs_breaker = pcs_breaker or CircuitBreaker("Intel PCS")
        self.kds_breaker = kds_breaker or CircuitBreaker("AMD KDS")

    def states(self) -> dict[str, str]:
        """Each configured upstream's circuit state (for /healthz)."""
        out = {}
        if self.pcs is not None:
            out["intel"] = self.pcs_breaker.state
        if self.kds is not None:
            out["amd"] = self.kds_breaker.state
        return out

    def _pcs_get(self, tee: str, api: int, path: str, params: dict[str, str] | None = None) -> HttpResponse:
        pcs = self._pcs()
        return self.pcs_breaker.call(lambda: _reachable(pcs.fetch_raw(tee, api, path, params)))

    def _kds_get(self, path: str, params: Mapping[str, str] | None = None) -> HttpResponse:
        kds = self._kds()
        return self.kds_breaker.call(lambda: _reachable(kds.fetch_raw(path, params)))  # type: ignore[arg-type]

    def _pcs(self) -> PcsClient:
        if self.pcs is None:
            raise CollateralNotFound("no Intel PCS/PCCS upstream is configured")
        return self.pcs

    def _kds(self) -> KdsClient:
        if self.kds is None:
            raise CollateralNotFound("no AMD KDS upstream is configured")
        return self.kds

    def _record(self, kind: str, key: str, body: bytes, meta: Mapping[str, str],
                kds_chain: KdsChain | None = None) -> Record:
        rec = Record(kind, key, body, dict(meta), fetched_at=self.clock(), source="upstream")
        return validate_record(rec, self.anchors, self.trusted_arks, kds_chain)

    # ---- Intel ----
    def tcb(self, tee: str, api: int, fmspc: str, update: str | None) -> Record:
        params = {"fmspc": fmspc}
        if update:
            params["update"] = update
        resp = _ok(self._pcs_get(tee, api, "tcb", params))
        chain = header_chain(resp.headers, H_TCB_ISSUER_CHAIN_V4, H_TCB_ISSUER_CHAIN_V3)
        return self._record(TCB, tcb_key(tee, api, fmspc, update or "standard"), resp.body, {"issuer_chain": chain})

    def identity(self, tee: str, which: str, api: int, update: str | None) -> Record:
        params = {"update": update} if update else {}
        resp = _ok(self._pcs_get(tee, api, f"{which}/identity", params))
        chain = header_chain(resp.headers, H_IDENTITY_ISSUER_CHAIN)
        return self._record(IDENTITY, identity_key(tee, which, update or "standard"), resp.body,
                            {"issuer_chain": chain})

    def pck_crl(self, api: int, ca: str) -> Record:
        resp = _ok(self._pcs_get("sgx", api, "pckcrl", {"ca": ca, "encoding": "der"}))
        chain = header_chain(resp.headers, H_PCK_CRL_ISSUER_CHAIN)
        return self._record(PCK_CRL, ca, crl_der(resp.body, "PCK CRL"), {"issuer_chain": chain})

    def root_crl(self, api: int) -> Record:
        pcs = self._pcs()
        resp = self._pcs_get("sgx", api, "rootcacrl")
        if resp.status == 404 and pcs.root_crl_from_dp:
            resp = self.pcs_breaker.call(pcs.fetch_root_crl_from_dp)  # Intel's PCS has no /rootcacrl
        _ok(resp)
        return self._record(ROOT_CRL, "root", crl_der(resp.body, "root CA CRL"), {})

    def pck_cert(self, api: int, qeid: str, cpusvn: str, pcesvn: str, pceid: str,
                 encrypted_ppid: str | None) -> Record:
        params = {"qeid": qeid, "cpusvn": cpusvn, "pcesvn": pcesvn, "pceid": pceid}
        if encrypted_ppid:
            params["encrypted_ppid"] = encrypted_ppid
        resp = _ok(self._pcs_get("sgx", api, "pckcert", params))
        chain = header_chain(resp.headers, H_PCK_ISSUER_CHAIN)
        meta = {"issuer_chain": chain}
        if resp.headers.get(H_TCBM):
            meta["tcbm"] = resp.headers[H_TCBM].upper()
        return self._record(PCK_CERT, pck_cert_key(qeid, cpusvn, pcesvn, pceid), resp.body, meta)

    # ---- AMD ----
    def kds_chain(self, key_type: str, product: str) -> Record:
        resp = _ok(self._kds_get(chain_path(product, key_type)))
        return self._record(KDS_CHAIN, kds_key(key_type, product), resp.body, {})

    def kds_crl(self, key_type: str, product: str, chain: KdsChain) -> Record:
        resp = _ok(self._kds_get(crl_path(product, key_type)))
        return self._record(KDS_CRL, kds_key(key_type, product), crl_der(resp.body, "KDS CRL"), {}, chain)

    def kds_vek(self, product: str, hwid: str, tcb: TcbVersion, chain: KdsChain) -> Record:
        query = kds_query(tcb)
        resp = _ok(self._kds_get(vcek_path(product, hwid), query))
        return self._record(KDS_VEK, vek_key(product, hwid, query), resp.body, {}, chain)
