"""``eaa verify-snp`` over the shared SEV-SNP vectors: exit codes and one-line errors."""

from __future__ import annotations

import json

import pytest

from _vectors import require_vectors
from eaa.cli.eaa import main

AT = "2025-06-01T00:00:00Z"


def _args(**over: str) -> list[str]:
    d = require_vectors() / "snp-go-sev-guest"
    a = {"report": str(d / "attestation.bin"), "--vek": str(d / "vcek.testcer"),
         "--chain": str(d / "ask_ark_milan.pem")}
    a.update(over)
    crl = [] if "--crl" in a or "--kds-url" in a else ["--no-crl"]  # the real chain's CRL is not among the vectors
    return ["verify-snp", a.pop("report"), *[x for k, v in a.items() for x in (k, v)], "--at", AT, "--product",
            "Milan", *crl]


def test_verifies_a_real_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_args() + ["--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["tee"] == "sev-snp" and r["status"] == "UpToDate"
    assert r["measurements"]["measurement"].startswith("b07af962")
    assert r["details"]["revocation"] == "not checked: disabled (--no-crl)"


def test_revocation_is_checked_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --crl or --no-crl the CRL is fetched; a KDS that cannot be reached fails the verification."""
    from _procs import free_port

    assert main(_args(**{"--kds-url": f"http://127.0.0.1:{free_port()}"})) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(_args() + ["--crl", "x.der"]) == 2  # --crl and --no-crl together


def test_hex_report_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    d = require_vectors() / "snp-go-sev-guest"
    f = tmp_path / "report.hex"
    f.write_text((d / "attestation.bin").read_bytes().hex())
    assert main(_args(report=str(f))) == 0
    assert "SEV-SNP report verified" in capsys.readouterr().out


@pytest.mark.parametrize("over,code", [
    ({"--vek": "snp-trustee/test-vcek-invalid-new.der"}, 4),
    ({"--chain": "snp-go-sev-guest/ask_ark_genoa.pem"}, 4),
    ({"--vek": "does-not-exist.der"}, 6),
])
def test_failures(over: dict[str, str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    d = require_vectors()
    assert main(_args(**{k: str(d / v) for k, v in over.items()})) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_garbage_report(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "r.bin"
    f.write_bytes(b"\x02" + bytes(100))
    assert main(_args(report=str(f))) == 3
    assert "FORMAT_ERROR" in capsys.readouterr().err
