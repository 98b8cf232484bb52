"""The cluster's shape on one machine: three nodes, each a network namespace with its own address on a
bridge, each running the seed's commands (enclave-tls-server on the node's 127.0.0.1:1234, inclavared
on 0.0.0.0:1236 in front of it) with the simulated TEE; node 1 also runs eaa-pccs. shelter, in the root
namespace, finds the nodes through a (fake) Kubernetes API as ``--kubernetes`` does in a cluster and
attests all three; then node 2's workload is replaced by a modified program and shelter, holding the
original program's reference values, reports exactly that node as failing.

It needs root and ``ip netns`` (iproute2): elsewhere it is skipped with the reason, except in CI
(``CI`` set), where that is a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

import eaa
from eaa.sim import init_platform

from _kube import FakeApi, make_pki, recorded_pods, serving

BIN = Path(sys.executable).parent
NODES = 3


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
    used = _ip("-4", "addr").stdout + _ip("-4", "route").stdout
    for _ in range(64):
        third = secrets.randbelow(256)
        prefix = f"198.18.{third}"
        if f" {prefix}." not in used and f"\n{prefix}." not in used:
            return prefix
    pytest.fail("no free 198.18.x.0/24 subnet")


@dataclass
class Node:
    name: str  # network namespace
    ip: str
    prog: Path  # the workload's program: a copy of the eaa package it runs (and measures)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def start(self, what: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.logs[what] = log
        with open(log, "ab") as out:
            self.procs[what] = subprocess.Popen(["ip", "netns", "exec", self.name, *argv], env=env, stdout=out,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, what: str) -> None:
        p = self.procs.pop(what, None)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def wait_local(self, port: int, what: str, timeout: float = 60.0) -> None:
        """Wait until something listens on the node's own 127.0.0.1:port (reachable only from inside)."""
        code = ("import socket, sys, time\n"
                f"end = time.monotonic() + {timeout}\n"
                "while time.monotonic() < end:\n"
                "    try:\n"
                f"        socket.create_connection(('127.0.0.1', {port}), 1).close(); sys.exit(0)\n"
                "    except OSError:\n"
                "        time.sleep(0.1)\n"
                "sys.exit(1)\n")
        r = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, "-c", code], timeout=timeout + 30)
        if r.returncode != 0:
            pytest.fail(f"{self.name}: {what} not listening on 127.0.0.1:{port}:\n{self.output(what)}")

    def wait_remote(self, port: int, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.procs[what]
            if p.poll() is not None:
                pytest.fail(f"{self.name}: {what} exited with {p.returncode}:\n{self.output(what)}")
            try:
                socket.create_connection((self.ip, port), 1).close()
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"{self.name}: {what} not reachable at {self.ip}:{port}:\n{self.output(what)}")

    def output(self, what: str) -> str:
        return self.logs[what].read_text(errors="replace")[-3000:]


