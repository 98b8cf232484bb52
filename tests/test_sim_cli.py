"""``eaa sim`` and its round trip through ``eaa verify-quote --trust-sim``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from eaa.cli.eaa import main
from eaa.collateral.bundle import load_collateral
from eaa.formats.quote import parse_quote
from eaa.sim import load_platform, measure_files, tdx_measure


@pytest.fixture(autouse=True)
def _never_the_real_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test forgets to pass, the default platform directory is a temporary one."""
    monkeypatch.setenv("EAA_SIM_DIR", str(tmp_path / "default-sim"))


@pytest.fixture()
def sim_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "sim"
    monkeypatch.setenv("EAA_SIM_DIR", str(d))
    monkeypatch.delenv("EAA_TRUST_SIMULATION", raising=False)
    return d


def _has_verify_quote() -> bool:
    try:
        import eaa.cli.verify_quote_cmd  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


needs_verify_quote = pytest.mark.skipif(not _has_verify_quote(), reason="eaa verify-quote not available")


def test_init(sim_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "init"]) == 0
    out = capsys.readouterr().out
    assert str(sim_env) in out and "UpToDate" in out and "SIMULATION" in out
    root = load_platform(sim_env, create=False).root_certificate
    assert main(["sim", "init"]) == 2
    assert "--force" in capsys.readouterr().err
    assert load_platform(sim_env).root_certificate == root
    assert main(["sim", "init", "--force", "--tcb", "outofdate"]) == 0
    p = load_platform(sim_env)
    assert p.root_certificate != root and p.tcb_state == "outofdate"
    other = sim_env.parent / "other"
    assert main(["sim", "init", "--dir", str(other), "--tcb", "revoked"]) == 0
    assert load_platform(other).tcb_state == "revoked"
    capsys.readouterr()
    assert main(["sim", "init", "--force", "--tcb", "bogus"]) == 2
    assert "unknown TCB state 'bogus' (use uptodate, " in capsys.readouterr().err
    assert load_platform(sim_env).tcb_state == "outofdate"  # nothing was replaced


def test_sim_without_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim"]) == 2
    assert "init" in capsys.readouterr().err


def test_root(sim_env: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["sim", "root", "-o", str(tmp_path / "root.pem")]) == 0
    cert = x509.load_pem_x509_certificate((tmp_path / "root.pem").read_bytes())
    assert cert == load_platform(sim_env).root_certificate  # created on first use
    capsysbinary.readouterr()
    assert main(["sim", "root", "-o", "-"]) == 0
    assert x509.load_pem_x509_certificate(capsysbinary.readouterr().out) == cert
    assert main(["sim", "root", "-o", str(tmp_path / "missing-dir" / "root.pem")]) == 2


def test_quote_options(sim_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "main").write_bytes(b"binary")
    q = tmp_path / "q.bin"
    assert main(["sim", "quote", "--report-data", "0x" + "ab" * 64, "--measure", str(app), "--isv-prod-id", "3",
                 "--isv-svn", "4", "--debug", "-o", str(q)]) == 0
    out = capsys.readouterr()
    assert measure_files([app]).hex() in out.out and "simulated" in out.err
    body = parse_quote(q.read_bytes()).body
    assert body.report_data == b"\xab" * 64 and body.mr_enclave == measure_files([app])  # type: ignore[union-attr]
    assert (body.isv_prod_id, body.isv_svn, body.debug) == (3, 4, True)  # type: ignore[union-attr]
    assert main(["sim", "quote", "--report-data", "01", "--mrenclave", "cd" * 32, "-o", str(q)]) == 0
    assert parse_quote(q.read_bytes()).body.mr_enclave == b"\xcd" * 32  # type: ignore[union-attr]
    rt = ["--rtmr", "01" * 48, "--rtmr", "02" * 48]
    assert main(["sim", "quote", "--tee", "tdx", "--report-data", "02", "--measure", str(app), *rt, "-o", str(q)]) == 0
    td = parse_quote(q.read_bytes()).body
    assert td.mr_td == tdx_measure([app]) and td.rtmr[:2] == (b"\x01" * 48, b"\x02" * 48)  # type: ignore[union-attr]
    assert not td.debug
    assert main(["sim", "quote", "--tee", "tdx", "--report-data", "02", "--mrtd", "ef" * 48, "-o", str(q)]) == 0
    assert parse_quote(q.read_bytes()).body.mr_td == b"\xef" * 48  # type: ignore[union-attr]


def test_quote_to_stdout(sim_env: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["sim", "quote", "--report-data", "ff", "-o", "-"]) == 0
    captured = capsysbinary.readouterr()
    assert parse_quote(captured.out).report_data[:1] == b"\xff"
    assert b"MRENCLAVE" in captured.err


