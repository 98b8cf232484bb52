"""The eaa-pccs HTTP API (FastAPI): Intel's PCCS API v3/v4 for SGX and TDX, AMD KDS paths, admin and health.

Paths, query parameters and response headers are those of Intel's PCCS (shared/docs/dcap-reference.md
§3), so QCNL, dcap-qvl and go-tdx-guest clients work unchanged; AMD paths are KDS's own. Handlers are
synchronous (run in the server's thread pool) because storage and upstream calls block.

On Intel's routes every answer is what Intel's PCCS sends (Express under its controllers/ and
middleware/): its status, its content type (``res.send`` of a string adds ``charset=utf-8``, of a
Buffer does not) and its body, byte for byte where its source fixes one: "Operation successful." for
registration, upload and refresh, and the text of constants/pccs_status_code.js for every error
(400 bad input, 401 token, 404 no data, 460 collateral failing its checks, 461 unknown platform, 503
refresh impossible, 504 PCS unreachable), Express's own page for a path or method it has no route
for. eaa-pccs's stable error code and reason travel in ``EAA-Error-Code`` and ``EAA-Error-Message``
headers (a registration's outcome in ``EAA-Platform-State``, an upload's in ``EAA-Imported``, a
refresh's in ``EAA-Refresh``). eaa's own routes (/eaa/v1, AMD KDS, /healthz, /metrics) answer
errors as JSON ``{"error": {"code", "message"}}``. Every answer carries a ``Request-ID``.
"""

from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...collateral.bundle import Collateral
from ...errors import EaaError, VerificationError
from ...formats.signed_json import loads_strict
from .auth import ADMIN_HEADER, USER_HEADER, RateLimiter, Tokens
from .errors import (
    INTEL_INTEGRITY_ERROR,
    INTEL_INTERNAL_ERROR,
    INTEL_INVALID_REQ,
    INTEL_NO_CACHE_DATA,
    INTEL_PCS_ACCESS_FAILURE,
    INTEL_PLATFORM_UNKNOWN,
    INTEL_SUCCESS,
    INTEL_UNAUTHORIZED,
    BadRequest,
    IntegrityError,
    PayloadTooLarge,
    RefreshUnavailable,
    ServiceError,
    TooManyRequests,
)
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .platform_collateral import records_from_platform_collateral
from .platforms import CPU_SVN_SIZE, ENC_PPID_SIZE, PCE_ID_SIZE, PCE_SVN_SIZE, PLATFORM_MANIFEST_MAX, QE_ID_MAX
from .records import Record, bundle_json, parse_bundle, records_from_collateral
from .service import Answer, PccsService, encoding_param

log = logging.getLogger("eaa.pccs")

MAX_IMPORT_SIZE = 64 << 20
MAX_REGISTRATION_SIZE = 256 << 10  # a registration with the largest platform manifest fits
MAX_POLICY_SIZE = (1 << 20) + 4096
TEXT_TYPE = "text/html; charset=utf-8"  # what Express's res.send(string) sends, and so Intel's PCCS
INTEL_JSON_TYPE = "application/json; charset=utf-8"  # Express's res.send(object), i.e. res.json
PEM_TYPE = "application/x-pem-file"
PEM_TEXT_TYPE = PEM_TYPE + "; charset=utf-8"  # Intel sets application/x-pem-file, then res.send(string)
H_ERROR_CODE = "EAA-Error-Code"
H_ERROR_MESSAGE = "EAA-Error-Message"
H_PLATFORM_STATE = "EAA-Platform-State"
MAX_HEADER_TEXT = 512
# paths that are eaa-pccs's own (JSON errors); everything else answers as Intel's PCCS (an Express app) does
EAA_PREFIXES = ("/eaa/", "/healthz", "/metrics", "/vcek/", "/vlek/")
CRL_TYPE = "application/pkix-crl"
CERT_TYPE = "application/pkix-cert"
JSON_TYPE = "application/json"

_ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"type": "string"}, "message": {"type": "string"}}}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"description": d, "content": {JSON_TYPE: {"schema": _ERROR_SCHEMA}}}
    for s, d in ((400, "bad request parameters"), (404, "not cached (OFFLINE) or unknown upstream"),
                 (502, "the upstream sent data that failed validation"),
                 (503, "not cached and the upstream is unavailable"))
}
_INTEL_ERROR_HEADERS = {H_ERROR_CODE: {"schema": {"type": "string"}, "description": "eaa-pccs's stable error code"},
                        H_ERROR_MESSAGE: {"schema": {"type": "string"}, "description": "eaa-pccs's reason, one line"}}


def _intel_doc(intel: tuple[int, str], description: str) -> dict[str, Any]:
    """An error of Intel's routes in the OpenAPI document: Intel's fixed text, eaa's reason in headers."""
    return {"description": f"{description} (Intel's text: {intel[1]})", "headers": _INTEL_ERROR_HEADERS,
            "content": {TEXT_TYPE: {"schema": {"type": "string", "enum": [intel[1]]}}}}


_INTEL_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _intel_doc(INTEL_INVALID_REQ, "bad request parameters"),
    404: _intel_doc(INTEL_NO_CACHE_DATA, "not cached, or the upstream answered without usable collateral"),
    504: _intel_doc(INTEL_PCS_ACCESS_FAILURE, "not cached and the upstream could not be reached"),
}


def encode_chain(pem: str) -> str:
    """Issuer chains travel URL-percent-encoded in headers, as Intel's PCS sends them."""
    return quote(pem, safe="-_.!~*'()")


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def intel_scope(path: str) -> bool:
    """Whether a path is answered as Intel's PCCS answers it (every path but eaa-pccs's own)."""
    return not path.startswith(EAA_PREFIXES)


def header_text(text: str) -> str:
    """One line of printable ASCII for a response header (HTTP allows no line breaks, Starlette only
    Latin-1); never longer than :data:`MAX_HEADER_TEXT`."""
    flat = unicodedata.normalize("NFKD", " ".join(text.split()))
    out = "".join(c if " " <= c <= "~" else "?" for c in flat)
    return out[:MAX_HEADER_TEXT]


