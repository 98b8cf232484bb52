"""Shared fixtures for the PCCS and collateral-client tests: fake upstreams serving the vectors' files.

``FakeUpstream`` is deliberately independent of eaa's own server code: a stdlib HTTP server that
answers Intel PCS/PCCS (or AMD KDS) paths from a table, counts every request, and can be switched
to corrupt its answers or be shut down, so the tests observe eaa-pccs from the outside.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from _vectors import collateral, get_vector, quote_bytes, require_vectors
from eaa.collateral.bundle import Collateral
from eaa.collateral.kds import KdsClient
from eaa.collateral.pcs import PcsClient
from eaa.formats.quote import parse_quote
from eaa.formats.tcb_info import TcbInfo
from eaa.pki.trust import anchor_from_file, default_anchors
from eaa.services.pccs import Mode, PccsServer, PccsService, create_app, open_store
from eaa.services.pccs.upstream import Upstream

# (status, body, headers)
Reply = tuple[int, bytes, dict[str, str]]
Route = Callable[[dict[str, str]], Reply]


def enc(pem: str) -> str:
    return quote(pem, safe="-_.!~*'()")


def test_support_module_loads() -> None:
    """Keeps pytest from reporting this helper module as empty."""
    assert callable(enc)


@dataclass
class FakeUpstream:
    routes: dict[str, Route]
    hits: Counter[str] = field(default_factory=Counter)
    corrupt: set[str] = field(default_factory=set)
    fail_status: int | None = None

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                fake.hits[parts.path] += 1
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                route = fake.routes.get(parts.path)
                if fake.fail_status is not None:
                    status, body, headers = fake.fail_status, b"upstream failure", {}
                elif route is None:
                    status, body, headers = 404, b"no such path", {}
                else:
                    status, body, headers = route(query)
                    if parts.path in fake.corrupt and status == 200:
                        body = corrupt_body(body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        self.running = True

    @property
    def total(self) -> int:
        return sum(self.hits.values())

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.running = False


def corrupt_body(body: bytes) -> bytes:
    """Flip one signature digit of signed JSON, or one byte near the end of DER/PEM."""
    text = body.decode("latin-1")
    i = text.find('"signature":"')
    if i >= 0:
        j = i + len('"signature":"') + 10
        return (text[:j] + ("0" if text[j] != "0" else "1") + text[j + 1:]).encode("latin-1")
    b = bytearray(body)
    b[-10] ^= 0x01
    return bytes(b)


def signed(key: str, body: str, sig: bytes) -> bytes:
    return ('{"' + key + '":' + body + ',"signature":"' + sig.hex() + '"}').encode()


@dataclass(frozen=True)
class VectorCase:
    vid: str
    vector: dict[str, Any]
    quote: bytes
    collateral: Collateral
    check_crl: bool
    tee: str
    fmspc: str
    api: int  # 4 for TCB info v3, 3 for v2
    anchors: tuple[Any, ...]
    verify_at: int
    pck_leaf: str | None  # for certification data types 1-3
    pck_issuer_chain: str | None


def vector_case(vid: str) -> VectorCase:
    d = require_vectors()
    v = get_vector(vid)
    raw = quote_bytes(v)
    coll, check_crl = collateral(v)
    info = TcbInfo.from_body(coll.tcb_info, coll.tcb_info_signature)
    anchors = (anchor_from_file(d / v["trusted_root_ca"]),) if v.get("trusted_root_ca") else default_anchors()
    leaf = chain = None
    if vid.startswith("intel-qvl-sample/"):
        leaf = (d / "intel-qvl-sample/sgx/pckCert.pem").read_text()
        chain = (d / "intel-qvl-sample/sgx/pckSignChain.pem").read_text()
    return VectorCase(vid, v, raw, coll, check_crl, parse_quote(raw).tee, info.fmspc.hex().upper(),
                      4 if info.version == 3 else 3, anchors, int(v["verify_at"]), leaf, chain)


def intel_routes(case: VectorCase, *, versions: tuple[int, ...] | None = None) -> dict[str, Route]:
    """PCS/PCCS routes serving one vector's collateral (raw PCS files where the vector has them)."""
    d = require_vectors()
    c = case.collateral
    src = case.vector["collateral"]
    tcb_body = (d / src["tcb_info"]).read_bytes() if "tcb_info" in src else signed(
        "tcbInfo", c.tcb_info, c.tcb_info_signature)
    qe_body = (d / src["qe_identity"]).read_bytes() if "qe_identity" in src else signed(
        "enclaveIdentity", c.qe_identity, c.qe_identity_signature)
    versions = versions or (case.api,)
    from eaa.collateral.validate import pck_ca_type
    from eaa.pki.chain import load_pem_chain

    ca = pck_ca_type(load_pem_chain(c.pck_crl_issuer_chain, "x")[0])
    routes: dict[str, Route] = {}
    for api in versions:
        tcb_header = "TCB-Info-Issuer-Chain" if api >= 4 else "SGX-TCB-Info-Issuer-Chain"

        def tcb(q: dict[str, str], h: str = tcb_header) -> Reply:
            if q.get("fmspc", "").upper() != case.fmspc:
                return 404, b"", {}
            return 200, tcb_body, {h: enc(c.tcb_info_issuer_chain), "Content-Type": "application/json"}

        def qe(q: dict[str, str]) -> Reply:
            return 200, qe_body, {"SGX-Enclave-Identity-Issuer-Chain": enc(c.qe_identity_issuer_chain)}

        def pckcrl(q: dict[str, str]) -> Reply:
            if q.get("ca", "").lower() != ca or c.pck_crl is None:
                return 404, b"", {}
            body = c.pck_crl if q.get("encoding") == "der" else c.pck_crl.hex().encode()
            return 200, body, {"SGX-PCK-CRL-Issuer-Chain": enc(c.pck_crl_issuer_chain)}

        def rootcacrl(q: dict[str, str], api: int = api) -> Reply:
            if c.root_ca_crl is None:
                return 404, b"", {}
            return 200, c.root_ca_crl if api >= 4 else c.root_ca_crl.hex().encode(), {}

        def pckcert(q: dict[str, str]) -> Reply:
            if case.pck_leaf is None:
                return 404, b"", {}
            missing = [k for k in ("qeid", "cpusvn", "pcesvn", "pceid") if not q.get(k)]
            if missing:
                return 400, b"missing " + ",".join(missing).encode(), {}
            return 200, case.pck_leaf.encode(), {"SGX-PCK-Certificate-Issuer-Chain": enc(case.pck_issuer_chain or ""),
                                                 "SGX-TCBm": q["cpusvn"].upper() + q["pcesvn"].upper(),
                                                 "SGX-FMSPC": case.fmspc, "SGX-PCK-Certificate-CA-Type": ca}

        base = f"/{case.tee}/certification/v{api}"
        routes[f"{base}/tcb"] = tcb
        routes[f"{base}/qe/identity"] = qe
        routes[f"/sgx/certification/v{api}/pckcrl"] = pckcrl
        routes[f"/sgx/certification/v{api}/rootcacrl"] = rootcacrl
        routes[f"/sgx/certification/v{api}/pckcert"] = pckcert
    return routes


