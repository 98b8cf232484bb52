"""Revocation of SEV-SNP chains, checked by default by the ``sev_snp`` verifier, through every CRL source:
given with the certificates, files, AMD's KDS, eaa-pccs (through EAA_PCCS_URL, as for Intel data) and
the simulated platform; and the opt-out, which the result records."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from eaa.collateral.kds import KdsClient
from eaa.errors import CertificateChainError, CollateralMissing, InvalidSignature
from eaa.services.pccs import Mode
from eaa.sim import TrustedSimulation
from eaa.verify.registry import verifiers
from eaa.verify.snp_collateral import SnpCollateral
from test_pccs_support import fake_upstream, make_service, running
from test_snp_support import NOW, PSS, der
from test_snp_verifier import pki, signed  # noqa: F401  (the generated Milan PKI and a report it signs)

AT = NOW


def _crl(pki, revoked=(), signer=None) -> bytes:  # type: ignore[no-untyped-def]  # noqa: F811
    b = (x509.CertificateRevocationListBuilder().issuer_name(pki.ark.subject)
         .last_update(AT - dt.timedelta(days=1)).next_update(AT + dt.timedelta(days=30)))
    for serial in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(AT - dt.timedelta(days=2)).build())
    return b.sign(signer or pki.ark_key, hashes.SHA384(), rsa_padding=PSS).public_bytes(serialization.Encoding.DER)


def _verify(report: bytes, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("kds", False)
    v = verifiers.select("sev_snp", **kw)
    return v.verify_evidence(report, evidence_type="sev_snp", report_data_hash=None, collateral=None, at=AT)


def test_a_crl_is_required_by_default_and_the_opt_out_is_recorded(pki, signed) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    cert, _, report = signed
    source = SnpCollateral.of(vek=cert, chain=pki.chain)
    with pytest.raises(CollateralMissing, match="no CRL of ARK-Milan.*--no-crl"):
        _verify(report, amd_anchors=[pki.ark], collateral_source=source)
    res = _verify(report, amd_anchors=[pki.ark], collateral_source=source, check_crl=False)
    assert res.status == "UpToDate" and res.details["revocation"] == "not checked: disabled (check_crl=False, --no-crl)"


def test_given_crl(pki, signed) -> None:  # type: ignore[no-untyped-def]
    cert, _, report = signed
    ok = _verify(report, amd_anchors=[pki.ark], collateral_source=SnpCollateral.of(cert, pki.chain, _crl(pki, [7])))
    assert ok.details["revocation"].startswith("checked: the ASK is not on the CRL of ARK-Milan")
    with pytest.raises(CertificateChainError, match="revoked"):
        _verify(report, amd_anchors=[pki.ark],
                collateral_source=SnpCollateral.of(cert, pki.chain, _crl(pki, [pki.ask.serial_number])))
    from test_snp_support import rsa_key

    with pytest.raises(InvalidSignature):  # a CRL in the ARK's name that the ARK did not sign
        _verify(report, amd_anchors=[pki.ark],
                collateral_source=SnpCollateral.of(cert, pki.chain, _crl(pki, signer=rsa_key(7))))


def test_crl_files(pki, signed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, _, report = signed
    d = tmp_path / "amd"
    d.mkdir()
    (d / "vcek.der").write_bytes(der(cert))
    (d / "cert_chain.pem").write_bytes(pki.chain)
    (d / "crl.der").write_bytes(_crl(pki, [pki.ask.serial_number]))
    with pytest.raises(CertificateChainError, match="revoked"):
        _verify(report, amd_anchors=[pki.ark], collateral_source=d)
    crl = x509.load_der_x509_crl(_crl(pki, [5]))
    (d / "crl.der").unlink()
    (d / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))  # PEM works too
    assert _verify(report, amd_anchors=[pki.ark], collateral_source=d).details["revocation"].startswith("checked")
    (d / "crl.pem").unlink()
    with pytest.raises(CollateralMissing, match="CRL"):
        _verify(report, amd_anchors=[pki.ark], collateral_source=d)


def _kds_transport(pki, crl: bytes, hits: list[str]) -> httpx.MockTransport:  # type: ignore[no-untyped-def]
    def handler(request: httpx.Request) -> httpx.Response:
        hits.append(request.url.path)
        routes = {"/vcek/v1/Milan/crl": crl, "/vcek/v1/Milan/cert_chain": pki.chain}
        if request.url.path in routes:
            return httpx.Response(200, content=routes[request.url.path])
        return httpx.Response(404)

    return httpx.MockTransport(handler)


def test_crl_from_the_kds(pki, signed) -> None:  # type: ignore[no-untyped-def]
    cert, _, report = signed
    source = SnpCollateral.of(vek=cert, chain=pki.chain)
    hits: list[str] = []
    kds = KdsClient("https://kds.test", retries=0, trusted_arks=[pki.ark],
                    transport=_kds_transport(pki, _crl(pki, [pki.ask.serial_number]), hits))
    with pytest.raises(CertificateChainError, match="revoked"):
        _verify(report, amd_anchors=[pki.ark], collateral_source=source, kds=kds)
    assert "/vcek/v1/Milan/crl" in hits
    kds = KdsClient("https://kds.test", retries=0, trusted_arks=[pki.ark], transport=_kds_transport(pki, _crl(pki), []))
    res = _verify(report, amd_anchors=[pki.ark], collateral_source=source, kds=kds)
    assert res.details["collateral_source"] == "explicit + AMD KDS https://kds.test (crl)"


def test_crl_from_eaa_pccs_through_the_pccs_setting(pki, signed, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """EAA_PCCS_URL names eaa-pccs for Intel data; the sev_snp verifier asks it for AMD's CRL on the KDS paths."""
    cert, _, report = signed
    source = SnpCollateral.of(vek=cert, chain=pki.chain)
    revoking = _crl(pki, [pki.ask.serial_number])
    crls = [revoking]
    routes = {"/vcek/v1/Milan/crl": lambda q: (200, crls[0], {}),
              "/vcek/v1/Milan/cert_chain": lambda q: (200, pki.chain, {}),
              f"/vcek/v1/Milan/{bytes(range(64)).hex()}": lambda q: (200, der(cert), {})}
    with fake_upstream(routes) as amd:
        svc = make_service(str(tmp_path / "pccs.sqlite3"), mode=Mode.LAZY, kds_url=amd.url, trusted_arks=[pki.ark])
        with running(svc) as srv:
            monkeypatch.setenv("EAA_QCNL_CONF", str(tmp_path / "none.conf"))
            (tmp_path / "none.conf").write_text('{"pccs_url": "https://pccs.invalid/sgx/certification/v4/"}')
            monkeypatch.setenv("EAA_PCCS_URL", f"{srv.url}/sgx/certification/v4/")
            with pytest.raises(CertificateChainError, match="revoked"):
                _verify(report, amd_anchors=[pki.ark], collateral_source=source, kds=None)
            assert amd.hits["/vcek/v1/Milan/crl"] == 1  # eaa-pccs fetched it from "AMD" and cached it
    # Nothing on disk at all: the VCEK, the chain and the CRL all come through eaa-pccs.
    crls[0] = _crl(pki, [12345])
    with fake_upstream(routes) as amd:
        svc = make_service(str(tmp_path / "pccs2.sqlite3"), mode=Mode.LAZY, kds_url=amd.url, trusted_arks=[pki.ark])
        with running(svc) as srv:
            monkeypatch.setenv("EAA_PCCS_URL", f"{srv.url}/sgx/certification/v4/")
            res = _verify(report, amd_anchors=[pki.ark], kds=None)
            assert res.status == "UpToDate" and res.details["revocation"].startswith("checked")
            assert res.details["collateral_source"] == f"AMD KDS {srv.url} (VCEK, cert_chain, crl)"


def test_crl_of_the_simulated_platform(tmp_path: Path) -> None:
    from eaa.sim.snp import init_snp_platform

    sim = init_snp_platform(tmp_path / "sim", revoke_ask=True, now=NOW - dt.timedelta(days=1))
    report = sim.report(b"\x01" * 32, sim.guest(measurement=bytes(48)))
    with pytest.raises(CertificateChainError, match="revoked"):
        _verify(report, simulation=TrustedSimulation(tmp_path / "sim"))
    res = _verify(report, simulation=TrustedSimulation(tmp_path / "sim"), check_crl=False)
    assert res.simulated and res.details["revocation"].startswith("not checked")