def intel_text(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    """``res.status(status).send(text)`` of Intel's PCCS: the text as is, ``text/html; charset=utf-8``."""
    return Response(text.encode("utf-8"), status_code=status, media_type=TEXT_TYPE, headers=headers)


def intel_success(headers: dict[str, str] | None = None) -> Response:
    """PCCS_STATUS_SUCCESS as Intel's controllers send it for a registration, an upload and a refresh."""
    return intel_text(*INTEL_SUCCESS, headers=headers)


def intel_error(intel: tuple[int, str], code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error as Intel's middleware/error.js sends it (its status, its fixed text), with eaa-pccs's own
    code and reason in headers."""
    extra = {H_ERROR_CODE: code, **({H_ERROR_MESSAGE: header_text(message)} if message else {}), **(headers or {})}
    return intel_text(intel[0], intel[1], extra)


def service_error_response(path: str, exc: ServiceError, headers: dict[str, str] | None = None) -> Response:
    resp: Response
    if intel_scope(path):
        resp = intel_error(exc.intel, exc.code, str(exc), headers)
    else:
        resp = error_response(exc.status, exc.code, str(exc))
        resp.headers.update(headers or {})
    if isinstance(exc, TooManyRequests):
        resp.headers["Retry-After"] = str(exc.retry_after)
    return resp


def _escape_html(text: str) -> str:
    """npm escape-html, as Express's finalhandler uses it."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("'", "&#39;"))


def express_not_found(method: str, raw_path: str) -> Response:
    """What Express (finalhandler) answers for a path or method no route takes: 404 with its HTML page
    ``Cannot <METHOD> <path>`` (Express has no 405)."""
    path = quote(raw_path, safe="!%&'()*+,-./:;=?@[]_~")
    body = ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n'
            f"</head>\n<body>\n<pre>{_escape_html(f'Cannot {method} {path}')}</pre>\n</body>\n</html>\n")
    return Response(body.encode("utf-8"), status_code=404, media_type=TEXT_TYPE,
                    headers={"Content-Security-Policy": "default-src 'none'", "X-Content-Type-Options": "nosniff"})


def _served(ans: Answer, body: bytes, media_type: str, headers: dict[str, str] | None = None) -> Response:
    h = {"EAA-Cache-Status": ans.cache, **(headers or {})}
    return Response(content=body, media_type=media_type, headers=h)


class MetricsMiddleware:
    """Counts and times every request by route template (never by raw path: that would be unbounded)."""

    def __init__(self, app: Any, service: PccsService) -> None:
        self.app = app
        self.metrics = service.metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


_REQUEST_ID_OK = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RequestIdMiddleware:
    """Intel's PCCS ``addRequestId``: every answer carries a ``Request-ID`` header (the client's own
    when it sent a well-formed one, else a fresh UUID as 32 hex digits)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"request-id"), "")
        rid = given if _REQUEST_ID_OK.fullmatch(given) else uuid.uuid4().hex

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"request-id", rid.encode())]
            await send(message)

        await self.app(scope, receive, send_wrapper)


class FirstQueryValueMiddleware:
    """Intel's PCCS ``filterDuplicatedParams``: of a repeated query parameter only the first value counts
    (Starlette would take the last), on Intel's routes; /refresh keeps every ``fmspc`` (a documented list)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        qs = scope.get("query_string", b"") if scope["type"] == "http" else b""
        path = scope.get("path", "")
        if b"&" in qs and path.startswith(("/sgx/", "/tdx/")) and not path.endswith("/refresh"):
            seen: set[str] = set()
            kept = []
            for key, value in parse_qsl(qs.decode("latin-1"), keep_blank_values=True):
                if key not in seen:
                    seen.add(key)
                    kept.append((key, value))
            scope = {**scope, "query_string": urlencode(kept).encode("latin-1")}
        await self.app(scope, receive, send)


def _intel_router(service: PccsService, tee: str, api: int) -> APIRouter:
    r = APIRouter(prefix=f"/{tee}/certification/v{api}", tags=[f"{tee.upper()} v{api}"], responses=_INTEL_ERRORS)
    tcb_chain_header = "TCB-Info-Issuer-Chain" if api >= 4 else "SGX-TCB-Info-Issuer-Chain"

    @r.get("/tcb", summary="TCB info for an FMSPC", response_class=Response,
           responses={200: {"content": {JSON_TYPE: {}}, "headers": {tcb_chain_header: {"schema": {"type": "string"}}}}})
    def tcb(fmspc: str = Query(..., description="12 hex digits"),
            update: str | None = Query(None, description="standard or early")) -> Response:
        ans = service.tcb_info(tee, api, fmspc, update)
        return _served(ans, ans.record.body, JSON_TYPE,
                       {tcb_chain_header: encode_chain(ans.record.meta.get("issuer_chain", ""))})

    @r.get("/qe/identity", summary="QE identity (TD_QE for TDX)", response_class=Response,
           responses={200: {"content": {JSON_TYPE: {}}}})
    def qe_identity(update: str | None = Query(None, description="standard or early")) -> Response:
        ans = service.identity(tee, "qe", api, update)
        return _served(ans, ans.record.body, JSON_TYPE,
                       {"SGX-Enclave-Identity-Issuer-Chain": encode_chain(ans.record.meta.get("issuer_chain", ""))})

    if tee == "tdx":
        return r

    @r.get("/qve/identity", summary="QvE identity", response_class=Response,
           responses={200: {"content": {JSON_TYPE: {}}}})
    def qve_identity(update: str | None = Query(None, description="standard or early")) -> Response:
        ans = service.identity(tee, "qve", api, update)
        return _served(ans, ans.record.body, JSON_TYPE,
                       {"SGX-Enclave-Identity-Issuer-Chain": encode_chain(ans.record.meta.get("issuer_chain", ""))})

    @r.get("/pckcrl", summary="PCK CRL of the processor or platform CA", response_class=Response,
           responses={200: {"content": {CRL_TYPE: {}, PEM_TEXT_TYPE: {}}}})
    def pckcrl(ca: str = Query(..., description="processor or platform"),
               encoding: str | None = Query(None, description="der for DER; hex-encoded DER otherwise (as PCCS)")
               ) -> Response:
        ans = service.pck_crl(api, ca, encoding)
        der = encoding_param(encoding) == "der"
        body = ans.record.body if der else ans.record.body.hex().encode()
        return _served(ans, body, CRL_TYPE if der else PEM_TEXT_TYPE,
                       {"SGX-PCK-CRL-Issuer-Chain": encode_chain(ans.record.meta.get("issuer_chain", ""))})

    @r.get("/rootcacrl", summary="Root CA CRL, hex-encoded DER on v3 and v4 (as Intel's PCCS)", response_class=Response,
           responses={200: {"content": {PEM_TEXT_TYPE: {}}}})
    def rootcacrl() -> Response:
        # Intel's PCCS hex-encodes it on every API version "to keep backward compatibility"; QCNL and
        # dcap-qvl decode hex here.
        ans = service.root_ca_crl(api)
        return _served(ans, ans.record.body.hex().encode(), PEM_TEXT_TYPE)

    @r.get("/crl", summary="A CRL by its distribution point URL (QCNL with pccs_api_version 3.1), DER",
           response_class=Response, responses={200: {"content": {CRL_TYPE: {}}}})
    def crl(uri: str | None = Query(None, description="Intel root CA or PCK CRL distribution point URL")) -> Response:
        ans = service.crl_by_uri(api, uri)
        return _served(ans, ans.record.body, CRL_TYPE)

    @r.get("/pckcert", summary="PCK certificate for a platform's raw TCB", response_class=Response,
           responses={200: {"content": {PEM_TEXT_TYPE: {}}},
                      461: _intel_doc(INTEL_PLATFORM_UNKNOWN, "platform unknown (OFFLINE and REQ fetch nothing "
                                                              "for it)")})
    def pckcert(qeid: str = Query(..., description="QE ID, hex"),
                cpusvn: str = Query(..., description="32 hex digits"),
                pcesvn: str = Query(..., description="4 hex digits, little-endian"),
                pceid: str = Query(..., description="4 hex digits"),
                encrypted_ppid: str | None = Query(None, description="encrypted PPID, 768 hex digits")) -> Response:
        ans = service.pck_cert(api, qeid, cpusvn, pcesvn, pceid, encrypted_ppid)
        m = ans.record.meta
        return _served(ans, ans.record.body, PEM_TEXT_TYPE, {
            "SGX-PCK-Certificate-Issuer-Chain": encode_chain(m.get("issuer_chain", "")),
            "SGX-TCBm": m.get("tcbm", ""), "SGX-FMSPC": m.get("fmspc", ""),
            "SGX-PCK-Certificate-CA-Type": m.get("ca_type", ""),
        })

    return r


def _kds_router(service: PccsService) -> APIRouter:
    r = APIRouter(tags=["AMD KDS"], responses=_ERRORS)

    for key_type in ("vcek", "vlek"):
        def chain(product: str, key_type: str = key_type) -> Response:
            ans = service.kds_cert_chain(key_type, product)
            return _served(ans, ans.record.body, PEM_TYPE)

        def crl(product: str, key_type: str = key_type) -> Response:
            ans = service.kds_crl(key_type, product)
            return _served(ans, ans.record.body, CRL_TYPE)

        r.add_api_route(f"/{key_type}/v1/{{product}}/cert_chain", chain, methods=["GET"], response_class=Response,
                        summary=f"{key_type.upper()} certificate chain (intermediate, then ARK)",
                        responses={200: {"content": {PEM_TYPE: {}}}}, operation_id=f"{key_type}_cert_chain")
        r.add_api_route(f"/{key_type}/v1/{{product}}/crl", crl, methods=["GET"], response_class=Response,
                        summary=f"{key_type.upper()} CRL", responses={200: {"content": {CRL_TYPE: {}}}},
                        operation_id=f"{key_type}_crl")

    @r.get("/vcek/v1/{product}/{hwid}", summary="VCEK for a chip and reported TCB", response_class=Response,
           responses={200: {"content": {CERT_TYPE: {}}}})
    def vcek(product: str, hwid: str,
             blSPL: str | None = Query(None), teeSPL: str | None = Query(None),  # noqa: N803 - KDS names
             snpSPL: str | None = Query(None), ucodeSPL: str | None = Query(None),  # noqa: N803
             fmcSPL: str | None = Query(None)) -> Response:  # noqa: N803
        ans = service.kds_vcek(product, hwid, blSPL, teeSPL, snpSPL, ucodeSPL, fmcSPL)
        return _served(ans, ans.record.body, CERT_TYPE)

    return r


def parse_import_body(body: bytes, *, now: float) -> list[Record]:
    """An eaa-pccs bundle, or a QuoteCollateralV3 JSON document (one quote's collateral)."""
    text = body.decode("utf-8", "replace")
    if '"format"' in text[:4096] or text.lstrip().startswith('{"format"'):
        return parse_bundle(text)
    return records_from_collateral(Collateral.from_qvl_json(text), now=now)


class PlatformRegistration(BaseModel):
    """Intel's PCCS registration body (what PCKIDRetrievalTool sends); hex checked by the service."""

    model_config = ConfigDict(extra="ignore")
    qe_id: str = Field(max_length=QE_ID_MAX, description=f"QE ID, at most {QE_ID_MAX} hex digits",
                       json_schema_extra={"pattern": f"^([0-9a-fA-F]{{2}}){{1,{QE_ID_MAX // 2}}}$"})
    pce_id: str = Field(max_length=PCE_ID_SIZE, description=f"{PCE_ID_SIZE} hex digits",
                        json_schema_extra={"pattern": f"^[0-9a-fA-F]{{{PCE_ID_SIZE}}}$"})
    cpu_svn: str = Field(max_length=CPU_SVN_SIZE, description=f"{CPU_SVN_SIZE} hex digits",
                         json_schema_extra={"pattern": f"^[0-9a-fA-F]{{{CPU_SVN_SIZE}}}$"})
    pce_svn: str = Field(max_length=PCE_SVN_SIZE, description=f"{PCE_SVN_SIZE} hex digits, little-endian",
                         json_schema_extra={"pattern": f"^[0-9a-fA-F]{{{PCE_SVN_SIZE}}}$"})
    enc_ppid: str | None = Field(None, max_length=ENC_PPID_SIZE,
                                 description=f"encrypted PPID, {ENC_PPID_SIZE} hex digits")
    platform_manifest: str | None = Field(None, max_length=PLATFORM_MANIFEST_MAX,
                                          description="platform manifest, hex (multi-package platforms)")


def _json_body(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest(f"the {what} is not JSON") from None


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _registration_router(service: PccsService, api: int, tokens: Tokens, limiter: RateLimiter | None) -> APIRouter:
    """Intel PCCS's sgxRouter admin routes (/platforms, /platformcollateral, /refresh, /appraisalpolicy),
    mounted under the SGX prefixes as PCCS's routes/index.js does, with its authentication: the user token
    for POST /platforms, the admin token for the others (GET /appraisalpolicy is public). Every route
    authenticates (and registration is rate-limited per client) before reading any body, and reads
    bodies as a stream with a size limit."""
    r = APIRouter(prefix=f"/sgx/certification/v{api}", tags=[f"SGX v{api} admin"], responses=_INTEL_ERRORS)
    admin_auth: dict[int | str, dict[str, Any]] = {
        401: _intel_doc(INTEL_UNAUTHORIZED, "missing or wrong token, or that token is not configured")}
    too_large: dict[int | str, dict[str, Any]] = {
        413: _intel_doc(PayloadTooLarge.intel, "body too large"),
        460: _intel_doc(INTEL_INTEGRITY_ERROR, "collateral whose signatures or chains do not verify")}
    registration_body = {"requestBody": {"required": True, "content": {
        JSON_TYPE: {"schema": PlatformRegistration.model_json_schema()}}}}

    @r.post("/platforms", summary="Register a platform (user token unless --open-registration); fetches its PCK cert",
            openapi_extra=registration_body,
            responses={**admin_auth, **too_large, 429: _intel_doc(TooManyRequests.intel, "too many registrations"),
                       200: {"description": "registered (Operation successful.); EAA-Platform-State: cached or "
                                            "pending", "content": {TEXT_TYPE: {}}}})
    async def register(request: Request,
                       user_token_h: str | None = Header(None, alias=USER_HEADER),
                       admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> Response:
        if limiter is not None:
            limiter.check(_client(request))
        tokens.check_user(user_token_h, admin_token_h)
        body = _json_body(await read_body(request, MAX_REGISTRATION_SIZE, "registrations"), "registration")
        from starlette.concurrency import run_in_threadpool

        reg = await run_in_threadpool(service.register_platform, api, body)
        headers = {H_PLATFORM_STATE: reg.state}
        if reg.missing:
            headers["EAA-Missing"] = header_text("; ".join(reg.missing))
        if reg.failure is not None:  # Intel's PCCS answers a registration whose fetch failed with that error
            return service_error_response(request.url.path, reg.failure, headers)
        return intel_success(headers)

    @r.get("/platforms", summary="Registered (source=reg, reg_na) or cached ([FMSPC,...]) platforms (admin)",
           response_class=Response,
           responses={**admin_auth, 200: {"content": {INTEL_JSON_TYPE: {}},
                                          "headers": {"platform-count": {"schema": {"type": "integer"}}}}})
    def platforms(source: str | None = Query(None, description="reg (default), reg_na, or [FMSPC,...] ([] for all)"),
                  admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> Response:
        tokens.check_admin(admin_token_h)
        listed = service.platforms(source)
        # Express's res.send(array): JSON.stringify, compact, non-ASCII as is
        body = json.dumps(listed, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return Response(body, media_type=INTEL_JSON_TYPE, headers={"platform-count": str(len(listed))})

    def refresh(type: str | None = Query(None, description="certs (also PCK certificates) or fmspcs (TCB infos)"),
                fmspc: list[str] | None = Query(None, description="FMSPCs to refresh (repeated, or [A,B])"),
                admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> Response:
        tokens.check_admin(admin_token_h)
        summary = service.refresh(api, type, fmspc).to_json()
        counts = {"EAA-Refresh": ", ".join(f"{k}={summary[k]}" for k in ("refreshed", "unchanged", "kept", "failed"))}
        if summary["failed"]:  # Intel's PCCS fails the refresh with 503 when the upstream fails
            first = summary["failures"][0]
            return intel_error(RefreshUnavailable.intel, RefreshUnavailable.code,
                               f"{summary['failed']} records could not be refreshed; first: {first['kind']} "
                               f"{first['key']}: {first['error']}", counts)
        return intel_success(counts)

    refresh_responses = {**admin_auth, 503: _intel_doc(RefreshUnavailable.intel, "OFFLINE, or the upstream failed"),
                         200: {"description": "Operation successful.; EAA-Refresh: the counts",
                               "content": {TEXT_TYPE: {}}}}
    r.add_api_route("/refresh", refresh, methods=["GET"], summary="Refresh the cache from the upstream (admin)",
                    response_class=Response, responses=refresh_responses, operation_id=f"refresh_get_v{api}")
    r.add_api_route("/refresh", refresh, methods=["POST"], summary="Refresh (PccsAdminTool's method; admin)",
                    response_class=Response, responses=refresh_responses, operation_id=f"refresh_post_v{api}")

    @r.put("/platformcollateral", summary="Upload PccsAdminTool's platform collateral document (admin)",
           response_class=Response,
           responses={**admin_auth, **too_large, 200: {"description": "Operation successful.; EAA-Imported: records",
                                                       "content": {TEXT_TYPE: {}}}})
    async def platform_collateral(request: Request,
                                  admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> Response:
        tokens.check_admin(admin_token_h)
        body = await read_body(request, MAX_IMPORT_SIZE, "import documents")
        try:
            records = records_from_platform_collateral(loads_strict(body.decode("utf-8", "replace"), "document"),
                                                       api, now=service.clock())
        except VerificationError as e:
            raise IntegrityError(f"cannot import the platform collateral: {e}") from None
        except EaaError as e:
            raise BadRequest(f"cannot import the platform collateral: {e}") from None
        from starlette.concurrency import run_in_threadpool

        n = await run_in_threadpool(service.import_records, records)
        return intel_success({"EAA-Imported": str(n)})

    @r.put("/appraisalpolicy", summary="Upload an appraisal policy (admin); answers its id (SHA-384)",
           response_class=Response, responses={**admin_auth, **too_large, 200: {"content": {TEXT_TYPE: {}}}})
    async def put_appraisal_policy(request: Request,
                                   admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> Response:
        tokens.check_admin(admin_token_h)
        body = _json_body(await read_body(request, MAX_POLICY_SIZE, "appraisal policies"), "appraisal policy")
        from starlette.concurrency import run_in_threadpool

        return Response(await run_in_threadpool(service.put_appraisal_policy, body), media_type=TEXT_TYPE)

    @r.get("/appraisalpolicy", summary="The FMSPC's default appraisal policies, comma-separated",
           response_class=Response, responses={200: {"content": {TEXT_TYPE: {}}}})
    def get_appraisal_policy(fmspc: str | None = Query(None, description="12 hex digits")) -> Response:
        return Response(service.appraisal_policies(fmspc), media_type=TEXT_TYPE)

    return r


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, refused (413) beyond ``limit`` whether or not Content-Length says so: checked
    on the header first, then while streaming, so an oversized body is never held in memory."""
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > limit):
        raise PayloadTooLarge(f"{what} are limited to {limit} bytes")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"{what} are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _admin_router(service: PccsService, tokens: Tokens) -> APIRouter:
    r = APIRouter(prefix="/eaa/v1", tags=["admin"])
    auth: dict[int | str, dict[str, Any]] = {401: _ERRORS[400] | {"description": "missing or wrong admin token"},
            403: _ERRORS[400] | {"description": "admin API disabled"}}

    @r.post("/import", summary="Import an eaa-pccs bundle or QuoteCollateralV3 JSON (admin)",
            responses={**_ERRORS, **auth, 413: _ERRORS[400] | {"description": "too large"}})
    async def import_(request: Request, admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> JSONResponse:
        tokens.check_admin(admin_token_h)
        body = await read_body(request, MAX_IMPORT_SIZE, "import documents")
        try:
            records = parse_import_body(body, now=service.clock())
        except VerificationError as e:
            raise IntegrityError(f"cannot import: {e}") from None
        except EaaError as e:
            raise BadRequest(f"cannot import: {e}") from None
        from starlette.concurrency import run_in_threadpool

        n = await run_in_threadpool(service.import_records, records)
        return JSONResponse({"imported": n})

    @r.get("/export", summary="Export every record as an eaa-pccs bundle (admin)", response_class=Response,
           responses={**auth, 200: {"content": {JSON_TYPE: {}}}})
    def export(admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> Response:
        tokens.check_admin(admin_token_h)
        return Response(bundle_json(service.export_records(), now=service.clock()), media_type=JSON_TYPE)

    return r


def create_app(service: PccsService, *, admin_token: str | None = None, user_token: str | None = None,
               tokens: Tokens | None = None, open_registration: bool = False,
               registration_limiter: RateLimiter | None = None) -> FastAPI:
    """The ASGI application. ``tokens`` (or the plaintext ``admin_token``/``user_token``, hashed here):
    the admin token enables /eaa/v1/import, /eaa/v1/export, GET /platforms, /refresh, PUT
    /platformcollateral and PUT /appraisalpolicy; POST /platforms needs the user (or admin) token
    unless ``open_registration``. ``registration_limiter`` bounds registrations per client address."""
    if tokens is None:
        tokens = Tokens.from_plain(admin_token, user_token, open_registration=open_registration)
    app = FastAPI(title="eaa-pccs", version="1.0",
                  description="Provisioning Certificate Caching Service: Intel PCCS API v3/v4 (SGX, TDX) and AMD KDS",
                  docs_url=None, redoc_url=None)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return service_error_response(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "path", "header"))
            problems.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
        return service_error_response(request.url.path, BadRequest("; ".join(problems) or "bad request"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if intel_scope(request.url.path) and exc.status_code in (404, 405):
            raw = request.scope.get("raw_path") or request.url.path.encode()
            return express_not_found(request.method, raw.decode("latin-1"))
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(EaaError)
    async def eaa_error(request: Request, exc: EaaError) -> Response:
        log.error("unexpected %s on %s: %s", exc.code, request.url.path, exc)
        if intel_scope(request.url.path):
            return intel_error(INTEL_INTERNAL_ERROR, exc.code, str(exc))
        return error_response(502 if exc.code.startswith("UPSTREAM") else 500, exc.code, str(exc))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s", request.url.path)
        if intel_scope(request.url.path):
            return intel_error(INTEL_INTERNAL_ERROR, "INTERNAL_ERROR", "internal error (see the server log)")
        return error_response(500, "INTERNAL_ERROR", "internal error (see the server log)")

    for tee, api in (("sgx", 3), ("sgx", 4), ("tdx", 4)):
        app.include_router(_intel_router(service, tee, api))
    for api in (3, 4):
        app.include_router(_registration_router(service, api, tokens, registration_limiter))
    app.include_router(_kds_router(service))
    app.include_router(_admin_router(service, tokens))

    @app.get("/healthz", tags=["operations"], summary="Liveness, storage and upstream health",
             responses={503: {"description": "storage unavailable"}})
    def healthz() -> JSONResponse:
        """``degraded`` (still 200: cached data is served) while an upstream's circuit is not closed."""
        upstreams = service.upstream.states() if service.upstream is not None else {}
        try:
            service.store.ping()
            n = service.store.count()
        except Exception as e:  # noqa: BLE001
            return JSONResponse({"status": "unavailable", "mode": service.mode.value, "upstream": upstreams,
                                 "error": f"storage: {type(e).__name__}"}, status_code=503)
        status = "ok" if all(v == "closed" for v in upstreams.values()) else "degraded"
        return JSONResponse({"status": status, "mode": service.mode.value, "records": n, "upstream": upstreams})

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    def metrics() -> Response:
        return Response(service.metrics.render(service.store.count), media_type=METRICS_CONTENT_TYPE)

    app.add_middleware(MetricsMiddleware, service=service)
    app.add_middleware(FirstQueryValueMiddleware)
    app.add_middleware(RequestIdMiddleware)
    return app