@contextmanager
def fake_upstream(routes: dict[str, Route]) -> Iterator[FakeUpstream]:
    up = FakeUpstream(routes)
    try:
        yield up
    finally:
        up.stop()


def make_service(db: str, *, mode: Mode, upstream_url: str | None = None, kds_url: str | None = None,
                 anchors: Any = None, trusted_arks: Any = None, clock: Callable[[], float] = time.time,
                 min_refresh: float = 600.0) -> PccsService:
    anchors = tuple(anchors or default_anchors())
    up = None
    if mode is not Mode.OFFLINE:
        pcs = PcsClient(upstream_url, anchors=anchors, retries=1, retry_delay=0.01, timeout=5,
                        clock=clock, root_crl_from_dp=False) if upstream_url else None
        kds = KdsClient(kds_url, trusted_arks=trusted_arks, retries=1, retry_delay=0.01, timeout=5,
                        clock=clock) if kds_url else None
        up = Upstream(pcs, kds, anchors=anchors, trusted_arks=trusted_arks, clock=clock)
    return PccsService(open_store(db), mode=mode, upstream=up, anchors=anchors, trusted_arks=trusted_arks,
                       clock=clock, min_refresh=min_refresh)


@contextmanager
def running(service: PccsService, *, admin_token: str | None = None, certfile: str | None = None,
            keyfile: str | None = None) -> Iterator[PccsServer]:
    server = PccsServer(create_app(service, admin_token=admin_token), certfile=certfile, keyfile=keyfile).start()
    try:
        yield server
    finally:
        server.stop()
        service.store.close()


