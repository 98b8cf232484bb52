"""The cluster's shape on one machine: three nodes, each a network namespace with its own address on a
bridge, running the pods of the ``sim`` overlay as kubectl kustomize builds them.

Each node runs the two host-network DaemonSets' containers with the command, arguments and environment
the manifests give them (enclave-tls-server on the node's 127.0.0.1:1234, inclavared on 0.0.0.0:1236:
the seed's commands plus the simulated TEE), volumes being directories of this machine; node 1 also runs
the eaa-pccs pod (its init container first). Readiness is the manifests' own readiness probes. shelter
runs in the root namespace as the ``eaa-sim-shelter`` Job specifies it: reference values from the
workload image's files, then ``--kubernetes`` against a fake API server listing the inclavared pods at
the nodes' addresses. Then node 2's workload is replaced by a modified program, and the same Job fails
exactly that node.

What differs from a cluster: processes instead of containers (an "image" is a copy of the eaa package
run through PYTHONPATH, so the simulated attester measures the files that actually run), mount paths
rewritten to directories in the command lines and environment (a file read at a fixed path, such as
/etc/sgx_default_qcnl.conf, is not mounted), and a kubeconfig for the fake API server instead of the
Job's service account.

It needs root and ``ip netns`` (iproute2): elsewhere it is skipped with the reason, except in CI
(``CI`` set), where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import eaa
from _kube import FakeApi, make_pki, recorded_pods, serving
from _manifests import built, containers, find, pod_spec
from eaa.sim import init_platform

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NODES = 3
_PY = re.search(r"^FROM python:(3\.\d+)-slim", (ROOT / "deploy/docker/enclave-tls-server.Dockerfile").read_text(),
                re.M)
assert _PY is not None
IMAGE_SITE = f"/opt/eaa/lib/python{_PY.group(1)}/site-packages"  # where the images install eaa


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def netns_unavailable() -> str | None:
    """Why the test cannot build its nodes here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "building network namespaces needs root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = f"eaa-probe-{secrets.token_hex(3)}"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"`ip netns add` fails here: {r.stderr.strip() or r.returncode}"
    _ip("netns", "del", probe, check=False)
    return None


def _free_subnet() -> str:
    """A /24 of 198.18.0.0/15 (reserved for network tests) that nothing on this machine uses yet."""
    used = "\n" + _ip("-4", "addr").stdout + "\n" + _ip("-4", "route").stdout
    for _ in range(64):
        prefix = f"198.18.{secrets.randbelow(256)}"
        if f" {prefix}." not in used and f"\n{prefix}." not in used:
            return prefix
    pytest.fail("no free 198.18.x.0/24 subnet")


