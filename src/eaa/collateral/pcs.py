"""Client for Intel's PCS and any PCCS (Intel's, eaa-pccs): PCK certificates, CRLs, TCB info, QE identities.

Requests follow Intel's API as QCNL sends them (shared/docs/dcap-reference.md §3): API v4 first,
falling back to v3 when a service does not know v4 (SGX only: TDX exists from v4 on), TDX TCB info
and TD_QE identity from ``/tdx/certification/v4``, the PCK CRL always from ``/sgx/``. Every response
is validated against the trust anchors before it is cached or returned (:mod:`.validate`), cached
in memory and optionally on disk until its ``nextUpdate``, and a stale copy is used only when the
service cannot be reached (the verifier then reports the collateral as expired).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from cryptography import x509

from ..collateral.bundle import crl_to_der
from ..errors import EaaError, FormatError
from ..pki.trust import TrustAnchor, default_anchors
from ..records import record
from .cache import Cached, DiskCache, MemoryCache, RawEntry, default_cache_dir
from .errors import (
    CollateralNotFound,
    CorruptCollateral,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamUnavailable,
)
from .http import HttpGetter, HttpResponse, tls_verify
from .qcnl import DEFAULT_RETRY_DELAY, QcnlConfig, check_url
from .validate import (
    IDENTITY_IDS,
    validate_enclave_identity,
    validate_pck_certificate,
    validate_pck_crl,
    validate_root_ca_crl,
    validate_tcb_info,
)

log = logging.getLogger("eaa.collateral")
T = TypeVar("T")

INTEL_PCS_URL = "https://api.trustedservices.intel.com"
API_VERSIONS = (4, 3)
TEES = ("sgx", "tdx")
HOUR = 3600.0

# Response headers (lower-case; HTTP header names are case-insensitive).
H_PCK_ISSUER_CHAIN = "sgx-pck-certificate-issuer-chain"
H_TCBM = "sgx-tcbm"
H_FMSPC = "sgx-fmspc"
H_CA_TYPE = "sgx-pck-certificate-ca-type"
H_PCK_CRL_ISSUER_CHAIN = "sgx-pck-crl-issuer-chain"
H_TCB_ISSUER_CHAIN_V4 = "tcb-info-issuer-chain"
H_TCB_ISSUER_CHAIN_V3 = "sgx-tcb-info-issuer-chain"
H_IDENTITY_ISSUER_CHAIN = "sgx-enclave-identity-issuer-chain"


def split_service_url(url: str) -> tuple[str, int | None]:
    """``https://h:8081/sgx/certification/v4/`` -> (``https://h:8081``, 4); a bare base URL -> (url, None)."""
    check_url(url, "PCCS URL")
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    version = None
    for tee in TEES:
        marker = f"/{tee}/certification/v"
        i = path.find(marker)
        if i >= 0:
            tail = path[i + len(marker):]
            if tail.isdigit():
                version = int(tail)
                path = path[:i]
                break
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), version


# eaa-pccs's reason for an error, beside Intel's fixed body text (services/pccs/errors.py)
H_EAA_ERROR_CODE = "eaa-error-code"
H_EAA_ERROR_MESSAGE = "eaa-error-message"
# what eaa-pccs's codes mean to a client, whatever Intel status carried them
_EAA_CODES: dict[str, type[EaaError]] = {
    "NOT_FOUND": CollateralNotFound, "PLATFORM_UNKNOWN": CollateralNotFound,
    "UPSTREAM_UNAVAILABLE": UpstreamUnavailable, "UPSTREAM_BAD_DATA": UpstreamUnavailable,
    "STORAGE_UNAVAILABLE": UpstreamUnavailable, "SERVICE_UNAVAILABLE": UpstreamUnavailable,
}


def _printable(raw: bytes | str, limit: int = 300) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.strip().replace("\n", " ")
    return text[:limit] if text.isprintable() else ""


