"""The eaa-pccs HTTP API (FastAPI): Intel's PCCS API v3/v4 for SGX and TDX, AMD KDS paths, admin and health.

Paths, query parameters and response headers are those of Intel's PCCS (shared/docs/dcap-reference.md
§3), so QCNL, dcap-qvl and go-tdx-guest clients work unchanged; AMD paths are KDS's own. Handlers are
synchronous (run in the server's thread pool) because storage and upstream calls block. Every error
is JSON ``{"error": {"code", "message"}}`` with a meaningful status; bad input is always a 400.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Any, Awaitable, Callable, MutableMapping
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...collateral.bundle import Collateral
from ...errors import EaaError
from .errors import BadRequest, Forbidden, PayloadTooLarge, ServiceError, Unauthorized
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .platforms import CPU_SVN_SIZE, ENC_PPID_SIZE, PCE_ID_SIZE, PCE_SVN_SIZE, PLATFORM_MANIFEST_MAX, QE_ID_MAX
from ...formats.signed_json import loads_strict
from .platform_collateral import records_from_platform_collateral
from .records import Record, parse_bundle, records_from_collateral, bundle_json
from .service import Answer, PccsService, encoding_param

log = logging.getLogger("eaa.pccs")

MAX_IMPORT_SIZE = 64 << 20
ADMIN_HEADER = "admin-token"
USER_HEADER = "user-token"
PEM_TYPE = "application/x-pem-file"
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


def encode_chain(pem: str) -> str:
    """Issuer chains travel URL-percent-encoded in headers, as Intel's PCS sends them."""
    return quote(pem, safe="-_.!~*'()")


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


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


