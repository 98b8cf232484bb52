"""The EAA flow with SEV-SNP evidence from the simulated SNP platform: enclave-tls-server and inclavared
attest with ``sim_sev_snp``, shelter verifies both (chain, CRL, report) and appraises the workload.

With ``--endorsements`` the certificates travel with the evidence (TLS extension and protocol relay): shelter
then verifies with nothing on disk but the simulated ARK and no reachable KDS."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from _procs import Proc, free_port, run
from eaa.sim import init_platform
from eaa.sim.snp import init_snp_platform
from test_eaa_flow import program_copy


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("snpflow")
    init_platform(d / "sim")
    init_snp_platform(d / "sim")  # before the processes start, so they share one platform
    e = dict(os.environ)
    e.pop("EAA_TRUST_SIMULATION", None)
    e.pop("EAA_PCCS_URL", None)
    e["EAA_QCNL_CONF"] = str(d / "no-pccs.conf")  # no PCCS: nothing may be fetched
    (d / "no-pccs.conf").write_text("# no PCCS\n")
    e["EAA_SIM_DIR"] = str(d / "sim")
    e["EAA_TEST_DIR"] = str(d)
    return e


NO_KDS = ["--kds-url", "http://127.0.0.1:9/"]  # nothing listens there: any fetch would fail


class SnpNode:
    def __init__(self, env: dict[str, str], name: str, *, endorsements: bool = False) -> None:
        base = Path(env["EAA_TEST_DIR"]) / name
        self.prog = program_copy(base / "prog")
        wport, self.port = free_port(), free_port()
        e = ["--endorsements", *NO_KDS] if endorsements else []
        self.workload = Proc("eaa.cli.enclave_tls_server",
                             ["--ip", "127.0.0.1", "--port", str(wport), "--mutual", "--attester", "sim_sev_snp",
                              "--trust-sim", "--measure", str(self.prog), *e], env, base / "workload.log", port=wport)
        self.inclavared = Proc("eaa.cli.inclavared",
                               ["--listen", f"127.0.0.1:{self.port}", "--xfer", f"127.0.0.1:{wport}",
                                "--attester", "sim_sev_snp", "--verifier", "sev_snp", "--mutual", "--trust-sim", *e],
                               env, base / "inclavared.log", port=self.port)
        self.addr = f"tcp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.inclavared.stop()
        self.workload.stop()


@pytest.fixture(scope="module")
def node(env: dict[str, str]) -> Iterator[SnpNode]:
    n = SnpNode(env, "snp")
    yield n
    n.stop()


@pytest.fixture(scope="module")
def carrying(env: dict[str, str]) -> Iterator[SnpNode]:
    """Workload and inclavared that send their certificate table (and CRL) with their evidence."""
    n = SnpNode(env, "snp-e", endorsements=True)
    yield n
    n.stop()


def shelter(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    r = run("eaa.cli.shelter", ["remoteattestation", *args], env)
    assert "Traceback" not in r.stderr
    return r.returncode, r.stdout, r.stderr


def test_snp_flow_with_reference_values(env: dict[str, str], node: SnpNode) -> None:
    ref = Path(env["EAA_TEST_DIR"]) / "snp-reference.toml"
    r = run("eaa.cli.shelter", ["mrenclave", "--sim", str(node.prog), "--tee", "snp", "-o", str(ref)], env)
    assert r.returncode == 0, r.stderr
    rc, out, err = shelter(env, f"--addr={node.addr}", "--trust-sim", "--reference", str(ref), "--output", "json")
    assert rc == 0, err + node.inclavared.output()
    (n,) = json.loads(out)["nodes"]
    assert n["simulated"] and n["inclavared_evidence"] == "sev_snp" and n["workload_evidence"] == "sev_snp"
    w = n["workload"]
    assert w["tee"] == "sev-snp" and w["status"] == "UpToDate" and w["measurements"]["measurement"] in ref.read_text()
    assert w["details"]["report_version"] == 4 and w["details"]["revocation"].startswith("checked")
    assert w["details"]["root"].startswith("EAA simulated SEV-SNP ARK-Milan")
    assert n["inclavared_verdict"]["ok"] is True
    rc, out, err = shelter(env, f"--addr={node.addr}", "--trust-sim", "--reference", str(ref))
    assert rc == 0 and "workload: sev_snp (fresh: nonce bound) evidence verified, TEE sev-snp" in out
    assert "MEASUREMENT:" in out


def test_snp_flow_failures(env: dict[str, str], node: SnpNode) -> None:
    bad = Path(env["EAA_TEST_DIR"]) / "bad-snp.json"
    bad.write_text(json.dumps({"reference": {"measurement": "00" * 48}}))
    rc, _, err = shelter(env, f"--addr={node.addr}", "--trust-sim", "--reference", str(bad))
    assert rc == 1 and "measurement mismatch" in err
    policy = Path(env["EAA_TEST_DIR"]) / "snp-policy.toml"
    policy.write_text("[policy.snp]\nmin_guest_svn = 1\n")
    rc, _, err = shelter(env, f"--addr={node.addr}", "--trust-sim", "--policy", str(policy), "--no-reference")
    assert rc == 1 and "snp.guest_svn" in err
    rc, _, err = shelter(env, f"--addr={node.addr}", "--no-reference")  # the simulated ARK is not trusted by default
    assert rc == 1 and "UNTRUSTED_ROOT" in err and "simulated SEV-SNP" in err
    assert node.inclavared.alive() and node.workload.alive()


def test_certificates_travel_with_the_evidence(env: dict[str, str], carrying: SnpNode) -> None:
    """shelter has no simulated platform and no KDS, only the simulated ARK as a file it trusts."""
    d = Path(env["EAA_TEST_DIR"])
    ark = d / "snp-ark.pem"
    r = run("eaa.cli.eaa", ["sim", "root", "--tee", "snp", "-o", str(ark)], env)
    assert r.returncode == 0, r.stderr
    ref = d / "snp-e-reference.toml"
    r = run("eaa.cli.shelter", ["mrenclave", "--sim", str(carrying.prog), "--tee", "snp", "-o", str(ref)], env)
    assert r.returncode == 0, r.stderr
    bare = dict(env, EAA_SIM_DIR=str(d / "shelter-has-no-platform"))
    (d / "shelter-has-no-platform").mkdir(exist_ok=True)
    rc, out, err = shelter(bare, f"--addr={carrying.addr}", "--trust-root", str(ark), *NO_KDS,
                           "--reference", str(ref), "--output", "json")
    assert rc == 0, err + carrying.inclavared.output()
    (n,) = json.loads(out)["nodes"]
    assert n["inclavared_verdict"]["ok"] is True  # inclavared verified the relayed evidence with its certificates
    for result in (n["workload"], n["inclavared"]):
        assert result["tee"] == "sev-snp" and result["status"] == "UpToDate" and result["simulated"]
        assert result["details"]["collateral_source"] == "evidence"
        assert result["details"]["revocation"].startswith("checked")
        assert result["details"]["root"] == str(ark)  # the trusted file, not the ARK the evidence carried
    # a root it does not trust: refused with the check that failed, whatever the evidence carried
    other = d / "other-sim"
    r = run("eaa.cli.eaa", ["sim", "init", "--dir", str(other)], env)
    assert r.returncode == 0, r.stderr
    other_ark = d / "other-ark.pem"
    assert run("eaa.cli.eaa", ["sim", "root", "--tee", "snp", "--dir", str(other), "-o", str(other_ark)],
               env).returncode == 0
    rc, _, err = shelter(bare, f"--addr={carrying.addr}", "--trust-root", str(other_ark), *NO_KDS, "--no-reference")
    assert rc == 1 and "UNTRUSTED_ROOT" in err and "SNP_ARK_TRUSTED" in err
    assert carrying.inclavared.alive() and carrying.workload.alive()


def test_without_endorsements_shelter_needs_certificates(env: dict[str, str], node: SnpNode) -> None:
    """A node that does not send them: shelter's TLS check of inclavared finds no VCEK and cannot fetch one."""
    d = Path(env["EAA_TEST_DIR"])
    ark = d / "snp-ark-2.pem"
    assert run("eaa.cli.eaa", ["sim", "root", "--tee", "snp", "-o", str(ark)], env).returncode == 0
    bare = dict(env, EAA_SIM_DIR=str(d / "shelter-has-no-platform-2"))
    (d / "shelter-has-no-platform-2").mkdir(exist_ok=True)
    rc, _, err = shelter(bare, f"--addr={node.addr}", "--trust-root", str(ark), *NO_KDS, "--no-reference")
    assert rc == 1 and "Traceback" not in err
    assert "UPSTREAM_UNAVAILABLE" in err and "127.0.0.1:9/vcek/v1/Milan/" in err  # it had to ask the KDS
