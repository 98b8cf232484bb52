"""Which nodes to attest, read from the Kubernetes API: the inclavared pods and their nodes' addresses.

inclavared runs as a DaemonSet with ``hostNetwork``, so a pod's ``status.hostIP`` is the address
shelter dials. The pods are listed with one plain HTTPS request per page
(``GET /api/v1/namespaces/NS/pods?labelSelector=...``), with the credentials kubectl would use:
the files in ``$KUBECONFIG`` (merged as kubectl merges them: the first file to define a name wins),
else ``~/.kube/config``, else the in-cluster service account. A kubeconfig user authenticates with a
bearer token, a client certificate, or a credential plugin (``exec``, run as client-go runs it).

The pod list decides which nodes get attested, so this fails closed: the API server's certificate is
always verified (a kubeconfig that says ``insecure-skip-tls-verify`` is refused), a matching pod that
is not running is reported as a failed node rather than left out, and finding no pod at all is an
error rather than an empty, vacuously successful attestation.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
import ssl
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from ..attest._io import read_bounded
from ..attest.errors import TeeInterfaceError
from ..errors import ConfigError, ProtocolError, TransportError
from ..records import record

DEFAULT_SELECTOR = "k8s-app=inclavared"
DEFAULT_PORT = 1236  # inclavared's --listen port in the seed's DaemonSet
PORT_NAME = "attestation"  # a container port of this name overrides DEFAULT_PORT
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MAX_CONFIG_FILE = 1 << 20
MAX_PAGE_BYTES = 32 << 20
PAGE_LIMIT = 500
MAX_PAGES = 200
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
EXEC_TIMEOUT = 60.0
MAX_EXEC_OUTPUT = 1 << 20
_UNSUPPORTED_USER = {
    "auth-provider": "auth providers",
    "username": "basic authentication",
    "password": "basic authentication",
}


@record
class ApiCredentials:
    """Where the API server is and how to prove who we are to it (PEM bytes, never file names, so that
    relative paths are resolved once, where the kubeconfig was read)."""

    server: str
    namespace: str  # the context's or service account's namespace: the default for --namespace
    source: str  # for messages: which kubeconfig/context, or the service account
    ca_pem: bytes | None = None  # None: the system's trust store
    token: str | None = field(default=None, repr=False)
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = field(default=None, repr=False)
    tls_server_name: str | None = None


@record
class InclavaredPod:
    """One pod of the API server's pod list: its node, whether it can be attested, and the address shelter dials."""

    name: str
    node: str
    phase: str
    host_ip: str | None
    port: int
    terminating: bool

    @property
    def attestable(self) -> bool:
        return self.phase == "Running" and bool(self.host_ip) and not self.terminating

    @property
    def address(self) -> str:
        host = self.host_ip or ""
        return f"tcp://[{host}]:{self.port}" if ":" in host else f"tcp://{host}:{self.port}"

    @property
    def problem(self) -> str:
        """Why this pod's node cannot be attested (empty when it can)."""
        if self.terminating:
            return f"pod {self.name} on node {self.node or '?'} is terminating"
        if self.phase != "Running":
            return f"pod {self.name} on node {self.node or '?'} is {self.phase or 'in no phase'}, not Running"
        if not self.host_ip:
            return f"pod {self.name} on node {self.node or '?'} has no host IP"
        return ""


# ---- credentials ----

