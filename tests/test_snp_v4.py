"""A synthetic version 4 report (the layout of firmware 1.55.31), signed by the simulated SNP platform,
verified by ``verify_snp_report`` and ``eaa verify-snp`` with the platform's CRL from a file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from eaa.cli.eaa import main
from eaa.errors import FormatError, InvalidSignature
from eaa.formats.snp_report import SnpReport
from eaa.sim.snp import SimSnpPlatform, init_snp_platform
from eaa.verify.snp import verify_snp_report

T0 = dt.datetime(2030, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
AT = T0 + dt.timedelta(days=2)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimSnpPlatform:
    return init_snp_platform(tmp_path_factory.mktemp("v4") / "sim", now=T0)


@pytest.fixture(scope="module")
def v4(sim: SimSnpPlatform) -> bytes:
    return sim.report(b"\x04" * 64, sim.guest(measurement=b"\x4f" * 48, guest_svn=7))


def test_v4_layout(v4: bytes) -> None:
    r = SnpReport.parse(v4)
    assert r.version == 4 and (r.cpuid_fam_id, r.cpuid_mod_id, r.cpuid_step) == (0x19, 0x01, 0x01)
    assert r.product == "Milan" and r.launch_mit_vector is None
    assert (r.current_major, r.current_minor, r.current_build) == (1, 55, 31)
    bad = bytearray(v4)
    bad[0x1F8] = 1  # reserved in version 4 (mitigation vectors are version 5's)
    with pytest.raises(FormatError, match="offset 504"):
        SnpReport.parse(bytes(bad))


def test_v4_verifies(sim: SimSnpPlatform, v4: bytes) -> None:
    res = verify_snp_report(v4, vek=sim.vcek, chain=sim.chain_pem, at=AT, trust_anchors=[sim.anchor()],
                            crl=sim.crl, require_crl=True)
    assert res.status == "UpToDate" and res.simulated and res.details["report_version"] == 4
    assert res.measurements["guest_svn"] == 7 and res.details["revocation"].startswith("checked")
    tampered = bytearray(v4)
    tampered[0x04] ^= 1  # GUEST_SVN is signed
    with pytest.raises(InvalidSignature):
        verify_snp_report(bytes(tampered), vek=sim.vcek, chain=sim.chain_pem, at=AT, trust_anchors=[sim.anchor()])


def test_v4_through_eaa_verify_snp(sim: SimSnpPlatform, v4: bytes, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    files = {"report.bin": v4, "vcek.der": sim.vcek.public_bytes(Encoding.DER), "chain.pem": sim.chain_pem,
             "crl.der": sim.crl, "ark.pem": sim.ark.public_bytes(Encoding.PEM)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    base = ["verify-snp", str(tmp_path / "report.bin"), "--vek", str(tmp_path / "vcek.der"), "--chain",
            str(tmp_path / "chain.pem"), "--at", AT.isoformat()]
    assert main([*base, "--trust-root", str(tmp_path / "ark.pem"), "--crl", str(tmp_path / "crl.der"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["details"]["report_version"] == 4 and r["simulated"] is True
    assert main([*base, "--trust-root", str(tmp_path / "ark.pem"), "--crl", str(tmp_path / "crl.der")]) == 0
    out = capsys.readouterr().out
    assert "REVOCATION: checked" in out and "simulated evidence" in out
    assert main([*base, "--crl", str(tmp_path / "crl.der")]) == 4  # the simulated ARK is not trusted by default
    assert "simulated" in capsys.readouterr().err


@pytest.mark.parametrize(("product", "version"), [("Genoa", 3), ("Turin", 5), ("Milan", 2)])
def test_other_products_and_versions(tmp_path: Path, product: str, version: int) -> None:
    """The simulated platform as each product line: Turin's TCB layout and 8-byte hwID, v2 without CPUID
    (the product then comes from the VCEK, and a KDS fetch would default to Milan)."""
    sim = init_snp_platform(tmp_path / "sim", product=product, report_version=version, now=T0)
    report = sim.report(b"\x05" * 64, sim.guest(measurement=b"\x50" * 48))
    res = verify_snp_report(report, vek=sim.vcek, chain=sim.chain_pem, at=AT, trust_anchors=[sim.anchor()],
                            crl=sim.crl, require_crl=True)
    assert res.details["product"] == product and res.details["report_version"] == version
    assert res.details["product_source"] == ("report CPUID" if version >= 3 else "VEK certificate")
    assert ("fmc" in res.measurements["reported_tcb_spl"]) is (product == "Turin")
    if version == 5:
        assert res.measurements["launch_mit_vector"] == 0