def copy_program(dest: Path) -> Path:
    """The eaa package as a node's workload runs it (from PYTHONPATH), so that its simulated attester
    measures the files it actually runs."""
    shutil.copytree(Path(eaa.__file__).parent, dest / "eaa", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def modify_program(prog: Path) -> None:
    """A changed workload: another greeting, so another program and another MRENCLAVE."""
    f = prog / "eaa" / "services" / "workload.py"
    text = f.read_text()
    assert "GREETING = " in text
    f.write_text(text + '\nGREETING = b"Hello from a modified workload!\\n"\n')


@dataclass
class Cluster:
    nodes: list[Node]
    base: Path
    env: dict[str, str]
    reference: Path
    pccs_url: str


def _start_workload(node: Node, env: dict[str, str], base: Path) -> None:
    node.start("workload", [str(BIN / "enclave-tls-server"), "--ip", "127.0.0.1", "--port", "1234", "--mutual",
                            "--attester", "sim_sgx_ecdsa", "--trust-sim"],
               {**env, "PYTHONPATH": str(node.prog)}, base / f"{node.name}-workload.log")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    reason = netns_unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the multi-node test must run in CI: {reason}")
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("cluster")
    init_platform(base / "sim")
    env = {k: v for k, v in os.environ.items() if k not in ("EAA_TRUST_SIMULATION", "EAA_PCCS_URL", "PYTHONPATH")}
    env["EAA_SIM_DIR"] = str(base / "sim")  # one simulated platform shared by the nodes, as the Secret is
    tag = secrets.token_hex(3)
    bridge, prefix = f"eaa{tag}br", _free_subnet()
    nodes = [Node(f"eaa-{tag}-node{k}", f"{prefix}.{10 + k}", copy_program(base / f"node{k}")) for k in
             range(1, NODES + 1)]
    made: list[str] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        made.append(f"link {bridge}")
        _ip("addr", "add", f"{prefix}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for k, node in enumerate(nodes, 1):
            veth = f"eaa{tag}v{k}"
            _ip("netns", "add", node.name)
            made.append(f"netns {node.name}")
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", node.name)
            _ip("link", "set", veth, "master", bridge, "up")
            for cmd in (["addr", "add", f"{node.ip}/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                        ["link", "set", "lo", "up"]):
                _ip("netns", "exec", node.name, "ip", *cmd)
        for node in nodes:  # the seed's commands, unchanged but for the simulated TEE
            _start_workload(node, env, base)
            node.start("inclavared", [str(BIN / "inclavared"), "--listen", "0.0.0.0:1236", "--xfer", "127.0.0.1:1234",
                                      "--attester", "sim_sgx_ecdsa", "--verifier", "sgx_ecdsa_qve", "--mutual",
                                      "--trust-sim"], env, base / f"{node.name}-inclavared.log")
        r = subprocess.run([str(BIN / "eaa"), "sim", "collateral", "-o", str(base / "collateral")], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        nodes[0].start("pccs", [str(BIN / "eaa-pccs"), "serve", "--mode", "offline", "--insecure-http", "--listen",
                                "0.0.0.0:8081", "--db", str(base / "pccs.sqlite3"), "--import",
                                str(base / "collateral"), "--trust-sim"], env, base / "pccs.log")
        for node in nodes:
            node.wait_local(1234, "workload")
            node.wait_remote(1236, "inclavared")
        nodes[0].wait_remote(8081, "pccs")
        # reference values of the program every node was given
        reference = base / "reference.toml"
        r = subprocess.run([str(BIN / "shelter"), "mrenclave", "--sim", str(nodes[0].prog / "eaa/services/workload.py"),
                            str(nodes[0].prog / "eaa/cli/enclave_tls_server.py"), "-o", str(reference)], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        yield Cluster(nodes, base, env, reference, f"http://{nodes[0].ip}:8081/sgx/certification/v4/")
    finally:
        for node in nodes:
            for what in list(node.procs):
                node.stop(what)
        for item in reversed(made):
            kind, name = item.split(" ", 1)
            _ip(*(["netns", "del", name] if kind == "netns" else ["link", "del", name]), check=False)


def shelter(cluster: Cluster, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "shelter"), "remoteattestation", *args], env=env or cluster.env,
                          capture_output=True, text=True, timeout=300)


def table(out: str) -> dict[str, list[str]]:
    """NODE -> the row's other columns, from shelter's table."""
    lines = [ln for ln in out.splitlines() if ln.startswith(("NODE ", "tcp://"))]
    assert lines and lines[0].split()[:2] == ["NODE", "RESULT"], out
    return {ln.split()[0]: ln.split()[1:] for ln in lines[1:]}


def _pods_of(cluster: Cluster) -> dict[str, object]:
    """The recorded inclavared pods, placed on this machine's three nodes."""
    pods = recorded_pods()
    inclavared = [p for p in pods["items"] if p["metadata"]["labels"]["k8s-app"] == "inclavared"]
    assert len(inclavared) == NODES
    for item, node in zip(inclavared, cluster.nodes):
        item["spec"]["nodeName"] = node.name
        item["status"]["hostIP"] = item["status"]["podIP"] = node.ip
        item["status"]["hostIPs"] = item["status"]["podIPs"] = [{"ip": node.ip}]
    return pods


def test_shelter_finds_and_attests_every_node(cluster: Cluster, tmp_path: Path) -> None:
    with serving(FakeApi(make_pki(), pods=_pods_of(cluster))) as api:
        env = {**cluster.env, "KUBECONFIG": str(api.kubeconfig(tmp_path / "kubeconfig"))}
        r = shelter(cluster, "--kubernetes", "--namespace", "eaa-system", "--reference", str(cluster.reference),
                    "--trust-sim", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = table(r.stdout)
    assert sorted(rows) == [f"tcp://{n.ip}:1236" for n in cluster.nodes]
    mrenclave = cluster.reference.read_text().split('mrenclave = "')[1][:16]
    for cols in rows.values():
        assert cols[:4] == ["ok", "sgx", "UpToDate", mrenclave]
    assert "Remote attestation is successful." in r.stdout and "WARNING: simulated evidence" in r.stdout
    # every node's inclavared served shelter (from the bridge's address) over protocol v2
    bridge_ip = cluster.nodes[0].ip.rsplit(".", 1)[0] + ".1"
    for node in cluster.nodes:
        assert any(f"peer=('{bridge_ip}'" in ln and "version=2 result=ok" in ln
                   for ln in node.output("inclavared").splitlines()), node.output("inclavared")


def test_collateral_comes_from_the_pccs_on_node1(cluster: Cluster) -> None:
    """shelter without --trust-sim: the simulated root is trusted explicitly, and the collateral for every
    node's quotes is fetched from eaa-pccs on node 1, across the bridge."""
    env = {**cluster.env, "EAA_PCCS_URL": cluster.pccs_url}
    addrs = [f"--addr=tcp://{n.ip}:1236" for n in cluster.nodes]
    r = shelter(cluster, *addrs, "--reference", str(cluster.reference), "--trust-root",
                str(cluster.base / "sim" / "root_ca.pem"), "--output", "json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] and [n["ok"] for n in out["nodes"]] == [True] * NODES
    metrics = subprocess.run([sys.executable, "-c", "import sys, urllib.request; sys.stdout.write(urllib.request"
                              f".urlopen('http://{cluster.nodes[0].ip}:8081/metrics', timeout=10).read().decode())"],
                             capture_output=True, text=True, timeout=60).stdout
    served = [ln for ln in metrics.splitlines() if ln.startswith("eaa_pccs_http_requests_total")
              and 'status="200"' in ln and "certification" in ln]
    assert served, metrics[-2000:]
    # the same run without the PCCS: no collateral for any node (a simulated platform's own collateral is
    # used only with --trust-sim), so every node fails
    r = shelter(cluster, *addrs, "--reference", str(cluster.reference), "--trust-root",
                str(cluster.base / "sim" / "root_ca.pem"), "--output", "json")
    assert r.returncode == 1
    assert {n["error_code"] for n in json.loads(r.stdout)["nodes"]} == {"UNTRUSTED_ROOT"}


def test_a_replaced_workload_fails_exactly_its_node(cluster: Cluster) -> None:
    node2 = cluster.nodes[1]
    node2.stop("workload")
    modify_program(node2.prog)
    _start_workload(node2, cluster.env, cluster.base)
    node2.wait_local(1234, "workload")
    addrs = [f"--addr=tcp://{n.ip}:1236" for n in cluster.nodes]
    r = shelter(cluster, *addrs, "--reference", str(cluster.reference), "--trust-sim")
    assert r.returncode == 1, r.stdout + r.stderr
    rows = table(r.stdout)
    failed = {a for a, cols in rows.items() if cols[0] != "ok"}
    assert failed == {f"tcp://{node2.ip}:1236"}
    assert "[POLICY_VIOLATION]" in " ".join(rows[f"tcp://{node2.ip}:1236"]) and "mrenclave" in r.stdout.lower()
    assert f"1 of 3 nodes failed: tcp://{node2.ip}:1236" in r.stderr
    # the failed row shows what node 2 runs now: a measurement unlike every other node's
    measurements = {a: cols[3] for a, cols in rows.items()}
    others = {m for a, m in measurements.items() if a != f"tcp://{node2.ip}:1236"}
    assert len(others) == 1 and measurements[f"tcp://{node2.ip}:1236"] not in others | {"-"}