def status_error(resp: HttpResponse) -> EaaError:
    """The typed error for a non-200 answer of Intel's PCS, Intel's PCCS or eaa-pccs.

    Intel's PCCS answers "no data" both for a collateral it never had and for an upstream that failed
    (404, ``commonCacheLogic.js``), 461/462 for an unknown platform or TCB, 504 when its PCS could not be
    reached; eaa-pccs answers the same statuses and names its reason in ``EAA-Error-Code``, which is
    used when present, so an upstream outage behind eaa-pccs is retried (and a stale copy used) rather
    than reported as missing collateral.
    """
    detail = ""
    reason = _printable(resp.headers.get(H_EAA_ERROR_MESSAGE, ""))
    if reason:
        detail = f": {reason}"
    elif resp.body and len(resp.body) < 2048:
        text = _printable(resp.body)
        if text:
            detail = f": {text}"
    typed = _EAA_CODES.get(resp.headers.get(H_EAA_ERROR_CODE, ""))
    if typed is not None:
        return typed(f"{resp.url}: HTTP {resp.status}{detail}")
    if resp.status == 404:
        return CollateralNotFound(f"{resp.url}: not found (HTTP 404){detail}")
    if resp.status in (461, 462):
        what = "platform unknown" if resp.status == 461 else "certificates not available for this TCB"
        return CollateralNotFound(f"{resp.url}: {what} (HTTP {resp.status}){detail}")
    if resp.status in (429,) or resp.status >= 500:
        err = UpstreamServerError(f"{resp.url}: HTTP {resp.status}{detail}")
        err.status = resp.status
        return err
    return UpstreamRejected(f"{resp.url}: HTTP {resp.status}{detail}")


def header_chain(headers: dict[str, str] | Any, *names: str) -> str:
    """An issuer chain header, URL-percent-decoded (PCS sends ``-----BEGIN%20CERTIFICATE…``)."""
    for name in names:
        value = headers.get(name)
        if value:
            return unquote(value)
    raise CorruptCollateral(f"response lacks the {names[0]} header")


@record
class SignedResponse:
    """A TCB info or enclave identity response: the exact JSON text and its issuer chain."""

    text: str
    issuer_chain: str
    next_update: datetime
    api_version: int


@record
class CrlResponse:
    """A PCK or root CA CRL as fetched and validated against the trust anchors: its DER and its issuer chain."""

    der: bytes
    issuer_chain: str  # empty for the root CA CRL
    next_update: datetime


@record
class PckCertResponse:
    """A PCK certificate from ``/pckcert``, validated against the trust anchors, with its platform's TCBM, FMSPC
    and CA type."""

    pem: str  # the PCK leaf
    issuer_chain: str  # its CA and the root
    tcbm: str
    fmspc: str
    ca_type: str
    not_after: datetime

    @property
    def chain_pem(self) -> str:
        return self.pem.rstrip("\n") + "\n" + self.issuer_chain