def client_for(url: str, case: VectorCase, **kw: Any) -> PcsClient:
    return PcsClient(url, anchors=case.anchors, retries=0, timeout=5, clock=lambda: float(case.verify_at),
                     root_crl_from_dp=False, **kw)


def outcome(fn: Callable[[], Any]) -> Any:
    """A verification's result as a dict, or its error code: what 'the same result' compares."""
    from eaa.errors import EaaError

    try:
        return fn().to_dict()
    except EaaError as e:
        return {"error": e.code}


# Intel PCCS constants/pccs_status_code.js: the body its middleware/error.js sends for each status (written
# out here, not imported from eaa, so that the tests hold eaa-pccs to Intel's text); 413 and 429 are eaa-pccs's
INTEL_BODIES = {
    200: "Operation successful.",
    400: "Invalid request parameters.",
    401: "Authentication failed.",
    404: "No cache data for this platform.",
    460: "The integrity of the data can't be verified.",
    461: "The platform was not found in the cache.",
    462: "Certificates are not available for certain TCBs.",
    500: "Internal server error occurred.",
    503: "Server is currently unable to process the request.",
    504: "Unable to retrieve the collateral from the Intel SGX PCS.",
    413: "request entity too large",
    429: "Too many requests.",
}
EXPRESS_TEXT = "text/html; charset=utf-8"  # Express's res.send(string)


def refresh_counts(resp: Any) -> dict[str, int]:
    """A refresh's counts (EAA-Refresh: ``refreshed=1, unchanged=0, kept=0, failed=0``); the body is Intel's."""
    assert resp.content == INTEL_BODIES[resp.status_code].encode(), resp.content
    return {k: int(v) for k, _, v in (item.partition("=") for item in resp.headers["eaa-refresh"].split(", "))}


def registered(resp: Any) -> str:
    """A registration's state (EAA-Platform-State) once Intel's "Operation successful." was answered."""
    assert resp.status_code == 200 and resp.content == b"Operation successful.", (resp.status_code, resp.text)
    assert resp.headers["content-type"] == EXPRESS_TEXT
    return str(resp.headers["eaa-platform-state"])


def error_json(resp: Any) -> dict[str, str]:
    """eaa-pccs's code and reason of an error: from the JSON body on eaa's own routes; on Intel's routes
    (after checking the body is Intel's text for the status) from the EAA-Error-* headers."""
    if resp.headers.get("content-type", "").startswith("application/json"):
        obj = json.loads(resp.content)
        return obj["error"]  # type: ignore[no-any-return]
    assert resp.headers["content-type"] == EXPRESS_TEXT, resp.headers
    assert resp.text == INTEL_BODIES[resp.status_code], (resp.status_code, resp.text)
    return {"code": resp.headers["eaa-error-code"], "message": resp.headers.get("eaa-error-message", "")}