def load_credentials(env: Mapping[str, str] | None = None, home: Path | None = None,
                     service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> ApiCredentials:
    """kubectl's order: ``$KUBECONFIG`` files, else ``~/.kube/config``, else the in-cluster service account."""
    env = os.environ if env is None else env
    listed = [Path(p) for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        existing = [p for p in listed if p.exists()]
        if not existing:
            raise ConfigError(f"no kubeconfig file found: KUBECONFIG names {', '.join(map(str, listed))}")
        return kubeconfig_credentials(existing)
    default = (home if home is not None else Path(env.get("HOME") or Path.home())) / ".kube" / "config"
    if default.exists():
        return kubeconfig_credentials([default])
    if env.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_credentials(env, service_account_dir)
    raise ConfigError("no Kubernetes credentials: set KUBECONFIG, create ~/.kube/config, or run in a pod with a "
                      "service account")


def _read(path: Path, what: str) -> bytes:
    """A whole credentials file, bounded; a missing or oversized one is a configuration error."""
    try:
        return read_bounded(path, MAX_CONFIG_FILE, what)
    except TeeInterfaceError as e:
        raise ConfigError(str(e)) from None


def in_cluster_credentials(env: Mapping[str, str], service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> ApiCredentials:
    """The pod's own service account, as client-go's rest.InClusterConfig reads it."""
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port.isdigit():
        raise ConfigError("in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
    token = _read(service_account_dir / "token", "service account token").decode("ascii", "replace").strip()
    if not token:
        raise ConfigError(f"in-cluster: the service account token {service_account_dir / 'token'} is empty")
    ns_file = service_account_dir / "namespace"
    namespace = _read(ns_file, "service account namespace").decode("utf-8", "replace").strip() \
        if ns_file.exists() else ""
    return ApiCredentials(server=f"https://{_url_host(host)}:{port}", namespace=namespace or "default",
                          source="the in-cluster service account",
                          ca_pem=_read(service_account_dir / "ca.crt", "service account CA"), token=token)


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def _named(doc: dict[str, Any], key: str, path: Path) -> list[tuple[str, dict[str, Any]]]:
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise ConfigError(f"kubeconfig {path}: {key} is not a list")
    out = []
    for item in items:
        inner = key[:-1]  # clusters -> cluster, users -> user, contexts -> context
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or \
                not isinstance(item.get(inner) or {}, dict):
            raise ConfigError(f"kubeconfig {path}: malformed entry in {key}")
        out.append((item["name"], {**(item.get(inner) or {}), "_dir": path.parent}))
    return out


def kubeconfig_credentials(paths: list[Path], context: str | None = None) -> ApiCredentials:
    """The current (or named) context of the merged kubeconfig files."""
    import yaml

    clusters: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, Any]] = {}
    contexts: dict[str, dict[str, Any]] = {}
    current = context
    for path in paths:
        try:
            doc = yaml.safe_load(_read(path, "kubeconfig")) or {}
        except yaml.YAMLError:
            raise ConfigError(f"kubeconfig {path} is not valid YAML") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {path} is not a mapping")
        for section, table in (("clusters", clusters), ("users", users), ("contexts", contexts)):
            for name, value in _named(doc, section, path):
                table.setdefault(name, value)  # the first file to define a name wins, as in kubectl
        if not current and isinstance(doc.get("current-context"), str) and doc["current-context"]:
            current = doc["current-context"]
    where = ", ".join(map(str, paths))
    if not current:
        raise ConfigError(f"kubeconfig {where}: no current-context")
    ctx = contexts.get(current)
    if ctx is None:
        raise ConfigError(f"kubeconfig {where}: context {current!r} is not defined")
    cluster = clusters.get(str(ctx.get("cluster", "")))
    if cluster is None:
        raise ConfigError(f"kubeconfig {where}: context {current!r} names an undefined cluster")
    user: dict[str, Any] = {"_dir": cluster["_dir"]}
    if ctx.get("user"):
        if str(ctx["user"]) not in users:
            raise ConfigError(f"kubeconfig {where}: context {current!r} names an undefined user")
        user = users[str(ctx["user"])]
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith("https://"):
        raise ConfigError(f"kubeconfig {where}: cluster of context {current!r} has no https:// server "
                          "(shelter only talks to an API server it can authenticate)")
    if cluster.get("insecure-skip-tls-verify"):
        raise ConfigError(f"kubeconfig {where}: context {current!r} sets insecure-skip-tls-verify; the pod list "
                          "decides which nodes are attested, so shelter only reads it from a verified API server")
    if cluster.get("proxy-url"):
        raise ConfigError(f"kubeconfig {where}: proxy-url is not supported")
    for entry, what in _UNSUPPORTED_USER.items():
        if user.get(entry):
            raise ConfigError(f"kubeconfig {where}: user of context {current!r} uses {what}, which shelter does not "
                              "support; use a bearer token or a client certificate")
    token = user.get("token") if isinstance(user.get("token"), str) else None
    if not token and user.get("tokenFile"):
        token = _read(_resolve(user, "tokenFile"), "token file").decode("ascii", "replace").strip() or None
    cert, key = _pem(user, "client-certificate", "client certificate"), _pem(user, "client-key", "client key")
    if not (token or cert or key) and user.get("exec"):
        token, cert, key = exec_credential(user["exec"], user["_dir"], f"kubeconfig {where}")
    namespace = ctx.get("namespace") if isinstance(ctx.get("namespace"), str) else ""
    return ApiCredentials(
        server=server.rstrip("/"), namespace=namespace or "default",
        source=f"kubeconfig {where} (context {current})",
        ca_pem=_pem(cluster, "certificate-authority", "CA certificate"),
        token=token, client_cert_pem=cert, client_key_pem=key,
        tls_server_name=cluster.get("tls-server-name") or None,
    )


def exec_credential(spec: Any, base_dir: Path, where: str) -> tuple[str | None, bytes | None, bytes | None]:
    """Run a kubeconfig credential plugin (``user.exec``, as EKS, GKE and AKS configure) the way client-go
    does, non-interactively, and take the token or client certificate from its ExecCredential."""
    if not isinstance(spec, dict) or not isinstance(spec.get("command"), str) or not spec["command"]:
        raise ConfigError(f"{where}: exec has no command")
    api = spec.get("apiVersion")
    if api not in EXEC_API_VERSIONS:
        raise ConfigError(f"{where}: exec apiVersion {str(api)[:80]!r} is not one of {', '.join(EXEC_API_VERSIONS)}")
    if spec.get("interactiveMode") == "Always":
        raise ConfigError(f"{where}: the credential plugin needs a terminal (interactiveMode Always)")
    command = spec["command"]
    if os.sep in command and not os.path.isabs(command):
        command = str(base_dir / command)  # relative to the kubeconfig file, as client-go resolves it
    args = [str(a) for a in spec.get("args") or []]
    env = dict(os.environ)
    for item in spec.get("env") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(f"{where}: malformed exec env entry")
        env[item["name"]] = str(item.get("value", ""))
    env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": api, "kind": "ExecCredential",
                                              "spec": {"interactive": False}})
    name = Path(spec["command"]).name
    try:
        r = subprocess.run([command, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=EXEC_TIMEOUT)
    except FileNotFoundError:
        hint = f" ({str(spec['installHint'])[:200]})" if spec.get("installHint") else ""
        raise ConfigError(f"{where}: credential plugin {name!r} not found{hint}") from None
    except OSError as e:
        raise ConfigError(f"{where}: cannot run credential plugin {name!r}: {e.strerror}") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{where}: credential plugin {name!r} did not finish in {EXEC_TIMEOUT:g}s") from None
    if r.returncode != 0:
        raise ConfigError(f"{where}: credential plugin {name!r} failed (exit {r.returncode})")
    try:
        if len(r.stdout) > MAX_EXEC_OUTPUT:
            raise ValueError
        cred = json.loads(r.stdout)
        status = cred["status"]
        if cred.get("kind") != "ExecCredential" or cred.get("apiVersion") != api or not isinstance(status, dict):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{where}: credential plugin {name!r} did not print an {api} ExecCredential") from None
    token = status.get("token") if isinstance(status.get("token"), str) and status["token"] else None
    cert, key = (status.get(k) for k in ("clientCertificateData", "clientKeyData"))
    pems = (cert.encode(), key.encode()) if isinstance(cert, str) and isinstance(key, str) and cert and key else \
        (None, None)
    if token is None and pems[0] is None:
        raise ConfigError(f"{where}: credential plugin {name!r} gave neither a token nor a client certificate")
    return token, *pems


def _resolve(entry: dict[str, Any], key: str) -> Path:
    p = Path(str(entry[key])).expanduser()
    return p if p.is_absolute() else entry["_dir"] / p  # relative to the kubeconfig file, as kubectl does


def _pem(entry: dict[str, Any], key: str, what: str) -> bytes | None:
    """``key-data`` (base64 PEM) wins over the file ``key``, as in kubectl."""
    data = entry.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"kubeconfig: {key}-data is not base64") from None
    if entry.get(key):
        return _read(_resolve(entry, key), what)
    return None