def copy_image(dest: Path) -> Path:
    """An "image": the eaa package as the Dockerfiles install it, run from here through PYTHONPATH."""
    shutil.copytree(Path(eaa.__file__).parent, dest / "eaa", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def modify_program(image: Path) -> None:
    """A changed workload: another greeting, so another program and another MRENCLAVE."""
    f = image / "eaa" / "services" / "workload.py"
    text = f.read_text()
    assert "GREETING = " in text
    f.write_text(text + '\nGREETING = b"Hello from a modified workload!\\n"\n')


def volume_dirs(obj: dict[str, Any], container: dict[str, Any], pod_dir: Path, sim_dir: Path) -> dict[str, Path]:
    """mountPath -> the directory standing in for the volume: the shared simulated platform for its Secret,
    a directory of the pod for an emptyDir or a PVC."""
    vols = {v["name"]: v for v in pod_spec(obj).get("volumes", [])}
    out = {}
    for m in container.get("volumeMounts", []):
        v = vols[m["name"]]
        if "secret" in v:
            assert v["secret"]["secretName"] == "eaa-sim-platform"
            out[m["mountPath"]] = sim_dir
        elif "emptyDir" in v or "persistentVolumeClaim" in v:
            out[m["mountPath"]] = pod_dir / m["name"]
            out[m["mountPath"]].mkdir(parents=True, exist_ok=True)
    return out


def command_line(container: dict[str, Any], mapping: dict[str, Path]) -> tuple[list[str], dict[str, str]]:
    """The container's command and environment with mount paths (and the image's install path) rewritten."""
    prefixes = sorted(mapping, key=len, reverse=True)

    def sub(value: str) -> str:
        for p in prefixes:
            if value == p or value.startswith(p + "/"):
                return str(mapping[p]) + value[len(p):]
        return value

    argv = [*container["command"], *container.get("args", [])]
    assert shutil.which(argv[0], path=str(BIN)), argv[0]  # a console script of the package
    return [str(BIN / argv[0]), *map(sub, argv[1:])], {e["name"]: sub(e["value"]) for e in container.get("env", [])}


@dataclass
class Node:
    name: str  # network namespace
    ip: str
    image: Path
    dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def argv(self, obj: dict[str, Any], container: dict[str, Any], sim_dir: Path,
             base_env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        pod_dir = self.dir / obj["metadata"]["name"]
        mapping = {**volume_dirs(obj, container, pod_dir, sim_dir), IMAGE_SITE: self.image}
        argv, env = command_line(container, mapping)
        return ["ip", "netns", "exec", self.name, *argv], {**base_env, **env, "PYTHONPATH": str(self.image)}

    def start(self, obj: dict[str, Any], container: dict[str, Any], sim_dir: Path, base_env: dict[str, str]) -> None:
        argv, env = self.argv(obj, container, sim_dir, base_env)
        name = container["name"]
        self.logs[name] = self.dir / f"{name}.log"
        with open(self.logs[name], "ab") as out:
            self.procs[name] = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def stop(self, name: str) -> None:
        p = self.procs.pop(name, None)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def ready(self, container: dict[str, Any], timeout: float = 60.0) -> None:
        """Wait until the container's readiness probe passes, probing as the kubelet would."""
        probe, name = container["readinessProbe"], container["name"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.procs[name]
            if p.poll() is not None:
                pytest.fail(f"{self.name}: {name} exited with {p.returncode}:\n{self.output(name)}")
            if self._probe(probe):
                return
            time.sleep(0.2)
        pytest.fail(f"{self.name}: {name} not ready:\n{self.output(name)}")

    def _probe(self, probe: dict[str, Any]) -> bool:
        if "exec" in probe:  # inside the pod: here, inside the node's network namespace
            cmd = probe["exec"]["command"]
            cmd = [sys.executable if cmd[0] == "python" else cmd[0], *cmd[1:]]
            return subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True,
                                  timeout=30).returncode == 0
        if "tcpSocket" in probe:  # from the kubelet, to the pod's (here: the node's) address
            try:
                socket.create_connection((self.ip, probe["tcpSocket"]["port"]), 1).close()
                return True
            except OSError:
                return False
        get = probe["httpGet"]
        try:
            with urllib.request.urlopen(f"{get['scheme'].lower()}://{self.ip}:{get['port']}{get['path']}",
                                        timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def output(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")[-3000:]


@dataclass
class Cluster:
    nodes: list[Node]
    base: Path
    env: dict[str, str]
    sim_dir: Path
    docs: tuple[dict[str, Any], ...]
    reference: Path
    pccs_url: str

    def run_workload(self, node: Node) -> None:
        ds = find(self.docs, "DaemonSet", "enclave-tls-server")
        container = containers(ds)["enclave-tls-server"]
        node.start(ds, container, self.sim_dir, self.env)
        node.ready(container)

    def shelter_job(self, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
        """The eaa-sim-shelter Job's shelter container, run in the root namespace."""
        job = find(self.docs, "Job", "eaa-sim-shelter")
        container = containers(job)["shelter"]
        mapping = volume_dirs(job, container, self.base / "job", self.sim_dir)
        argv, env = command_line(container, mapping)
        return subprocess.run(argv, env={**self.env, **env, "KUBECONFIG": str(kubeconfig)}, capture_output=True,
                              text=True, timeout=300)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = netns_unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the multi-node test must run in CI: {reason}")
        pytest.skip(reason)
    docs = built("sim")
    base = tmp_path_factory.mktemp("cluster")
    sim_dir = base / "sim"
    init_platform(sim_dir)  # one simulated platform shared by the nodes, as the eaa-sim-platform Secret is
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EAA_", "KUBE")) and k != "PYTHONPATH"}
    tag = secrets.token_hex(3)
    bridge, prefix = f"eaa{tag}br", _free_subnet()
    nodes = [Node(f"eaa-{tag}-node{k}", f"{prefix}.{10 + k}", copy_image(base / f"node{k}" / "image"),
                  base / f"node{k}") for k in range(1, NODES + 1)]
    made: list[list[str]] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        made.append(["link", "del", bridge])
        _ip("addr", "add", f"{prefix}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for k, node in enumerate(nodes, 1):
            veth = f"eaa{tag}v{k}"
            _ip("netns", "add", node.name)
            made.append(["netns", "del", node.name])  # takes the veth pair with it
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", node.name)
            _ip("link", "set", veth, "master", bridge, "up")
            for cmd in (["addr", "add", f"{node.ip}/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                        ["link", "set", "lo", "up"]):
                _ip("netns", "exec", node.name, "ip", *cmd)
        inc = find(docs, "DaemonSet", "inclavared")
        work = find(docs, "DaemonSet", "enclave-tls-server")
        for node in nodes:  # every node runs both DaemonSets' pods
            node.start(work, containers(work)["enclave-tls-server"], sim_dir, env)
            node.start(inc, containers(inc)["inclavared"], sim_dir, env)
        pccs = find(docs, "Deployment", "eaa-pccs")  # scheduled on node 1: its init container, then eaa-pccs
        argv, init_env = nodes[0].argv(pccs, containers(pccs, init=True)["sim-collateral"], sim_dir, env)
        r = subprocess.run(argv, env=init_env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        nodes[0].start(pccs, containers(pccs)["eaa-pccs"], sim_dir, env)
        for node in nodes:
            node.ready(containers(work)["enclave-tls-server"])
            node.ready(containers(inc)["inclavared"])
        nodes[0].ready(containers(pccs)["eaa-pccs"])
        # the Job's init container: reference values from the workload image's files (a pristine copy)
        job = find(docs, "Job", "eaa-sim-shelter")
        init = containers(job, init=True)["reference"]
        mapping = {**volume_dirs(job, init, base / "job", sim_dir), IMAGE_SITE: copy_image(base / "image")}
        argv, init_env = command_line(init, mapping)
        r = subprocess.run(argv, env={**env, **init_env}, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        reference = mapping["/var/run/eaa"] / "reference.toml"
        yield Cluster(nodes, base, env, sim_dir, docs, reference, f"http://{nodes[0].ip}:8081/sgx/certification/v4/")
    finally:
        for node in nodes:
            for name in list(node.procs):
                node.stop(name)
        for cmd in reversed(made):
            _ip(*cmd, check=False)


def table(out: str) -> dict[str, list[str]]:
    """NODE -> the row's other columns, from shelter's table."""
    lines = [ln for ln in out.splitlines() if ln.startswith(("NODE ", "tcp://"))]
    assert lines and lines[0].split()[:2] == ["NODE", "RESULT"], out
    return {ln.split()[0]: ln.split()[1:] for ln in lines[1:]}


def _pods_of(cluster: Cluster) -> dict[str, Any]:
    """The recorded inclavared pods, placed on this machine's three nodes."""
    pods = recorded_pods()
    inclavared = [p for p in pods["items"] if p["metadata"]["labels"]["k8s-app"] == "inclavared"]
    assert len(inclavared) == NODES
    for item, node in zip(inclavared, cluster.nodes, strict=True):
        item["spec"]["nodeName"] = node.name
        item["status"]["hostIP"] = item["status"]["podIP"] = node.ip
        item["status"]["hostIPs"] = item["status"]["podIPs"] = [{"ip": node.ip}]
    return pods


def run_job(cluster: Cluster, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], FakeApi]:
    with serving(FakeApi(make_pki(), pods=_pods_of(cluster))) as api:
        return cluster.shelter_job(api.kubeconfig(tmp_path / "kubeconfig")), api


def test_the_shelter_job_finds_and_attests_every_node(cluster: Cluster, tmp_path: Path) -> None:
    r, api = run_job(cluster, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert api.requests[0]["query"]["labelSelector"] == ["k8s-app=inclavared"]
    rows = table(r.stdout)
    assert sorted(rows) == [f"tcp://{n.ip}:1236" for n in cluster.nodes]
    mrenclave = cluster.reference.read_text().split('mrenclave = "')[1][:16]
    for cols in rows.values():
        assert cols[:4] == ["ok", "sgx", "UpToDate", mrenclave]
    assert "Remote attestation is successful." in r.stdout and "WARNING: simulated evidence" in r.stdout
    # every node's inclavared served shelter (from the bridge's address) over protocol v2
    bridge_ip = cluster.nodes[0].ip.rsplit(".", 1)[0] + ".1"
    for node in cluster.nodes:
        assert any(f"peer={bridge_ip}:" in ln and "version=2 result=ok" in ln
                   for ln in node.output("inclavared").splitlines()), node.output("inclavared")


def test_collateral_comes_from_the_pccs_on_node1(cluster: Cluster) -> None:
    """shelter without --trust-sim: the simulated root is trusted explicitly, and the collateral for every
    node's quotes is fetched from eaa-pccs on node 1, across the bridge."""
    addrs = [f"--addr=tcp://{n.ip}:1236" for n in cluster.nodes]
    args = [str(BIN / "shelter"), "remoteattestation", *addrs, "--reference", str(cluster.reference), "--trust-root",
            str(cluster.sim_dir / "root_ca.pem"), "--output", "json"]
    r = subprocess.run(args, env={**cluster.env, "EAA_PCCS_URL": cluster.pccs_url}, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] and [n["ok"] for n in out["nodes"]] == [True] * NODES
    with urllib.request.urlopen(f"http://{cluster.nodes[0].ip}:8081/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    served = [ln for ln in metrics.splitlines() if ln.startswith("eaa_pccs_http_requests_total")
              and 'status="200"' in ln and "certification" in ln]
    assert served, metrics[-2000:]
    # the same run without the PCCS: no collateral for any node (a simulated platform's own collateral is
    # used only with --trust-sim), so every node fails
    r = subprocess.run(args, env=cluster.env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert {n["error_code"] for n in json.loads(r.stdout)["nodes"]} == {"UNTRUSTED_ROOT"}


def test_a_replaced_workload_fails_exactly_its_node(cluster: Cluster, tmp_path: Path) -> None:
    node2 = cluster.nodes[1]
    node2.stop("enclave-tls-server")
    modify_program(node2.image)
    cluster.run_workload(node2)
    r, _ = run_job(cluster, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    rows = table(r.stdout)
    failed = {a for a, cols in rows.items() if cols[0] != "ok"}
    assert failed == {f"tcp://{node2.ip}:1236"}
    assert "[POLICY_VIOLATION] POLICY_REFERENCE mrenclave mismatch" in " ".join(rows[f"tcp://{node2.ip}:1236"])
    assert f"1 of 3 nodes failed: tcp://{node2.ip}:1236" in r.stderr
    # the failed row shows what node 2 runs now: a measurement unlike every other node's
    measurements = {a: cols[3] for a, cols in rows.items()}
    others = {m for a, m in measurements.items() if a != f"tcp://{node2.ip}:1236"}
    assert len(others) == 1 and measurements[f"tcp://{node2.ip}:1236"] not in others | {"-"}
