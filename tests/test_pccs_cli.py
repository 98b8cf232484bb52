"""Command-line flows: ``eaa verify-quote`` fetching through a PCCS, the simulated platform's collateral
served as an upstream (``eaa sim collateral`` -> ``eaa-pccs import`` -> OFFLINE eaa-pccs -> LAZY
eaa-pccs -> verifier), HTTPS with a given certificate, and ``eaa-pccs`` import/export."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from eaa.cli.eaa import main as eaa_main
from eaa.cli.pccs_server import main as pccs_main
from eaa.collateral.pcs import PcsClient
from eaa.errors import EaaError
from eaa.services.pccs import Mode
from eaa.services.pccs.records import parse_bundle, records_from_collateral
from test_pccs_support import fake_upstream, intel_routes, make_service, running, vector_case


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No system QCNL file, no shared cache: each test configures its own PCCS."""
    monkeypatch.setattr("eaa.collateral.qcnl.DEFAULT_QCNL_PATH", str(tmp_path / "no-qcnl.conf"))
    monkeypatch.delenv("EAA_PCCS_URL", raising=False)
    monkeypatch.delenv("EAA_QCNL_CONF", raising=False)
    monkeypatch.delenv("EAA_TRUST_SIMULATION", raising=False)
    monkeypatch.setenv("EAA_COLLATERAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EAA_SIM_DIR", str(tmp_path / "sim"))
    return tmp_path


def _json_run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, object]:
    rc = eaa_main(argv)
    out = capsys.readouterr()
    try:
        return rc, json.loads(out.out)
    except ValueError:
        return rc, out.err.strip()