# ---- the API ----

def ssl_context(creds: ApiCredentials) -> ssl.SSLContext:
    """Verifies the API server against the kubeconfig's CA (or the system store); presents the client
    certificate when there is one. ``ssl`` loads a key only from a file: it lives in a private
    temporary directory for the duration of the call."""
    try:
        ctx = ssl.create_default_context(cadata=creds.ca_pem.decode("ascii")) if creds.ca_pem \
            else ssl.create_default_context()
    except (ssl.SSLError, ValueError, UnicodeDecodeError):
        raise ConfigError(f"{creds.source}: the CA certificate is not usable PEM") from None
    if creds.client_cert_pem or creds.client_key_pem:
        if not (creds.client_cert_pem and creds.client_key_pem):
            raise ConfigError(f"{creds.source}: a client certificate needs both the certificate and its key")
        with tempfile.TemporaryDirectory(prefix="eaa-kube-") as d:
            cert, key = Path(d) / "client.crt", Path(d) / "client.key"
            for p, data in ((cert, creds.client_cert_pem), (key, creds.client_key_pem)):
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            try:
                ctx.load_cert_chain(cert, key)
            except ssl.SSLError:
                raise ConfigError(f"{creds.source}: the client certificate and key are not a usable pair") from None
    return ctx


def _status_message(body: bytes) -> str:
    """The ``message`` of a Kubernetes Status object, bounded; never the raw body."""
    try:
        obj = json.loads(body)
    except ValueError:
        return ""
    msg = obj.get("message") if isinstance(obj, dict) else None
    return str(msg)[:300] if msg else ""