@pytest.mark.parametrize("argv,message", [
    (["--report-data", "zz"], "not hex"),
    (["--report-data", "00" * 65], "at most 64"),
    (["--report-data", "00", "--mrenclave", "00" * 31], "32 bytes"),
    (["--report-data", "00", "--mrtd", "00" * 48], "for TDX"),
    (["--report-data", "00", "--rtmr", "00" * 48], "for TDX"),
    (["--report-data", "00", "--tee", "tdx", "--isv-svn", "1"], "for SGX"),
    (["--report-data", "00", "--tee", "tdx", "--mrenclave", "00" * 32], "for SGX"),
    (["--report-data", "00", "--tee", "tdx", "--rtmr", "00" * 47], "48 bytes"),
    (["--report-data", "00", "--tee", "tdx"] + ["--rtmr", "00" * 48] * 5, "four RTMRs"),
    (["--report-data", "00", "--isv-prod-id", "70000"], "0 to 65535"),
    (["--report-data", "00", "--measure", "/nonexistent/eaa-test"], "cannot measure"),
])
def test_quote_errors(sim_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                      message: str) -> None:
    assert main(["sim", "quote", *argv, "-o", str(tmp_path / "q")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "q").exists()


def test_collateral(sim_env: Path, tmp_path: Path) -> None:
    for tee in ("sgx", "tdx"):
        out = tmp_path / f"coll-{tee}"
        assert main(["sim", "collateral", "--tee", tee, "-o", str(out)]) == 0
        assert (out / "collateral.json").is_file() and (out / "tcb_info.json").is_file()
        assert (out / "root_ca_crl.der").is_file() and (out / "pck_crl.der").is_file()
        assert load_collateral(out) == load_platform(sim_env).collateral(tee)
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert main(["sim", "collateral", "-o", str(blocker / "sub")]) == 2


@needs_verify_quote
@pytest.mark.parametrize("tee", ["sgx", "tdx"])
def test_round_trip_through_verify_quote(sim_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         tee: str) -> None:
    prog = tmp_path / "prog"
    prog.write_bytes(b"the program")
    q, coll = tmp_path / "q.bin", tmp_path / "coll"
    assert main(["sim", "quote", "--tee", tee, "--report-data", "1234", "--measure", str(prog), "-o", str(q)]) == 0
    assert main(["sim", "collateral", "--tee", tee, "-o", str(coll)]) == 0
    capsys.readouterr()
    assert main(["verify-quote", str(q), "--collateral", str(coll), "--trust-sim", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "UpToDate" and result["simulated"] is True and result["tee"] == tee
    assert result["report_data"].startswith("1234")
    key, want = ("mrenclave", measure_files([prog])) if tee == "sgx" else ("mrtd", tdx_measure([prog]))
    assert result["measurements"][key] == want.hex()
    # the text form warns about the simulation
    assert main(["verify-quote", str(q), "--collateral", str(coll), "--trust-sim"]) == 0
    assert "simulated" in capsys.readouterr().out.lower()
    # without --trust-sim the simulated root is not trusted
    assert main(["verify-quote", str(q), "--collateral", str(coll)]) == 4
    assert "UNTRUSTED_ROOT" in capsys.readouterr().err
    # explicit verification time: before the collateral existed, reported as Intel's QVL does (not fatal) ...
    assert main(["verify-quote", str(q), "--collateral", str(coll), "--trust-sim", "--at", "2000-01-01T00:00:00Z"]) == 0
    assert "not yet valid" in capsys.readouterr().out
    # ... and an error in strict mode
    assert main(["verify-quote", str(q), "--collateral", str(coll), "--trust-sim", "--at", "2000-01-01T00:00:00Z",
                 "--strict"]) == 7


@needs_verify_quote
def test_round_trip_with_another_platform_fails(sim_env: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    q, coll = tmp_path / "q.bin", tmp_path / "coll"
    assert main(["sim", "quote", "--report-data", "00", "-o", str(q)]) == 0
    assert main(["sim", "collateral", "-o", str(coll)]) == 0
    monkeypatch.setenv("EAA_SIM_DIR", str(tmp_path / "second"))
    assert main(["sim", "init"]) == 0
    assert main(["verify-quote", str(q), "--collateral", str(coll), "--trust-sim"]) == 4
    coll2 = tmp_path / "coll2"
    assert main(["sim", "collateral", "-o", str(coll2)]) == 0
    assert main(["verify-quote", str(q), "--collateral", str(coll2), "--trust-sim"]) == 4


@needs_verify_quote
def test_revoked_platform_through_the_cli(sim_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "init", "--tcb", "revoked"]) == 0
    q, coll = tmp_path / "q.bin", tmp_path / "coll"
    assert main(["sim", "quote", "--report-data", "00", "-o", str(q)]) == 0
    assert main(["sim", "collateral", "-o", str(coll)]) == 0
    capsys.readouterr()
    assert main(["verify-quote", str(q), "--collateral", str(coll), "--trust-sim", "--json"]) == 10
    assert json.loads(capsys.readouterr().out)["status"] == "Revoked"


def test_expired_collateral_is_pointed_out(sim_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import datetime, timedelta, timezone

    from eaa.sim import init_platform

    old = init_platform(sim_env, now=datetime.now(timezone.utc) - timedelta(days=400))
    assert old.collateral_expired()
    assert not old.collateral_expired(old.collateral_expires - timedelta(seconds=1))
    assert main(["sim", "quote", "--report-data", "00", "-o", str(tmp_path / "q")]) == 0
    assert "expired" in capsys.readouterr().err
    assert main(["sim", "collateral", "-o", str(tmp_path / "c")]) == 0
    assert "sim init --force" in capsys.readouterr().err
    assert main(["sim", "init", "--force"]) == 0
    capsys.readouterr()
    assert main(["sim", "quote", "--report-data", "00", "-o", str(tmp_path / "q")]) == 0
    assert "expired" not in capsys.readouterr().err


@needs_verify_quote
def test_verify_quote_takes_the_simulated_collateral_itself(sim_env: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    for tee in ("sgx", "tdx"):
        q = tmp_path / f"{tee}.bin"
        assert main(["sim", "quote", "--tee", tee, "--report-data", "00", "-o", str(q)]) == 0
        capsys.readouterr()
        assert main(["verify-quote", str(q), "--trust-sim", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["status"] == "UpToDate"


def test_init_creates_the_snp_platform_too(sim_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eaa.sim.snp import load_snp_platform

    assert main(["sim", "init", "--snp-product", "Genoa"]) == 0
    out = capsys.readouterr().out
    snp = load_snp_platform(sim_env, create=False)
    assert snp.product == "Genoa" and "SEV-SNP platform: Genoa, report version 4" in out
    assert snp.ark.fingerprint(hashes.SHA256()).hex() in out
    assert main(["sim", "init", "--force"]) == 0  # both regenerated
    assert load_snp_platform(sim_env, create=False).ark != snp.ark


def test_snp_report_round_trip(sim_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from eaa.formats.snp_report import SnpReport

    prog = tmp_path / "prog"
    prog.write_text("guest program\n")
    out, certs = tmp_path / "r.bin", tmp_path / "certs"
    assert main(["sim", "snp-report", "--report-data", "ab" * 32, "--measure", str(prog), "--guest-svn", "3",
                 "--certs", str(certs), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    r = SnpReport.parse(out.read_bytes())
    assert r.measurement == tdx_measure([prog]) and f"MEASUREMENT: {r.measurement.hex()}" in printed
    assert r.guest_svn == 3 and r.report_data == bytes([0xAB]) * 32 + bytes(32)
    assert sorted(p.name for p in certs.iterdir()) == ["ark.pem", "cert_chain.pem", "cert_table.bin", "crl.der",
                                                       "vcek.pem"]
    # eaa verify-snp: --trust-sim takes the certificates from the platform; refused without it
    assert main(["verify-snp", str(out), "--trust-sim", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["simulated"] and doc["details"]["revocation"].startswith("checked")
    assert main(["verify-snp", str(out)]) == 2  # no --vek/--chain and no --trust-sim
    capsys.readouterr()
    files = ["--vek", str(certs / "vcek.pem"), "--chain", str(certs / "cert_chain.pem"),
             "--crl", str(certs / "crl.der")]
    assert main(["verify-snp", str(out), *files]) == 4  # the simulated ARK is not trusted by default
    assert "SNP_ARK_TRUSTED" in capsys.readouterr().err
    assert main(["verify-snp", str(out), *files, "--trust-root", str(certs / "ark.pem")]) == 0
    ark = tmp_path / "ark.pem"
    assert main(["sim", "root", "--tee", "snp", "-o", str(ark)]) == 0
    assert ark.read_bytes() == (certs / "ark.pem").read_bytes()
    for bad in (["--measurement", "00" * 47], ["--vmpl", "4"], ["--host-data", "zz"], ["--report-data", "00" * 65]):
        args = ["sim", "snp-report", "--report-data", "00", "-o", str(tmp_path / "x"), *bad]
        assert main(args) == 2, bad