def test_verify_quote_fetches_from_configured_pccs(isolated_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    case = vector_case("dcap-qvl/sgx_v3")
    quote = isolated_env / "quote.bin"
    quote.write_bytes(case.quote)
    files = isolated_env / "coll.json"
    files.write_text(case.collateral.to_qvl_json())
    at = ["--at", str(case.verify_at), "--json"]
    rc, expected = _json_run(["verify-quote", str(quote), "--collateral", str(files), *at], capsys)
    assert rc == 0 and expected["status"] == "ConfigurationAndSWHardeningNeeded"  # type: ignore[index]
    rc, err = _json_run(["verify-quote", str(quote), *at], capsys)  # no PCCS configured: unchanged behaviour
    assert rc == 6 and "COLLATERAL_MISSING" in str(err)
    with fake_upstream(intel_routes(case)) as up:
        svc = make_service(str(isolated_env / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url,
                           anchors=case.anchors, clock=lambda: float(case.verify_at))
        with running(svc) as srv:
            conf = isolated_env / "qcnl.conf"
            conf.write_text(f'{{\n  // test\n  "pccs_url": "{srv.url}/sgx/certification/v4/",\n'
                            '  "use_secure_cert": false\n}\n')
            monkeypatch.setenv("EAA_QCNL_CONF", str(conf))
            rc, got = _json_run(["verify-quote", str(quote), *at], capsys)
            assert rc == 0 and got == expected
            monkeypatch.delenv("EAA_QCNL_CONF")
            monkeypatch.setenv("EAA_PCCS_URL", srv.url)
            rc, got = _json_run(["verify-quote", str(quote), *at], capsys)
            assert rc == 0 and got == expected
            assert up.total == 4


def test_simulated_platform_served_as_upstream(isolated_env: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    sim = isolated_env / "sim"
    assert eaa_main(["sim", "init", "--dir", str(sim)]) == 0
    for tee in ("sgx", "tdx"):
        assert eaa_main(["sim", "collateral", "--dir", str(sim), "--tee", tee, "-o", str(isolated_env / tee)]) == 0
        assert eaa_main(["sim", "quote", "--dir", str(sim), "--tee", tee, "--report-data", "aa" * 64,
                         "-o", str(isolated_env / f"{tee}.quote")]) == 0
    assert eaa_main(["sim", "root", "--dir", str(sim), "-o", str(isolated_env / "root.pem")]) == 0
    capsys.readouterr()
    # the static upstream: an OFFLINE eaa-pccs holding the imported simulated collateral
    db = isolated_env / "static.sqlite3"
    assert pccs_main(["import", str(isolated_env / "sgx"), str(isolated_env / "tdx"), "--db", str(db),
                      "--trust-root", str(isolated_env / "root.pem")]) == 0
    assert "Imported 8 records" in capsys.readouterr().out
    from eaa.services.pccs.setup import resolve_anchors

    anchors = resolve_anchors([str(isolated_env / "root.pem")], False)
    static = make_service(str(db), mode=Mode.OFFLINE, anchors=anchors)
    with running(static) as upstream:
        lazy = make_service(str(isolated_env / "lazy.sqlite3"), mode=Mode.LAZY, upstream_url=upstream.url,
                            anchors=anchors)
        with running(lazy) as srv:
            monkeypatch.setenv("EAA_PCCS_URL", srv.url)
            for tee in ("sgx", "tdx"):
                rc, result = _json_run(["verify-quote", str(isolated_env / f"{tee}.quote"),
                                        "--trust-root", str(isolated_env / "root.pem"), "--json"], capsys)
                assert rc == 0, result
                assert result["simulated"] is True and result["tee"] == tee  # type: ignore[index]
                assert result["status"] == "UpToDate"  # type: ignore[index]
            assert lazy.store.count() == 6  # SGX and TDX TCB info and QE identities, both CRLs
    # without the simulated root the same PCCS data is refused
    rc = eaa_main(["verify-quote", str(isolated_env / "sgx.quote")])
    assert rc != 0


def _tls_cert(d: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (d / "tls.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return d / "tls.pem", d / "tls.key"


def test_https_with_given_certificate(tmp_path: Path) -> None:
    case = vector_case("dcap-qvl/tdx_v4")
    cert, key = _tls_cert(tmp_path)
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors)
    svc.import_records(records_from_collateral(case.collateral, now=0.0))
    with running(svc, certfile=str(cert), keyfile=str(key)) as srv:
        assert srv.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        client = PcsClient(srv.url, anchors=case.anchors, verify=ctx, retries=0, clock=lambda: float(case.verify_at))
        assert client.tcb_info("tdx", case.fmspc).text.startswith('{"tcbInfo"')
        with pytest.raises(EaaError):  # an unknown certificate is refused (a typed transport error)
            PcsClient(srv.url, anchors=case.anchors, retries=0).qe_identity("tdx")
        with pytest.raises(httpx.HTTPError):  # and plain HTTP is not served
            httpx.get(srv.url.replace("https://", "http://") + "/healthz")


def test_serve_requires_https_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert pccs_main(["serve", "--listen", "127.0.0.1:0"]) == 2
    assert "--insecure-http" in capsys.readouterr().err
    assert pccs_main([]) == 2


def test_cli_import_export_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from _vectors import require_vectors

    case = vector_case("dcap-qvl/sgx_v3")
    src = require_vectors() / case.vector["collateral"]["qvl_json"]
    db = str(tmp_path / "a.sqlite3")
    assert pccs_main(["import", str(src), "--db", db]) == 0
    assert pccs_main(["export", "--db", db, "-o", str(tmp_path / "b.json")]) == 0
    bundle = (tmp_path / "b.json").read_text()
    assert len(parse_bundle(bundle)) == 4
    assert pccs_main(["import", str(tmp_path / "b.json"), "--db", str(tmp_path / "c.sqlite3")]) == 0
    # a bundle that does not verify against the trusted roots is refused as a whole
    bad = bundle.replace(parse_bundle(bundle)[0].to_json()["body"][:40], "A" * 40, 1)
    (tmp_path / "bad.json").write_text(bad)
    capsys.readouterr()
    assert pccs_main(["import", str(tmp_path / "bad.json"), "--db", str(tmp_path / "d.sqlite3")]) != 0
    assert "rejected" in capsys.readouterr().err
    # through a running server with the admin token
    svc = make_service(str(tmp_path / "e.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors)
    (tmp_path / "token").write_text("tok\n")
    with running(svc, admin_token="tok") as srv:
        assert pccs_main(["import", str(src), "--url", srv.url, "--admin-token-file", str(tmp_path / "token")]) == 0
        assert pccs_main(["export", "--url", srv.url, "--admin-token-file", str(tmp_path / "token"),
                          "-o", str(tmp_path / "f.json")]) == 0
    assert len(parse_bundle((tmp_path / "f.json").read_text())) == 4


def test_console_script_entry_point() -> None:
    r = subprocess.run([sys.executable, "-m", "eaa.cli.pccs_server", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "serve" in r.stdout and "import" in r.stdout
    r = subprocess.run([sys.executable, "-m", "eaa.cli.eaa", "pccs", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "export" in r.stdout


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_serve_stops_cleanly_on_a_signal(tmp_path: Path, sig: int, status: int) -> None:
    """uvicorn shuts down gracefully and re-raises the signal; eaa-pccs exits with a status instead of
    dying by it, and logs no traceback."""
    from _procs import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "eaa.cli.pccs_server", "serve", "--mode", "offline",
                             "--insecure-http", "--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "db")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.1)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, out
    assert "Traceback" not in out and "Finished server process" in out