def list_pods(creds: ApiCredentials, namespace: str, selector: str, *, timeout: float = 10.0,
              transport: Any = None) -> list[dict[str, Any]]:
    """Every pod in ``namespace`` matching ``selector``, following ``continue`` tokens page by page."""
    import httpx

    headers = {"Accept": "application/json", "User-Agent": "eaa-shelter/0.1"}
    if creds.token:
        headers["Authorization"] = f"Bearer {creds.token}"
    extensions = {"sni_hostname": creds.tls_server_name} if creds.tls_server_name else {}
    url = f"{creds.server}/api/v1/namespaces/{_path_segment(namespace)}/pods"
    items: list[dict[str, Any]] = []
    cont: Any = ""  # the API's continue token, as the server wrote it
    with httpx.Client(verify=ssl_context(creds), timeout=httpx.Timeout(timeout), headers=headers,
                      follow_redirects=False, trust_env=False, transport=transport) as client:
        for _ in range(MAX_PAGES):
            params = {"labelSelector": selector, "limit": str(PAGE_LIMIT)}
            if cont:
                params["continue"] = cont
            try:
                with client.stream("GET", url, params=params, extensions=extensions) as resp:
                    body = b""
                    for chunk in resp.iter_bytes():
                        body += chunk
                        if len(body) > MAX_PAGE_BYTES:
                            raise ProtocolError(f"the Kubernetes API's pod list exceeds {MAX_PAGE_BYTES} bytes")
                    status = resp.status_code
            except httpx.TimeoutException:
                raise TransportError(f"the Kubernetes API at {creds.server} did not answer in time") from None
            except httpx.HTTPError as e:
                raise TransportError(f"cannot reach the Kubernetes API at {creds.server}: {e}") from None
            if status in (401, 403):
                why = "rejected the credentials" if status == 401 else f"does not allow listing pods in {namespace!r}"
                msg = _status_message(body)
                raise ConfigError(f"the Kubernetes API at {creds.server} {why} ({status}; credentials from "
                                  f"{creds.source})" + (f": {msg}" if msg else ""))
            if status != 200:
                msg = _status_message(body)
                raise TransportError(f"the Kubernetes API at {creds.server} answered {status}"
                                     + (f": {msg}" if msg else ""))
            try:
                doc = json.loads(body)
            except ValueError:
                raise ProtocolError("the Kubernetes API's pod list is not JSON") from None
            if not isinstance(doc, dict) or doc.get("kind", "PodList") != "PodList" or \
                    not isinstance(doc.get("items") or [], list):
                raise ProtocolError("the Kubernetes API did not answer with a PodList")
            items += doc.get("items") or []
            meta = doc.get("metadata") or {}
            cont = meta.get("continue") if isinstance(meta, dict) else ""
            if not cont:
                return items
            if not isinstance(cont, str):
                raise ProtocolError("the Kubernetes API's continue token is not a string")
    raise ProtocolError(f"the Kubernetes API's pod list did not end after {MAX_PAGES} pages")


