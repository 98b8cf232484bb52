"""Deployment files: the DaemonSets and the PCCS Deployment keep what attestation needs on a node."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from eaa.cli.inclavared import build_parser as inclavared_parser
from eaa.cli.pccs_server import build_parser as pccs_parser
from eaa.cli.shelter import build_parser as shelter_parser
from eaa.cli.enclave_tls_server import build_parser as server_parser
from eaa.services.pccs.schedule import parse_interval

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def find(kind: str, name: str, files: list[Path]) -> dict[str, Any]:
    for f in files:
        for d in docs(f):
            if d["kind"] == kind and d["metadata"]["name"] == name:
                return d
    pytest.fail(f"{kind}/{name} not found")


def containers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def test_every_manifest_parses_and_is_namespaced() -> None:
    files = list(K8S.rglob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        for d in docs(f):
            assert {"apiVersion", "kind", "metadata"} <= set(d), f
            if d["kind"] != "Namespace":
                assert d["metadata"]["namespace"] == "eaa-system", f


def test_inclavared_daemonset() -> None:
    ds = find("DaemonSet", "inclavared", [K8S / "inclavared.yaml"])
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert ds["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["key"] == "alibabacloud.com/tee-hardware-category"
    c = containers(ds)["inclavared"]
    args = inclavared_parser().parse_args(c["args"])  # the flags exist and parse
    assert (args.listen, args.xfer, args.attester, args.verifier, args.mutual) == (
        "0.0.0.0:1236", "127.0.0.1:1234", "sgx_ecdsa", "sgx_ecdsa_qve", True)
    assert c["readinessProbe"]["tcpSocket"]["port"] == 1236
    assert c["resources"]["requests"]["memory"] == "100Mi"
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    for name, path in (("sgx-enclave", "/dev/sgx_enclave"), ("sgx-provision", "/dev/sgx_provision")):
        assert vols[name]["hostPath"] == {"path": path, "type": "CharDevice"} and mounts[name] == path
    assert mounts["qcnl"] == "/etc/sgx_default_qcnl.conf"


def test_qcnl_config_points_at_the_pccs_service() -> None:
    cm = find("ConfigMap", "inclavared-qcnl", [K8S / "inclavared.yaml"])
    from eaa.collateral import qcnl

    cfg = qcnl.parse_qcnl(cm["data"]["sgx_default_qcnl.conf"])
    assert cfg is not None
    assert cfg.pccs_url.startswith("https://eaa-pccs.eaa-system.svc:8081/") and cfg.use_secure_cert


def test_pccs_deployment() -> None:
    dep = find("Deployment", "eaa-pccs", [K8S / "pccs.yaml"])
    c = containers(dep)["eaa-pccs"]
    assert c["command"] == ["eaa-pccs"] and c["args"][0] == "serve"
    args = pccs_parser().parse_args(c["args"])  # the flags exist and parse
    assert not args.insecure_http and args.cert and args.key and args.mode == "lazy"
    assert parse_interval(args.refresh_every) == 86400
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    svc = find("Service", "eaa-pccs", [K8S / "pccs.yaml"])
    assert svc["spec"]["ports"][0]["port"] == 8081


def test_simulated_overlay_runs_anywhere_and_says_so() -> None:
    files = list((K8S / "simulated").glob("*.yaml"))
    ds = find("DaemonSet", "eaa-sim-node", files)
    spec = ds["spec"]["template"]["spec"]
    assert "affinity" not in spec and "hostNetwork" not in spec
    cs = containers(ds)
    server = server_parser().parse_args(cs["workload"]["args"])
    assert server.attester == "sim_sgx_ecdsa" and server.trust_sim and server.mutual
    inc = inclavared_parser().parse_args(cs["inclavared"]["args"])
    assert inc.attester == "sim_sgx_ecdsa" and inc.trust_sim and inc.xfer == "127.0.0.1:1234"
    job = find("Job", "eaa-sim-shelter", files)
    sh = containers(job)["shelter"]
    args = shelter_parser().parse_args(sh["args"])
    assert args.trust_sim and args.addr == ["tcp://eaa-sim-inclavared.eaa-system.svc:1236"]
    # shelter attests with reference values its init container computed (not --no-reference)
    (init,) = job["spec"]["template"]["spec"]["initContainers"]
    ref = shelter_parser().parse_args(init["args"])
    assert ref.sim == [] and ref.inclavared_sim == [] and ref.output == args.reference
    assert not args.no_reference
    assert "SIMULATED" in (K8S / "simulated" / "eaa-sim.yaml").read_text().upper()


def test_dockerfile_entrypoints_are_console_scripts() -> None:
    scripts = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
    text = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert re.search(r'ENTRYPOINT \["inclavared"\]', text)
    used = set()
    for f in K8S.rglob("*.yaml"):
        for d in docs(f):
            if d["kind"] in ("DaemonSet", "Deployment", "Job"):
                used |= {c["command"][0] for c in containers(d).values()}
    assert used <= scripts and "inclavared" in scripts
    assert "USER 10001" in text