def _intel_router(service: PccsService, tee: str, api: int) -> APIRouter:
    r = APIRouter(prefix=f"/{tee}/certification/v{api}", tags=[f"{tee.upper()} v{api}"], responses=_ERRORS)
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
           responses={200: {"content": {CRL_TYPE: {}, PEM_TYPE: {}}}})
    def pckcrl(ca: str = Query(..., description="processor or platform"),
               encoding: str | None = Query(None, description="der for DER; hex-encoded DER otherwise (as PCCS)")
               ) -> Response:
        ans = service.pck_crl(api, ca, encoding)
        der = encoding_param(encoding) == "der"
        body = ans.record.body if der else ans.record.body.hex().encode()
        return _served(ans, body, CRL_TYPE if der else PEM_TYPE,
                       {"SGX-PCK-CRL-Issuer-Chain": encode_chain(ans.record.meta.get("issuer_chain", ""))})

    @r.get("/rootcacrl", summary="Root CA CRL (hex text on v3, DER on v4)", response_class=Response,
           responses={200: {"content": {CRL_TYPE: {}, "text/plain": {}}}})
    def rootcacrl() -> Response:
        ans = service.root_ca_crl(api)
        if api >= 4:
            return _served(ans, ans.record.body, CRL_TYPE)
        return _served(ans, ans.record.body.hex().encode(), "text/plain")

    @r.get("/pckcert", summary="PCK certificate for a platform's raw TCB", response_class=Response,
           responses={200: {"content": {PEM_TYPE: {}}}})
    def pckcert(qeid: str = Query(..., description="QE ID, hex"),
                cpusvn: str = Query(..., description="32 hex digits"),
                pcesvn: str = Query(..., description="4 hex digits, little-endian"),
                pceid: str = Query(..., description="4 hex digits"),
                encrypted_ppid: str | None = Query(None, description="encrypted PPID, 768 hex digits")) -> Response:
        ans = service.pck_cert(api, qeid, cpusvn, pcesvn, pceid, encrypted_ppid)
        m = ans.record.meta
        return _served(ans, ans.record.body, PEM_TYPE, {
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


def _token_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison (of digests, so the token's length does not leak either)."""
    return bool(expected) and bool(given) and hmac.compare_digest(
        hashlib.sha256((given or "").encode()).digest(), hashlib.sha256((expected or "").encode()).digest())


def _check_admin(expected: str | None, given: str | None) -> None:
    if not expected:
        raise Forbidden("the admin API is disabled (start eaa-pccs with an admin token)")
    if not _token_matches(expected, given):
        raise Unauthorized(f"missing or wrong {ADMIN_HEADER} header")


def _check_user(admin: str | None, user: str | None, user_given: str | None, admin_given: str | None) -> None:
    """Registration is open unless a user token is configured; then the user or the admin token is needed."""
    if not user:
        return
    if _token_matches(user, user_given) or _token_matches(admin, user_given) or _token_matches(admin, admin_given):
        return
    raise Unauthorized(f"missing or wrong {USER_HEADER} header")


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


def _registration_router(service: PccsService, api: int, admin_token: str | None,
                         user_token: str | None) -> APIRouter:
    """Intel PCCS's /platforms and /refresh, mounted (as PCCS's routes/index.js does) under the SGX prefixes."""
    r = APIRouter(prefix=f"/sgx/certification/v{api}", tags=[f"SGX v{api} admin"], responses=_ERRORS)
    unauthorized: dict[int | str, dict[str, Any]] = {401: _ERRORS[400] | {"description": "missing or wrong token"}}
    admin_auth = {**unauthorized, 403: _ERRORS[400] | {"description": "admin API disabled"}}

    @r.post("/platforms", summary="Register a platform (user token when one is configured); LAZY fetches its PCK cert",
            responses={**unauthorized, 200: {"description": "registered; state cached or pending",
                                             "content": {JSON_TYPE: {}}}})
    def register(body: PlatformRegistration,
                 user_token_h: str | None = Header(None, alias=USER_HEADER),
                 admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> JSONResponse:
        _check_user(admin_token, user_token, user_token_h, admin_token_h)
        return JSONResponse(service.register_platform(api, body.model_dump()))

    @r.get("/platforms", summary="Registered platforms (admin)",
           responses={**admin_auth, 200: {"content": {JSON_TYPE: {}}}})
    def platforms(admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> JSONResponse:
        _check_admin(admin_token, admin_token_h)
        return JSONResponse(service.platforms())

    @r.get("/refresh", summary="Re-fetch cached collateral from the upstream (admin, LAZY only)",
           responses={**admin_auth, 409: _ERRORS[400] | {"description": "OFFLINE: no upstream to refresh from"},
                      200: {"content": {JSON_TYPE: {}}}})
    def refresh(type: str | None = Query(None, description="certs (also PCK certificates) or fmspcs (TCB infos)"),
                fmspc: list[str] | None = Query(None, description="FMSPCs to refresh (repeated, or [A,B])"),
                admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> JSONResponse:
        _check_admin(admin_token, admin_token_h)
        return JSONResponse(service.refresh(api, type, fmspc).to_json())

    @r.put("/platformcollateral", summary="Upload PccsAdminTool's platform collateral document (admin)",
           responses={**admin_auth, 413: _ERRORS[400] | {"description": "too large"},
                      200: {"content": {JSON_TYPE: {}}}})
    async def platform_collateral(request: Request,
                                  admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> JSONResponse:
        _check_admin(admin_token, admin_token_h)
        body = await _read_import(request)
        try:
            records = records_from_platform_collateral(loads_strict(body.decode("utf-8", "replace"), "document"),
                                                       api, now=service.clock())
        except EaaError as e:
            raise BadRequest(f"cannot import the platform collateral: {e}") from None
        from starlette.concurrency import run_in_threadpool

        n = await run_in_threadpool(service.import_records, records)
        return JSONResponse({"imported": n})

    return r


async def _read_import(request: Request) -> bytes:
    """The request body, refused (413) beyond MAX_IMPORT_SIZE whether or not Content-Length says so."""
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > MAX_IMPORT_SIZE):
        raise PayloadTooLarge(f"import documents are limited to {MAX_IMPORT_SIZE} bytes")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_IMPORT_SIZE:
            raise PayloadTooLarge(f"import documents are limited to {MAX_IMPORT_SIZE} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _admin_router(service: PccsService, admin_token: str | None) -> APIRouter:
    r = APIRouter(prefix="/eaa/v1", tags=["admin"])
    auth: dict[int | str, dict[str, Any]] = {401: _ERRORS[400] | {"description": "missing or wrong admin token"},
            403: _ERRORS[400] | {"description": "admin API disabled"}}

    @r.post("/import", summary="Import an eaa-pccs bundle or QuoteCollateralV3 JSON (admin)",
            responses={**_ERRORS, **auth, 413: _ERRORS[400] | {"description": "too large"}})
    async def import_(request: Request, admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> JSONResponse:
        _check_admin(admin_token, admin_token_h)
        body = await _read_import(request)
        try:
            records = parse_import_body(body, now=service.clock())
        except EaaError as e:
            raise BadRequest(f"cannot import: {e}") from None
        from starlette.concurrency import run_in_threadpool

        n = await run_in_threadpool(service.import_records, records)
        return JSONResponse({"imported": n})

    @r.get("/export", summary="Export every record as an eaa-pccs bundle (admin)", response_class=Response,
           responses={**auth, 200: {"content": {JSON_TYPE: {}}}})
    def export(admin_token_h: str | None = Header(None, alias=ADMIN_HEADER)) -> Response:
        _check_admin(admin_token, admin_token_h)
        return Response(bundle_json(service.export_records(), now=service.clock()), media_type=JSON_TYPE)

    return r


def create_app(service: PccsService, *, admin_token: str | None = None, user_token: str | None = None) -> FastAPI:
    """The ASGI application; ``admin_token`` enables /eaa/v1/import, /eaa/v1/export, GET /platforms,
    /refresh and PUT /platformcollateral; ``user_token`` (if given) is required, besides the admin token,
    for POST /platforms."""
    app = FastAPI(title="eaa-pccs", version="1.0",
                  description="Provisioning Certificate Caching Service: Intel PCCS API v3/v4 (SGX, TDX) and AMD KDS",
                  docs_url=None, redoc_url=None)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "path", "header"))
            problems.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
        return error_response(400, "BAD_REQUEST", "; ".join(problems) or "bad request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(EaaError)
    async def eaa_error(request: Request, exc: EaaError) -> JSONResponse:
        log.error("unexpected %s on %s: %s", exc.code, request.url.path, exc)
        return error_response(502 if exc.code.startswith("UPSTREAM") else 500, exc.code, str(exc))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return error_response(500, "INTERNAL_ERROR", "internal error (see the server log)")

    for tee, api in (("sgx", 3), ("sgx", 4), ("tdx", 4)):
        app.include_router(_intel_router(service, tee, api))
    for api in (3, 4):
        app.include_router(_registration_router(service, api, admin_token, user_token))
    app.include_router(_kds_router(service))
    app.include_router(_admin_router(service, admin_token))

    @app.get("/healthz", tags=["operations"], summary="Liveness and storage health",
             responses={503: {"description": "storage unavailable"}})
    def healthz() -> JSONResponse:
        try:
            service.store.ping()
            n = service.store.count()
        except Exception as e:  # noqa: BLE001
            return JSONResponse({"status": "unavailable", "mode": service.mode.value, "error": str(e)},
                                status_code=503)
        return JSONResponse({"status": "ok", "mode": service.mode.value, "records": n})

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    def metrics() -> Response:
        return Response(service.metrics.render(service.store.count), media_type=METRICS_CONTENT_TYPE)

    app.add_middleware(MetricsMiddleware, service=service)
    return app