def _path_segment(namespace: str) -> str:
    # a DNS-1123 label, as Kubernetes requires of namespace names; anything else never reaches the URL
    if not _NAMESPACE.fullmatch(namespace):
        raise ConfigError(f"bad namespace {namespace!r}: not a Kubernetes namespace name")
    return namespace


def pod_from_item(item: Any) -> InclavaredPod:
    if not isinstance(item, dict):
        raise ProtocolError("the Kubernetes API's pod list holds a non-object")
    meta, spec, status = (item.get(k) or {} for k in ("metadata", "spec", "status"))
    if not all(isinstance(x, dict) for x in (meta, spec, status)) or not isinstance(meta.get("name"), str):
        raise ProtocolError("the Kubernetes API's pod list holds a malformed pod")
    host_ip = status.get("hostIP") or None
    if host_ip is not None:
        try:
            host_ip = str(ipaddress.ip_address(host_ip))
        except ValueError:
            raise ProtocolError(f"pod {meta['name']}: status.hostIP {str(host_ip)[:64]!r} is not an IP address") \
                from None
    return InclavaredPod(name=meta["name"], node=str(spec.get("nodeName") or ""), phase=str(status.get("phase") or ""),
                         host_ip=host_ip, port=_attestation_port(spec), terminating=bool(meta.get("deletionTimestamp")))


def _attestation_port(spec: dict[str, Any]) -> int:
    for c in spec.get("containers") or []:
        for p in (c.get("ports") or []) if isinstance(c, dict) else []:
            if isinstance(p, dict) and p.get("name") == PORT_NAME:
                port = p.get("hostPort") or p.get("containerPort")
                if isinstance(port, int) and 0 < port < 65536:
                    return port
    return DEFAULT_PORT


def discover(creds: ApiCredentials, namespace: str | None = None, selector: str = DEFAULT_SELECTOR, *,
             timeout: float = 10.0, transport: Any = None) -> list[InclavaredPod]:
    """The matching pods, sorted by node; at least one, or an error saying where nothing was found."""
    ns = namespace or creds.namespace
    pods = sorted((pod_from_item(i) for i in list_pods(creds, ns, selector, timeout=timeout, transport=transport)),
                  key=lambda p: (p.node, p.name))
    if not pods:
        raise ConfigError(f"no pods match {selector!r} in namespace {ns!r} ({creds.server})")
    return pods


def nodes_to_attest(pods: list[InclavaredPod]) -> tuple[list[str], list[InclavaredPod]]:
    """The address of every node with a running pod, and the pods that leave their node uncovered: a node
    whose pod is being replaced is attested through the running one, any other node's pod fails."""
    covered = {p.node for p in pods if p.attestable}
    addresses = list(dict.fromkeys(p.address for p in pods if p.attestable))
    return addresses, [p for p in pods if not p.attestable and not (p.node and p.node in covered)]
