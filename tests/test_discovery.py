"""shelter --kubernetes: the inclavared pods' node addresses, read from a (fake) Kubernetes API server over
verified HTTPS with the credentials kubectl would use."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from _kube import TOKEN, FakeApi, make_pki, recorded_pods, serving
from eaa.cli.shelter import main as shelter_main
from eaa.errors import ConfigError, ProtocolError, TransportError
from eaa.services import discovery
from eaa.services.discovery import discover, in_cluster_credentials, kubeconfig_credentials, load_credentials

NODES = ["tcp://192.0.2.11:1236", "tcp://192.0.2.12:1236", "tcp://192.0.2.13:1236"]


@pytest.fixture(scope="module")
def pki() -> Any:
    return make_pki()


@pytest.fixture
def api(pki: Any) -> Any:
    with serving(FakeApi(pki)) as a:
        yield a


def test_kubeconfig_token_finds_the_inclavared_nodes(api: FakeApi, tmp_path: Path) -> None:
    creds = load_credentials({"KUBECONFIG": str(api.kubeconfig(tmp_path / "config"))})
    assert creds.namespace == "eaa-system" and creds.token == TOKEN and TOKEN not in repr(creds)
    pods = discover(creds)
    assert [p.address for p in pods] == NODES and all(p.attestable for p in pods)
    assert [p.node for p in pods] == [f"cn-hangzhou.{a[6:-5]}" for a in NODES]
    (req,) = api.requests
    assert req["path"] == "/api/v1/namespaces/eaa-system/pods"
    assert req["query"]["labelSelector"] == ["k8s-app=inclavared"]
    assert req["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_selector_and_namespace_are_sent_as_given(api: FakeApi, tmp_path: Path) -> None:
    creds = load_credentials({"KUBECONFIG": str(api.kubeconfig(tmp_path / "config", namespace=None))})
    assert creds.namespace == "default"
    with pytest.raises(ConfigError, match="no pods match 'k8s-app=inclavared' in namespace 'default'"):
        discover(creds)  # the context's namespace (none: default), where nothing runs
    pods = discover(creds, "eaa-system", "k8s-app=enclave-tls-server")
    assert [p.name for p in pods] == ["enclave-tls-server-p2k7x", "enclave-tls-server-z9q4m"]
    assert api.requests[-1]["query"]["labelSelector"] == ["k8s-app=enclave-tls-server"]
    with pytest.raises(ConfigError, match="not a Kubernetes namespace"):
        discover(creds, "../../nodes")


def test_every_page_is_read(api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery, "PAGE_LIMIT", 1)
    pods = discover(load_credentials({"KUBECONFIG": str(api.kubeconfig(tmp_path / "config"))}))
    assert [p.address for p in pods] == NODES
    assert [r["query"].get("continue") for r in api.requests] == [None, ["1"], ["2"]]
    assert all(r["query"]["limit"] == ["1"] for r in api.requests)


def test_a_pod_list_that_never_ends_is_refused(api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery, "PAGE_LIMIT", 1)
    monkeypatch.setattr(discovery, "MAX_PAGES", 2)
    with pytest.raises(ProtocolError, match="did not end after 2 pages"):
        discover(load_credentials({"KUBECONFIG": str(api.kubeconfig(tmp_path / "config"))}))


def test_client_certificate_authentication(pki: Any, tmp_path: Path) -> None:
    with serving(FakeApi(pki, token=None, require_client_cert=True)) as api:
        creds = load_credentials({"KUBECONFIG": str(api.kubeconfig(tmp_path / "config", client_cert=True))})
        assert [p.address for p in discover(creds)] == NODES
        assert ((("commonName", "shelter"),),) == api.requests[0]["client_cert"]["subject"]
        no_cert = load_credentials({"KUBECONFIG": str(api.kubeconfig(tmp_path / "plain"))})
        with pytest.raises((TransportError, ConfigError)):
            discover(no_cert)  # the server requires a client certificate


def test_wrong_token_is_rejected_without_showing_it(api: FakeApi, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "config", extra_user={"token": "not-the-token-s3cr3t"})
    with pytest.raises(ConfigError, match=r"rejected the credentials \(401") as e:
        discover(load_credentials({"KUBECONFIG": str(path)}))
    assert "s3cr3t" not in str(e.value)


def test_forbidden_says_what_is_missing(pki: Any, tmp_path: Path) -> None:
    with serving(FakeApi(pki, allowed=False)) as api:
        with pytest.raises(ConfigError, match=r"does not allow listing pods in 'eaa-system' \(403.*cannot list"):
            discover(load_credentials({"KUBECONFIG": str(api.kubeconfig(tmp_path / "config"))}))


def test_an_api_server_with_another_ca_is_refused(api: FakeApi, tmp_path: Path) -> None:
    other = make_pki("other")
    creds = load_credentials({"KUBECONFIG": str(api.kubeconfig(tmp_path / "config", ca=other.ca_pem))})
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        discover(creds)
    assert api.requests == []  # the token never left


def test_the_system_store_does_not_know_a_private_cluster_ca(api: FakeApi, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "config")
    doc = json.loads(path.read_text())
    del doc["clusters"][0]["cluster"]["certificate-authority-data"]
    path.write_text(json.dumps(doc))
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        discover(load_credentials({"KUBECONFIG": str(path)}))


@pytest.mark.parametrize("cluster, user, message", [
    ({"insecure-skip-tls-verify": True}, {}, "insecure-skip-tls-verify"),
    ({"proxy-url": "http://127.0.0.1:3128"}, {}, "proxy-url is not supported"),
    ({}, {"auth-provider": {"name": "gcp"}}, "auth providers"),
    ({}, {"username": "admin", "password": "pw"}, "basic authentication"),
    ({}, {"client-key-data": "@@@"}, "client-key-data is not base64"),
    ({"certificate-authority-data": base64.b64encode(b"not a certificate").decode()}, {},
     "CA certificate is not usable"),
])
def test_kubeconfigs_shelter_refuses(api: FakeApi, tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any],
                                     message: str) -> None:
    path = api.kubeconfig(tmp_path / "config", extra_cluster=cluster, extra_user=user)
    with pytest.raises(ConfigError, match=message):
        discover(load_credentials({"KUBECONFIG": str(path)}))
    assert api.requests == []


def test_client_certificate_without_its_key(api: FakeApi, pki: Any, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "config",
                          extra_user={"client-certificate-data": base64.b64encode(pki.client_cert_pem).decode()})
    with pytest.raises(ConfigError, match="needs both the certificate and its key"):
        discover(load_credentials({"KUBECONFIG": str(path)}))


def test_http_server_urls_are_refused(api: FakeApi, tmp_path: Path) -> None:
    path = api.kubeconfig(tmp_path / "config", extra_cluster={"server": api.url.replace("https", "http")})
    with pytest.raises(ConfigError, match="no https:// server"):
        load_credentials({"KUBECONFIG": str(path)})


def test_kubeconfig_files_merge_as_kubectl_merges_them(api: FakeApi, tmp_path: Path) -> None:
    first = api.kubeconfig(tmp_path / "first")
    doc = json.loads(first.read_text())
    doc["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"  # defined again later: the first one wins
    doc.pop("current-context")
    second = tmp_path / "second"
    second.write_text(json.dumps(doc))
    creds = load_credentials({"KUBECONFIG": f"{tmp_path / 'missing'}:{first}:{second}"})
    assert creds.server == api.url and "context kind-eaa" in creds.source
    assert [p.address for p in discover(creds)] == NODES
    doc["current-context"] = "elsewhere"
    second.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="context 'elsewhere' is not defined"):
        kubeconfig_credentials([second])
    with pytest.raises(ConfigError, match="no kubeconfig file found"):
        load_credentials({"KUBECONFIG": str(tmp_path / "missing")})


def test_files_named_in_a_kubeconfig_are_relative_to_it(api: FakeApi, pki: Any, tmp_path: Path) -> None:
    d = tmp_path / "home" / ".kube"
    d.mkdir(parents=True)
    (d / "ca.crt").write_bytes(pki.ca_pem)
    (d / "token").write_text(TOKEN + "\n")
    path = api.kubeconfig(d / "config", extra_cluster={"certificate-authority": "ca.crt"},
                          extra_user={"tokenFile": "token"})
    doc = json.loads(path.read_text())
    del doc["clusters"][0]["cluster"]["certificate-authority-data"], doc["users"][0]["user"]["token"]
    path.write_text(json.dumps(doc))
    creds = load_credentials({}, home=tmp_path / "home")  # ~/.kube/config when KUBECONFIG is unset
    assert creds.ca_pem == pki.ca_pem and creds.token == TOKEN
    assert [p.address for p in discover(creds)] == NODES


def test_in_cluster_service_account(api: FakeApi, pki: Any, tmp_path: Path) -> None:
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(TOKEN)
    (sa / "ca.crt").write_bytes(pki.ca_pem)
    (sa / "namespace").write_text("eaa-system")
    port = api.url.rsplit(":", 1)[1]
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
    creds = load_credentials(env, home=tmp_path, service_account_dir=sa)  # no kubeconfig in tmp_path/.kube
    assert creds.source == "the in-cluster service account" and creds.namespace == "eaa-system"
    assert [p.address for p in discover(creds)] == NODES
    assert api.requests[0]["headers"]["authorization"] == f"Bearer {TOKEN}"
    (sa / "token").write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        in_cluster_credentials(env, sa)
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster_credentials({}, sa)
    with pytest.raises(ConfigError, match="no Kubernetes credentials"):
        load_credentials({}, home=tmp_path, service_account_dir=sa)


@pytest.mark.parametrize("body, message", [
    (b"<html>", "not JSON"),
    (json.dumps({"kind": "Status", "status": "Success"}).encode(), "did not answer with a PodList"),
    (json.dumps({"kind": "PodList", "items": {"a": 1}}).encode(), "did not answer with a PodList"),
    (json.dumps({"kind": "PodList", "items": [1]}).encode(), "non-object"),
    (json.dumps({"kind": "PodList", "items": [{"metadata": {}}]}).encode(), "malformed pod"),
    (json.dumps({"kind": "PodList", "items": [{"metadata": {"name": "x"}, "status": {"hostIP": "evil.example:1"}}]})
     .encode(), "is not an IP address"),
    (json.dumps({"kind": "PodList", "items": [], "metadata": {"continue": 5}}).encode(), "continue token"),
])
def test_malformed_answers_are_errors(pki: Any, tmp_path: Path, body: bytes, message: str) -> None:
    with serving(FakeApi(pki, body_override=body)) as api:
        with pytest.raises(ProtocolError, match=message):
            discover(load_credentials({"KUBECONFIG": str(api.kubeconfig(tmp_path / "config"))}))


def test_an_oversized_answer_is_cut_off(api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery, "MAX_PAGE_BYTES", 4096)
    with pytest.raises(ProtocolError, match="exceeds 4096 bytes"):
        discover(load_credentials({"KUBECONFIG": str(api.kubeconfig(tmp_path / "config"))}))


def test_an_unreachable_api_server(pki: Any, tmp_path: Path) -> None:
    with serving(FakeApi(pki)) as api:
        path = api.kubeconfig(tmp_path / "config")
    with pytest.raises(TransportError, match="cannot reach the Kubernetes API"):
        discover(load_credentials({"KUBECONFIG": str(path)}), timeout=2)


def _not_running_pods() -> dict[str, Any]:
    pods = recorded_pods()
    pending, leaving = pods["items"][1], pods["items"][2]
    pending["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
    leaving["metadata"]["deletionTimestamp"] = "2026-11-30T09:00:00Z"
    return pods


def test_pods_that_are_not_running_are_not_left_out(pki: Any, tmp_path: Path) -> None:
    with serving(FakeApi(pki, pods=_not_running_pods())) as api:
        pods = discover(load_credentials({"KUBECONFIG": str(api.kubeconfig(tmp_path / "config"))}))
    assert [p.attestable for p in pods] == [True, False, False]
    assert pods[1].problem == "pod inclavared-m4q9z on node cn-hangzhou.192.0.2.12 is Pending, not Running"
    assert pods[2].problem == "pod inclavared-bd8wr on node cn-hangzhou.192.0.2.13 is terminating"
    assert pods[0].problem == ""
    addresses, uncovered = discovery.nodes_to_attest(pods)
    assert addresses == [NODES[0]] and uncovered == pods[1:]


def test_a_node_whose_pod_is_being_replaced_is_attested_through_the_new_one() -> None:
    items = recorded_pods()["items"][:3]
    old = json.loads(json.dumps(items[0]))
    old["metadata"]["name"] = "inclavared-old01"
    old["metadata"]["deletionTimestamp"] = "2026-11-30T09:00:00Z"
    pending = json.loads(json.dumps(items[1]))
    pending["metadata"]["name"] = "inclavared-new01"
    pending["status"] = {"phase": "Pending"}
    unscheduled = json.loads(json.dumps(pending))
    unscheduled["metadata"]["name"] = "inclavared-new02"
    del unscheduled["spec"]["nodeName"]
    pods = [discovery.pod_from_item(i) for i in (*items, old, pending, unscheduled)]
    addresses, uncovered = discovery.nodes_to_attest(pods)
    assert addresses == NODES  # each node once
    assert [p.name for p in uncovered] == ["inclavared-new02"]  # a pod on no node yet covers nothing


def _loopback_pods(port: int) -> dict[str, Any]:
    """The recorded pods moved to loopback addresses where nothing listens on ``port``."""
    pods = _not_running_pods()
    for i, item in enumerate(pods["items"]):
        if "hostIP" in item["status"]:
            item["status"]["hostIP"] = f"127.0.0.{i + 2}"
        for c in item["spec"]["containers"]:
            for p in c.get("ports", []):
                p["containerPort"] = p["hostPort"] = port
    return pods


def _reference(tmp_path: Path) -> str:
    path = tmp_path / "reference.toml"
    path.write_text(f'[reference]\nmrenclave = "{"ab" * 32}"\n')
    return str(path)


def test_shelter_attests_every_discovered_node(pki: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from _procs import free_port

    port = free_port()
    with serving(FakeApi(pki, pods=_loopback_pods(port))) as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "config")))
        rc = shelter_main(["remoteattestation", "--kubernetes", "--namespace", "eaa-system",
                           "--selector", "k8s-app=inclavared", "--timeout", "2", "--output", "json",
                           "--reference", _reference(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["ok"] is False
    rows = {n["address"]: n["error_code"] for n in out["nodes"]}
    # the running pod is dialled (nothing listens there); the pending one (no host IP yet) and the
    # terminating one fail as such
    assert rows == {f"tcp://127.0.0.2:{port}": "TRANSPORT_ERROR", "pod/inclavared-m4q9z": "POD_NOT_RUNNING",
                    f"tcp://127.0.0.4:{port}": "POD_NOT_RUNNING"}
    assert api.requests[0]["query"]["labelSelector"] == ["k8s-app=inclavared"]


def test_shelter_text_output_names_the_failed_nodes(pki: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from _procs import free_port

    port = free_port()
    with serving(FakeApi(pki, pods=_loopback_pods(port))) as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "config")))
        rc = shelter_main(["remoteattestation", "--kubernetes", "--timeout", "2", "--reference", _reference(tmp_path)])
    cap = capsys.readouterr()
    assert rc == 1
    header = next(ln for ln in cap.out.splitlines() if not ln.startswith("WARNING"))
    assert header.split() == ["NODE", "RESULT", "TEE", "STATUS", "MEASUREMENT", "ERROR"]
    assert "[POD_NOT_RUNNING] pod inclavared-m4q9z on node cn-hangzhou.192.0.2.12 is Pending" in cap.out
    assert "3 of 3 nodes failed" in cap.err


def test_shelter_discovery_errors_are_one_line(pki: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with serving(FakeApi(pki)) as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path / "config")))
        rc = shelter_main(["remoteattestation", "--kubernetes", "--selector", "k8s-app=nothing",
                           "--reference", _reference(tmp_path)])
    assert rc == 2
    assert capsys.readouterr().err.strip() == ("shelter: error [CONFIG_ERROR]: no pods match 'k8s-app=nothing' in "
                                               f"namespace 'eaa-system' ({api.url})")
    assert shelter_main(["remoteattestation", "--namespace", "eaa-system", "--reference", _reference(tmp_path)]) == 2
    assert "need --kubernetes" in capsys.readouterr().err


def test_tls_server_name_is_the_name_verified(api: FakeApi, tmp_path: Path) -> None:
    """kubeconfig's tls-server-name: the certificate is checked for that name, not the URL's host."""
    good = api.kubeconfig(tmp_path / "good", extra_cluster={"tls-server-name": "kubernetes.default.svc"})
    assert [p.address for p in discover(load_credentials({"KUBECONFIG": str(good)}))] == NODES
    bad = api.kubeconfig(tmp_path / "bad", extra_cluster={"tls-server-name": "kubernetes.example"})
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        discover(load_credentials({"KUBECONFIG": str(bad)}))


def test_unreadable_credential_files(api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = api.kubeconfig(tmp_path / "config", extra_user={"tokenFile": "missing-token"})
    doc = json.loads(path.read_text())
    del doc["users"][0]["user"]["token"]
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="cannot read token file"):
        load_credentials({"KUBECONFIG": str(path)})
    monkeypatch.setattr(discovery, "MAX_CONFIG_FILE", 64)
    with pytest.raises(ConfigError, match="larger than 64 bytes"):
        load_credentials({"KUBECONFIG": str(api.kubeconfig(tmp_path / "big"))})
    (tmp_path / "notyaml").write_text("clusters: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_credentials({"KUBECONFIG": str(tmp_path / "notyaml")})


PLUGIN = """import json, os, sys
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
assert info["spec"]["interactive"] is False and sys.argv[1:] == ["token", "--cluster", "eaa"], (info, sys.argv)
mode = os.environ["PLUGIN_MODE"]
status = {"token": os.environ["PLUGIN_TOKEN"]} if mode == "token" else {}
if mode == "cert":
    status = {"clientCertificateData": open(os.environ["PLUGIN_CERT"]).read(),
              "clientKeyData": open(os.environ["PLUGIN_KEY"]).read()}
