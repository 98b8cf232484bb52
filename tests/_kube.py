"""A fake Kubernetes API server for discovery tests: HTTPS on 127.0.0.1 with its own CA, serving a pod
list the way the real one does (label selector, limit/continue pages, Status objects on errors), and
recording every request so tests can check what shelter sent."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import ipaddress
import json
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DATA = Path(__file__).resolve().parent / "data" / "kubernetes"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.fake-service-account-token.c2lnbmF0dXJl"


def recorded_pods() -> dict[str, Any]:
    """The pod list of namespace eaa-system in the form a v1.33 API server answers ``GET .../pods``: every field
    a DaemonSet pod with hostNetwork carries, the node addresses taken from the documentation range."""
    return json.loads((DATA / "pods-eaa-system.json").read_text())


@dataclass
class Pki:
    """A CA, the API server's certificate (127.0.0.1) and a client certificate, all PEM."""

    ca_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes

    def write(self, d: Path) -> dict[str, Path]:
        d.mkdir(parents=True, exist_ok=True)
        out = {}
        for name in ("ca_pem", "server_cert_pem", "server_key_pem", "client_cert_pem", "client_key_pem"):
            out[name] = d / f"{name}.pem"
            out[name].write_bytes(getattr(self, name))
        return out


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_pki(cn: str = "kubernetes") -> Pki:
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{cn}-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))

    def leaf(name: str, usage: x509.ObjectIdentifier, san: x509.SubjectAlternativeName | None,
             serial: int) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
             .issuer_name(ca_name).public_key(key.public_key()).serial_number(serial)
             .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
        if san is not None:
            b = b.add_extension(san, critical=False)
        return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), _pem_key(key)

    server_cert, server_key = leaf("kube-apiserver", ExtendedKeyUsageOID.SERVER_AUTH, x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("kubernetes.default.svc")]), 2)
    client_cert, client_key = leaf("shelter", ExtendedKeyUsageOID.CLIENT_AUTH, None, 3)
    return Pki(ca.public_bytes(serialization.Encoding.PEM), server_cert, server_key, client_cert, client_key)


def _matches(labels: dict[str, str], selector: str) -> bool:
    """Equality-based selectors (``a=b,c==d,e!=f``): all that shelter's default and the tests use."""
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        else:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
    return True


@dataclass
class FakeApi:
    pki: Pki
    pods: dict[str, Any] = field(default_factory=recorded_pods)
    namespace: str = "eaa-system"
    token: str | None = TOKEN  # None: client-certificate authentication only
    require_client_cert: bool = False
    allowed: bool = True  # False: 403 as RBAC answers a service account without "list pods"
    body_override: bytes | None = None  # answer this instead of the pod list
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def page(self, path: str, query: dict[str, list[str]], headers: dict[str, str],
             peer_cert: Any) -> tuple[int, bytes]:
        self.requests.append({"path": path, "query": query, "headers": headers, "client_cert": peer_cert})
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        if self.require_client_cert and not peer_cert:
            return 401, _status(401, "Unauthorized", "Unauthorized")
        if not self.allowed:
            return 403, _status(403, "Forbidden", 'pods is forbidden: User "system:serviceaccount:eaa-system:default" '
                                               f'cannot list resource "pods" in API group "" in the namespace '
                                               f'"{self.namespace}"')
        if self.body_override is not None:
            return 200, self.body_override
        prefix = "/api/v1/namespaces/"
        if not path.startswith(prefix) or not path.endswith("/pods"):
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        ns = path[len(prefix):-len("/pods")]
        doc = copy.deepcopy(self.pods)
        items = [p for p in doc["items"] if ns == self.namespace
                 and _matches(p["metadata"].get("labels", {}), query.get("labelSelector", [""])[0])]
        start = int(query.get("continue", ["0"])[0] or 0)
        limit = int(query.get("limit", ["0"])[0] or 0) or len(items)
        doc["items"] = items[start:start + limit]
        doc["metadata"] = {"resourceVersion": doc["metadata"].get("resourceVersion", "1")}
        if start + limit < len(items):
            doc["metadata"]["continue"] = str(start + limit)
            doc["metadata"]["remainingItemCount"] = len(items) - start - limit
        return 200, json.dumps(doc).encode()

    def kubeconfig(self, path: Path, *, namespace: str | None = "eaa-system", client_cert: bool = False,
                   ca: bytes | None = None, extra_cluster: dict[str, Any] | None = None,
                   extra_user: dict[str, Any] | None = None) -> Path:
        user: dict[str, Any] = {}
        if self.token is not None:
            user["token"] = self.token
        if client_cert:
            user["client-certificate-data"] = base64.b64encode(self.pki.client_cert_pem).decode()
            user["client-key-data"] = base64.b64encode(self.pki.client_key_pem).decode()
        user.update(extra_user or {})
        cluster = {"server": self.url,
                   "certificate-authority-data": base64.b64encode(ca or self.pki.ca_pem).decode(),
                   **(extra_cluster or {})}
        ctx: dict[str, Any] = {"cluster": "kind-eaa", "user": "kind-eaa"}
        if namespace:
            ctx["namespace"] = namespace
        doc = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": "kind-eaa",
               "clusters": [{"name": "kind-eaa", "cluster": cluster}],
               "users": [{"name": "kind-eaa", "user": user}],
               "contexts": [{"name": "kind-eaa", "context": ctx}]}
        path.write_text(json.dumps(doc, indent=1))  # JSON is YAML, as kubectl reads it
        return path


def _status(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code}).encode()


@contextmanager
def serving(api: FakeApi, host: str = "127.0.0.1") -> Iterator[FakeApi]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            u = urlsplit(self.path)
            peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
            code, body = api.page(u.path, parse_qs(u.query), {k.lower(): v for k, v in self.headers.items()}, peer)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="fake-kube-") as d:
        files = api.pki.write(Path(d))
        ctx.load_cert_chain(files["server_cert_pem"], files["server_key_pem"])
        if api.require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=str(files["ca_pem"]))
    srv = ThreadingHTTPServer((host, 0), Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    api.url = f"https://{host}:{srv.server_address[1]}"
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield api
    finally:
        srv.shutdown()
        srv.server_close()