class PcsClient:
    """Fetches and caches Intel collateral from one PCS/PCCS.

    ``anchors`` are the roots responses must chain to (default: Intel's); ``clock`` returns unix
    seconds and exists so tests can pin the time against which ``nextUpdate`` is compared.
    """

    def __init__(self, base_url: str = INTEL_PCS_URL, *, collateral_url: str | None = None,
                 api_versions: Sequence[int] | None = None, anchors: Sequence[TrustAnchor] | None = None,
                 update: str = "standard", timeout: float = 10.0, retries: int = 2, retry_delay: float = 1.0,
                 retry_backoff: bool = True,
                 verify: Any = True, api_key: str | None = None, memory: MemoryCache[Any] | None = None,
                 disk: DiskCache | None = None, clock: Callable[[], float] = time.time,
                 pck_max_age: float = 168 * HOUR, collateral_max_age: float = 168 * HOUR,
                 transport: httpx.BaseTransport | None = None, root_crl_from_dp: bool = True,
                 pck_url: str | None = None, pck_cache_only: bool = False, crl_by_uri: bool = False,
                 request_options: Mapping[str, tuple[Mapping[str, str], Mapping[str, str]]] | None = None) -> None:
        self.base_url, url_version = split_service_url(base_url)
        # QCNL's local_pck_url (PCK certificates from there first, then from base_url), local_cache_only
        # (PCK certificates only from the caches), pccs_api_version 3.1 (CRLs by distribution point,
        # /crl?uri=) and custom_request_options (extra headers and parameters per API)
        self.pck_url = split_service_url(pck_url)[0] if pck_url else None
        self.pck_cache_only = pck_cache_only
        self.crl_by_uri = crl_by_uri
        self.request_options = dict(request_options or {})
        self.collateral_url = split_service_url(collateral_url)[0] if collateral_url else self.base_url
        if api_versions is None:
            api_versions = (url_version,) if url_version == 3 else API_VERSIONS
        if not api_versions or any(v not in API_VERSIONS for v in api_versions):
            raise UpstreamRejected(f"unsupported PCCS API versions {tuple(api_versions)} (3 and 4 exist)")
        self.api_versions = tuple(api_versions)
        if update not in ("standard", "early"):
            raise UpstreamRejected(f"TCB update type must be standard or early, not {update!r}")
        self.update = update
        self.anchors = tuple(anchors) if anchors else default_anchors()
        self.memory: MemoryCache[Any] = memory if memory is not None else MemoryCache()
        self.disk = disk
        self.clock = clock
        self.pck_max_age = pck_max_age
        self.collateral_max_age = collateral_max_age
        self.root_crl_from_dp = root_crl_from_dp
        headers = {"Ocp-Apim-Subscription-Key": api_key} if api_key else None
        self.http = HttpGetter(timeout=timeout, retries=retries, retry_delay=retry_delay, backoff=retry_backoff,
                               verify=verify,
                               transport=transport, headers=headers)

    @classmethod
    def from_config(cls, config: QcnlConfig, *, anchors: Sequence[TrustAnchor] | None = None,
                    cache_dir: str | None | bool = True, ca_file: str | None = None,
                    **kwargs: Any) -> PcsClient:
        """A client as QCNL would act on ``config``; ``cache_dir=True`` picks the default directory."""
        directory = default_cache_dir() if cache_dir is True else (cache_dir or None)
        intel_collateral = (config.collateral_service or "").startswith(INTEL_PCS_URL)
        kwargs.setdefault("pck_url", config.local_pck_url)
        kwargs.setdefault("pck_cache_only", config.local_cache_only)
        # Intel: pccs_api_version is ignored (3.1 forced) when the collateral comes from Intel's PCS,
        # which has no /crl; 3.1 against a PCCS fetches CRLs by distribution point
        kwargs.setdefault("crl_by_uri", config.pccs_api_version == "3.1" and not intel_collateral)
        kwargs.setdefault("request_options", {name: (dict(h), dict(p)) for name, h, p in config.request_options})
        return cls(config.pccs_url, collateral_url=config.collateral_service, anchors=anchors,
                   update=config.tcb_update_type, retries=config.retry_times,
                   retry_delay=DEFAULT_RETRY_DELAY if config.retry_delay is None else config.retry_delay,
                   retry_backoff=config.retry_delay is None,
                   verify=tls_verify(config.use_secure_cert, ca_file),
                   disk=DiskCache(directory) if directory else None,
                   pck_max_age=config.pck_cache_expire_hours * HOUR,
                   collateral_max_age=config.verify_collateral_cache_expire_hours * HOUR, **kwargs)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PcsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- raw requests ----
    def url(self, tee: str, version: int, path: str) -> str:
        base = self.base_url if path == "pckcert" else self.collateral_url
        return f"{base}/{tee}/certification/v{version}/{path}"

    def fetch_raw(self, tee: str, version: int, path: str, params: dict[str, str] | None = None, *,
                  base: str | None = None) -> HttpResponse:
        """One request to one API version, any status, no cache and no validation (what a PCCS forwards)."""
        headers, extra = self.request_options.get(_QCNL_API.get(path, ""), ({}, {}))
        url = f"{base}/{tee}/certification/v{version}/{path}" if base else self.url(tee, version, path)
        return self.http.get(url, {**extra, **(params or {})} if extra else params, headers or None)

    def fetch(self, tee: str, path: str, params: dict[str, str] | None = None, *,
              base: str | None = None) -> tuple[HttpResponse, int]:
        """A 200 response, trying the configured API versions in order; typed error otherwise."""
        versions = [v for v in self.api_versions if tee == "sgx" or v >= 4]
        if not versions:
            raise UpstreamRejected(f"{tee.upper()} collateral needs PCCS API v4")
        last: EaaError | None = None
        for version in versions:
            resp = self.fetch_raw(tee, version, path, params, base=base)
            if resp.status == 200:
                return resp, version
            last = status_error(resp)
            if resp.status != 404:
                break
        assert last is not None
        raise last

    # ---- caching ----
    def _obtain(self, key: str, fetch: Callable[[], tuple[HttpResponse, int]],
                parse: Callable[[bytes, dict[str, str], int], tuple[T, float]]) -> T:
        """Memory, then disk, then the service; validated before it is kept; stale only if the service is down."""
        now = self.clock()
        mem = self.memory.get(key)
        if mem is not None and mem.fresh(now):
            return mem.value  # type: ignore[no-any-return]
        stale: Cached[Any] | None = mem
        if self.disk is not None:
            raw = self.disk.get(key)
            if raw is not None:
                try:
                    value, expires = parse(raw.body, dict(raw.headers), raw.api_version)
                    item = Cached(value, raw.fetched_at, min(expires, raw.expires_at))
                    if item.fresh(now):
                        self.memory.put(key, item)
                        return value
                    stale = stale or item
                except EaaError as e:
                    log.warning("discarding cached %s: %s", key, e)
                    self.disk.delete(key)
        try:
            resp, version = fetch()
        except UpstreamUnavailable as e:
            if stale is not None:
                log.warning("%s; using the cached copy that expired at %s", e, time.ctime(stale.expires_at))
                return stale.value  # type: ignore[no-any-return]
            raise
        value, expires = parse(resp.body, dict(resp.headers), version)
        if expires > now:
            self.memory.put(key, Cached(value, now, expires))
            if self.disk is not None:
                self.disk.put(RawEntry(key, version, resp.body, dict(resp.headers), now, expires))
        return value

    def _expiry(self, next_update: datetime, max_age: float) -> float:
        return min(next_update.timestamp(), self.clock() + max_age)

    # ---- typed requests ----
    def tcb_info(self, tee: str, fmspc: str) -> SignedResponse:
        tee = _tee(tee)
        fmspc = _hex_param(fmspc, 6, "fmspc").upper()
        params = {"fmspc": fmspc}
        if self.update == "early":
            params["update"] = "early"

        def parse(body: bytes, headers: dict[str, str], version: int) -> tuple[SignedResponse, float]:
            chain = header_chain(headers, H_TCB_ISSUER_CHAIN_V4, H_TCB_ISSUER_CHAIN_V3)
            info = validate_tcb_info(body, chain, self.anchors, tee=tee, fmspc=fmspc)
            text = body.decode("utf-8")
            return (SignedResponse(text, chain, info.next_update, version),
                    self._expiry(info.next_update, self.collateral_max_age))

        return self._obtain(f"tcb/{tee}/{fmspc}/{self.update}", lambda: self.fetch(tee, "tcb", params), parse)

    def qe_identity(self, tee: str) -> SignedResponse:
        tee = _tee(tee)
        params = {"update": "early"} if self.update == "early" else {}

        def parse(body: bytes, headers: dict[str, str], version: int) -> tuple[SignedResponse, float]:
            chain = header_chain(headers, H_IDENTITY_ISSUER_CHAIN)
            ident = validate_enclave_identity(body, chain, self.anchors, identity_id=IDENTITY_IDS[(tee, "qe")])
            return (SignedResponse(body.decode("utf-8"), chain, ident.next_update, version),
                    self._expiry(ident.next_update, self.collateral_max_age))

        return self._obtain(f"qe/{tee}/{self.update}", lambda: self.fetch(tee, "qe/identity", params), parse)

    def pck_crl(self, ca: str) -> CrlResponse:
        ca = ca.lower()
        if ca not in ("processor", "platform"):
            raise UpstreamRejected(f"PCK CRL CA must be processor or platform, not {ca!r}")

        def parse(body: bytes, headers: dict[str, str], version: int) -> tuple[CrlResponse, float]:
            chain = header_chain(headers, H_PCK_CRL_ISSUER_CHAIN)
            der = crl_der(body, "PCK CRL")
            crl = validate_pck_crl(der, chain, self.anchors, ca=ca)
            return CrlResponse(der, chain, crl.next_update), self._expiry(crl.next_update, self.collateral_max_age)

        return self._obtain(f"pckcrl/{ca}", lambda: self.fetch("sgx", "pckcrl", {"ca": ca, "encoding": "der"}),
                            parse)

    def root_ca_crl(self) -> CrlResponse:
        """From the PCCS's ``/rootcacrl``; Intel's PCS has none, so then from the root's CRL distribution point."""

        def parse(body: bytes, headers: dict[str, str], version: int) -> tuple[CrlResponse, float]:
            der = crl_der(body, "root CA CRL")
            crl = validate_root_ca_crl(der, self.anchors)
            return CrlResponse(der, "", crl.next_update), self._expiry(crl.next_update, self.collateral_max_age)

        def fetch() -> tuple[HttpResponse, int]:
            try:
                if self.crl_by_uri:
                    uri = self._root_crl_uri()
                    if uri is not None:
                        try:
                            return self.fetch("sgx", "crl", {"uri": uri})
                        except CollateralNotFound:
                            pass
                return self.fetch("sgx", "rootcacrl")
            except CollateralNotFound:
                if not self.root_crl_from_dp:
                    raise
                return self.fetch_root_crl_from_dp(), 0

        return self._obtain("rootcacrl", fetch, parse)

    def _root_crl_dps(self) -> list[str]:
        """The http(s) CRL distribution points the trust anchors name."""
        out = []
        for anchor in self.anchors:
            try:
                dps = anchor.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
            except (x509.ExtensionNotFound, ValueError):
                continue
            for dp in dps:
                for name in dp.full_name or ():
                    if isinstance(name, x509.UniformResourceIdentifier) and name.value.startswith(("http:", "https:")):
                        out.append(name.value)
        return out

    def _root_crl_uri(self) -> str | None:
        return next((u for u in self._root_crl_dps() if u.startswith("https:")), None)

    def fetch_root_crl_from_dp(self) -> HttpResponse:
        """The root CA CRL from a CRL distribution point named by a trust anchor (Intel's PCS has no /rootcacrl)."""
        for uri in self._root_crl_dps():
            resp = self.http.get(uri)
            if resp.status == 200:
                return resp
        raise CollateralNotFound("the PCCS serves no root CA CRL and no trust anchor names a CRL distribution point")

    def pck_certificate(self, *, qeid: str, cpusvn: str, pcesvn: str, pceid: str,
                        encrypted_ppid: str | None = None) -> PckCertResponse:
        """The PCK certificate for a platform's raw TCB (certification data types 1-3)."""
        params = {"qeid": _hex_param(qeid, None, "qeid").upper(), "cpusvn": _hex_param(cpusvn, 16, "cpusvn").upper(),
                  "pcesvn": _hex_param(pcesvn, 2, "pcesvn").upper(), "pceid": _hex_param(pceid, 2, "pceid").upper()}
        if encrypted_ppid:
            params["encrypted_ppid"] = _hex_param(encrypted_ppid, None, "encrypted_ppid").upper()

        def parse(body: bytes, headers: dict[str, str], version: int) -> tuple[PckCertResponse, float]:
            chain = header_chain(headers, H_PCK_ISSUER_CHAIN)
            pem = body.decode("ascii", "replace")
            info = validate_pck_certificate(pem, chain, self.anchors)
            resp = PckCertResponse(pem, chain, headers.get(H_TCBM, info.tcbm), info.fmspc.hex().upper(),
                                   info.ca_type, info.not_after)
            return resp, min(info.not_after.timestamp(), self.clock() + self.pck_max_age)

        key = "pckcert/" + "&".join(f"{k}={v}" for k, v in sorted(params.items()))

        def fetch() -> tuple[HttpResponse, int]:
            if self.pck_cache_only:
                raise CollateralNotFound("local_cache_only is set: PCK certificates come only from the local "
                                         "cache, which does not hold this one")
            if self.pck_url:
                try:
                    return self.fetch("sgx", "pckcert", params, base=self.pck_url)
                except (CollateralNotFound, UpstreamUnavailable, UpstreamRejected) as e:
                    log.info("local_pck_url failed (%s); trying pccs_url", e)
            return self.fetch("sgx", "pckcert", params)

        return self._obtain(key, fetch, parse)


# QCNL's names for the APIs custom_request_options can extend
_QCNL_API = {"pckcert": "get_cert", "pckcrl": "get_crl", "crl": "get_crl", "tcb": "get_tcbinfo",
             "qe/identity": "get_qe_identity", "qve/identity": "get_qve_identity", "rootcacrl": "get_root_ca_crl"}


def _tee(tee: str) -> str:
    tee = tee.lower()
    if tee not in TEES:
        raise UpstreamRejected(f"TEE must be sgx or tdx, not {tee!r}")
    return tee


def _hex_param(value: str, size: int | None, what: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except (ValueError, TypeError):
        raise FormatError(f"{what} is not hex", field=what) from None
    if size is not None and len(raw) != size:
        raise FormatError(f"{what} must be {size} bytes", field=what)
    return value


def crl_der(body: bytes, what: str) -> bytes:
    """A CRL response as DER (PCCS v3 serves hex, v4 DER or PEM); anything else is corrupt collateral."""
    try:
        der = crl_to_der(body, what)
    except FormatError as e:
        raise CorruptCollateral(f"{what}: {e}") from None
    if der is None:
        raise CorruptCollateral(f"{what}: empty response")
    return der