if mode == "fail":
    sys.exit(3)
print("not json" if mode == "garbage" else json.dumps({"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                                                       "status": status}))
"""


def _plugin(tmp_path: Path, mode: str, pki: Any,
            api_version: str = "client.authentication.k8s.io/v1") -> dict[str, Any]:
    (tmp_path / "bin").mkdir(exist_ok=True)
    script = tmp_path / "bin" / "kube-login"
    script.write_text(f"#!{sys.executable}\n{PLUGIN}")
    script.chmod(0o755)
    (tmp_path / "c.pem").write_bytes(pki.client_cert_pem)
    (tmp_path / "k.pem").write_bytes(pki.client_key_pem)
    env = {"PLUGIN_MODE": mode, "PLUGIN_TOKEN": TOKEN, "PLUGIN_CERT": str(tmp_path / "c.pem"),
           "PLUGIN_KEY": str(tmp_path / "k.pem")}
    return {"exec": {"apiVersion": api_version, "command": "./bin/kube-login", "args": ["token", "--cluster", "eaa"],
                     "env": [{"name": k, "value": v} for k, v in env.items()], "interactiveMode": "Never"}}


def _exec_kubeconfig(api: FakeApi, tmp_path: Path, user: dict[str, Any]) -> Path:
    path = api.kubeconfig(tmp_path / "config", extra_user=user)
    doc = json.loads(path.read_text())
    doc["users"][0]["user"].pop("token", None)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("api_version", ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"])
def test_exec_credential_plugin_token(api: FakeApi, pki: Any, tmp_path: Path, api_version: str) -> None:
    path = _exec_kubeconfig(api, tmp_path, _plugin(tmp_path, "token", pki, api_version))
    creds = load_credentials({"KUBECONFIG": str(path)})  # the command is relative to the kubeconfig's directory
    assert creds.token == TOKEN
    assert [p.address for p in discover(creds)] == NODES


def test_exec_credential_plugin_client_certificate(pki: Any, tmp_path: Path) -> None:
    with serving(FakeApi(pki, token=None, require_client_cert=True)) as api:
        creds = load_credentials({"KUBECONFIG": str(_exec_kubeconfig(api, tmp_path, _plugin(tmp_path, "cert", pki)))})
        assert creds.client_cert_pem == pki.client_cert_pem and creds.token is None
        assert [p.address for p in discover(creds)] == NODES


@pytest.mark.parametrize("mode, change, message", [
    ("fail", {}, r"credential plugin 'kube-login' failed \(exit 3\)"),
    ("garbage", {}, "did not print an client.authentication.k8s.io/v1 ExecCredential"),
    ("empty", {}, "neither a token nor a client certificate"),
    ("token", {"command": "./bin/missing", "installHint": "install kube-login"}, "not found \\(install kube-login"),
    ("token", {"apiVersion": "client.authentication.k8s.io/v1alpha1"}, "is not one of"),
    ("token", {"interactiveMode": "Always"}, "needs a terminal"),
    ("token", {"command": ""}, "exec has no command"),
])
def test_exec_credential_plugin_failures(api: FakeApi, pki: Any, tmp_path: Path, mode: str, change: dict[str, Any],
                                         message: str) -> None:
    user = _plugin(tmp_path, mode, pki)
    user["exec"].update(change)
    with pytest.raises(ConfigError, match=message) as e:
        load_credentials({"KUBECONFIG": str(_exec_kubeconfig(api, tmp_path, user))})
    assert TOKEN not in str(e.value)


def test_pod_addresses() -> None:
    item = recorded_pods()["items"][0]
    item["status"]["hostIP"] = "fd00::11"
    assert discovery.pod_from_item(item).address == "tcp://[fd00::11]:1236"
    del item["spec"]["containers"][0]["ports"]  # the seed's DaemonSet declares no port: inclavared's 1236
    item["status"]["hostIP"] = "192.0.2.11"
    assert discovery.pod_from_item(item).address == "tcp://192.0.2.11:1236"
    item["spec"]["containers"][0]["ports"] = [{"name": "attestation", "containerPort": 7000}]
    assert discovery.pod_from_item(item).address == "tcp://192.0.2.11:7000"
