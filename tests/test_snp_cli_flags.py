"""--snp-product and --kds-url of shelter, inclavared and enclave-tls-server/-client reach the sev_snp
verifier those programs build, and, without --kds-url, AMD data comes from the PCCS configured for Intel
data (EAA_PCCS_URL / qcnl pccs_url), else from AMD's KDS."""

from __future__ import annotations

from pathlib import Path

import pytest

from eaa.cli import enclave_tls_client, enclave_tls_server, inclavared, shelter
from eaa.collateral.kds import KDS_URL
from eaa.errors import ConfigError
from eaa.tls.peer import make_peer_verifier
from eaa.verify.snp_collateral import default_kds_url
from eaa.verify.snp_verifier import SevSnpVerifier

FLAGS = ["--snp-product", "Genoa", "--kds-url", "https://pccs.example:8081"]


def _snp_verifiers(argv: list[str]) -> list[SevSnpVerifier]:
    """The sev_snp verifier of every endpoint configuration each program builds from ``argv``."""
    configs = []
    args = shelter.build_parser().parse_args(["remoteattestation", "--no-reference", *argv])
    configs.append(shelter._options(args, *shelter._policies(args)).tls)
    args = inclavared.build_parser().parse_args(["--listen", "127.0.0.1:1", "--xfer", "127.0.0.1:2", *argv])
    cfg = inclavared.build_config(args)
    configs += [cfg.upstream_tls, cfg.server_tls]
    configs.append(enclave_tls_server.config_from_args(enclave_tls_server.build_parser().parse_args(argv)))
    configs.append(enclave_tls_server.config_from_args(enclave_tls_client.build_parser().parse_args(argv)))
    out = []
    for config in configs:
        v = make_peer_verifier(config).verifier("sev_snp")
        assert isinstance(v, SevSnpVerifier)
        out.append(v)
    return out


def test_flags_reach_the_sev_snp_verifier() -> None:
    for v in _snp_verifiers(FLAGS + ["--no-crl"]):
        assert v.product == "Genoa" and v._kds_option == "https://pccs.example:8081" and not v.check_crl
        assert v._kds_client().base_url == "https://pccs.example:8081"  # type: ignore[union-attr]
    for v in _snp_verifiers([]):  # defaults: product from the report (Milan for v2), revocation on
        assert v.product is None and v._kds_option is None and v.check_crl


@pytest.mark.parametrize("argv", [["--kds-url", "ftp://x"], ["--kds-url", "nohost"]])
def test_bad_kds_url_is_a_config_error(argv: list[str]) -> None:
    with pytest.raises(ConfigError, match="--kds-url"):
        _snp_verifiers(argv)
    with pytest.raises(SystemExit):
        shelter.build_parser().parse_args(["remoteattestation", "--snp-product", "Rome"])


def test_amd_data_comes_from_the_configured_pccs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "sgx_default_qcnl.conf"
    monkeypatch.setenv("EAA_QCNL_CONF", str(conf))
    monkeypatch.delenv("EAA_PCCS_URL", raising=False)
    conf.write_text('{"pccs_url": "https://pccs.local:8081/sgx/certification/v4/", "use_secure_cert": false}')
    assert default_kds_url() == ("https://pccs.local:8081", False)
    monkeypatch.setenv("EAA_PCCS_URL", "https://other:9000/sgx/certification/v3/")
    assert default_kds_url()[0] == "https://other:9000"
    (v,) = _snp_verifiers([])[:1]
    assert v._kds_client().base_url == "https://other:9000"  # type: ignore[union-attr]
    # Intel's PCS serves no AMD data: AMD's KDS then
    monkeypatch.setenv("EAA_PCCS_URL", "https://api.trustedservices.intel.com/sgx/certification/v4/")
    assert default_kds_url() == (KDS_URL, True)
    conf.write_text("# nothing configured\n")
    monkeypatch.delenv("EAA_PCCS_URL")
    assert default_kds_url() == (KDS_URL, True)
