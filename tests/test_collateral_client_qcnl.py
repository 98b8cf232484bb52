"""QCNL configuration: both file forms, the EAA_PCCS_URL override, and PCCS URL splitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from eaa.collateral.pcs import PcsClient, split_service_url
from eaa.collateral.qcnl import load_qcnl, parse_qcnl, pccs_configured
from eaa.errors import ConfigError

JSON_CONF = """
{
  // *** ATTENTION : This file is in JSON format so the keys are case sensitive. Don't change them.
  //PCCS server address
  "pccs_url": "https://localhost:8081/sgx/certification/v4/",
  /* To accept insecure HTTPS certificate, set this option to false */
  "use_secure_cert": false,
  "collateral_service": "https://api.trustedservices.intel.com/sgx/certification/v4/",
  "pccs_api_version": "3.1",
  "retry_times": 6,
  "retry_delay": 10,
  "pck_cache_expire_hours": 168,
  "verify_collateral_cache_expire_hours": 24,
  "local_cache_only": false,
  "custom_request_options" : {
    "get_cert" : { "headers": { "head1": "value1" }, "params": { "param1": "value // not a comment" } },
  },
  "tcb_update_type": "early",
}
"""

LEGACY_CONF = """\
# PCCS server address
PCCS_URL=https://pccs.example:8081/sgx/certification/v3/
# To accept insecure HTTPS cert, set this option to FALSE
USE_SECURE_CERT=FALSE
RETRY_TIMES=3
"""


def test_json_with_comments_and_trailing_commas() -> None:
    c = parse_qcnl(JSON_CONF, "test")
    assert c is not None
    assert c.pccs_url == "https://localhost:8081/sgx/certification/v4/"
    assert c.use_secure_cert is False
    assert c.collateral_service == "https://api.trustedservices.intel.com/sgx/certification/v4/"
    assert c.pccs_api_version == "3.1"
    assert (c.retry_times, c.retry_delay) == (6, 10.0)
    assert c.verify_collateral_cache_expire_hours == 24
    assert c.tcb_update_type == "early"


def test_legacy_key_value_form() -> None:
    c = parse_qcnl(LEGACY_CONF, "legacy")
    assert c is not None
    assert c.pccs_url == "https://pccs.example:8081/sgx/certification/v3/"
    assert c.use_secure_cert is False and c.retry_times == 3
    assert parse_qcnl("PCCS_URL=https://h/\nUSE_SECURE_CERT=TRUE\n").use_secure_cert is True  # type: ignore[union-attr]


@pytest.mark.parametrize("text", [
    '{"pccs_url": 5}', '{"pccs_url": "ftp://x/"}', '{"pccs_url": "https://h/", "use_secure_cert": "maybe"}',
    '{"pccs_url": "https://h/", "tcb_update_type": "late"}', '{"pccs_url": "https://h/", "retry_times": "x"}',
    "[1, 2]", "{not json", "/* unterminated", "PCCS_URL=not a url",
    # inputs fuzzing found raising untyped errors (RecursionError, OverflowError, ValueError)
    "[" * 100_000, '{"a":' * 100_000, '{"pccs_url": "https://h/", "retry_times": 1e999}',
    '{"pccs_url": "https://h/", "retry_times": NaN}', '{"pccs_url": "https://h/", "retry_times": -Infinity}',
    '{"pccs_url": "https://h/", "retry_delay": 1e999}', '{"pccs_url": "https://h/", "pck_cache_expire_hours": NaN}',
    '{"pccs_url": "http://[::1"}', "PCCS_URL=http://[::1\n", '{"pccs_url": "https://h:99999/"}',
    '{"pccs_url": "https://h/", "retry_times": 2.5}', '{"pccs_url": "https://h/", "pccs_api_version": "4.0"}',
    '{"pccs_url": "https://h/", "local_pck_url": "http://[::1"}',
    '{"pccs_url": "https://h/", "custom_request_options": {"get_cert": {"headers": {"h": 1}}}}',
    '{"pccs_url": "https://h/", "custom_request_options": {"get_cert": {"headers": {"bad name": "v"}}}}',
    '{"pccs_url": "https://h/", "custom_request_options": {"get_everything": {}}}',
    '{"pccs_url": "https://h/", "custom_request_options": []}',
])
def test_malformed_configuration_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_qcnl(text, "bad")


def test_no_url_means_not_configured(tmp_path: Path) -> None:
    assert parse_qcnl('{"use_secure_cert": true}') is None
    conf = tmp_path / "q.conf"
    conf.write_text("# nothing here\nUSE_SECURE_CERT=TRUE\n")
    assert load_qcnl(conf, environ={}) is None
    assert not pccs_configured(conf, environ={})


def test_env_override_and_missing_files(tmp_path: Path) -> None:
    conf = tmp_path / "q.conf"
    conf.write_text(JSON_CONF)
    c = load_qcnl(conf, environ={"EAA_PCCS_URL": "http://127.0.0.1:9/"})
    assert c is not None and c.pccs_url == "http://127.0.0.1:9/" and c.use_secure_cert is False
    assert load_qcnl(environ={"EAA_PCCS_URL": "https://p/", "EAA_QCNL_CONF": str(conf)}).pccs_url == "https://p/"  # type: ignore[union-attr]
    with pytest.raises(ConfigError):  # an explicitly named file must exist
        load_qcnl(tmp_path / "absent", environ={})
    with pytest.raises(ConfigError):
        load_qcnl(environ={"EAA_QCNL_CONF": str(tmp_path / "absent")})
    assert pccs_configured(conf, environ={})


def test_default_path_absent_is_not_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("eaa.collateral.qcnl.DEFAULT_QCNL_PATH", str(tmp_path / "none.conf"))
    assert load_qcnl(environ={}) is None
    assert load_qcnl(environ={"EAA_PCCS_URL": "https://p:8081"}).pccs_url == "https://p:8081"  # type: ignore[union-attr]


@pytest.mark.parametrize("url,base,version", [
    ("https://localhost:8081/sgx/certification/v4/", "https://localhost:8081", 4),
    ("https://localhost:8081/sgx/certification/v3", "https://localhost:8081", 3),
    ("https://h/prefix/tdx/certification/v4/", "https://h/prefix", 4),
    ("https://pccs.phala.network", "https://pccs.phala.network", None),
    ("http://127.0.0.1:9/", "http://127.0.0.1:9", None),
])
def test_split_service_url(url: str, base: str, version: int | None) -> None:
    assert split_service_url(url) == (base, version)


def test_client_from_config_versions() -> None:
    v3 = PcsClient.from_config(parse_qcnl(LEGACY_CONF), cache_dir=None)  # type: ignore[arg-type]
    assert v3.api_versions == (3,) and v3.base_url == "https://pccs.example:8081"
    v4 = PcsClient.from_config(parse_qcnl(JSON_CONF), cache_dir=None)  # type: ignore[arg-type]
    assert v4.api_versions == (4, 3) and v4.update == "early"
    assert v4.collateral_url == "https://api.trustedservices.intel.com"
    assert v4.url("sgx", 4, "pckcert").startswith("https://localhost:8081/")
    assert v4.url("tdx", 4, "tcb") == "https://api.trustedservices.intel.com/tdx/certification/v4/tcb"


def test_lenient_where_intel_is() -> None:
    """Intel's legacy parser skips a line without '=', and takes EARLY/STANDARD in capitals."""
    c = parse_qcnl("PCCS_URL=https://h/\nGARBAGE LINE\nUSE_SECURE_CERT=FALSE\n")
    assert c is not None and c.pccs_url == "https://h/" and c.use_secure_cert is False
    assert parse_qcnl("PCCS_URL") is None  # a lone key: nothing configured, not an error
    for value, expected in (("EARLY", "early"), ("Standard", "standard")):
        c = parse_qcnl(f'{{"pccs_url": "https://h/", "tcb_update_type": "{value}"}}')
        assert c is not None and c.tcb_update_type == expected
    c = parse_qcnl("PCCS_URL=https://h/\nTCB_UPDATE_TYPE=EARLY\nPCCS_API_VERSION=3.1\nLOCAL_CACHE_ONLY=TRUE\n")
    assert c is not None and (c.tcb_update_type, c.pccs_api_version, c.local_cache_only) == ("early", "3.1", True)
    c = parse_qcnl('{"pccs_url": "https://h/", "pccs_api_version": 3.1}')
    assert c is not None and c.pccs_api_version == "3.1"


def test_qcnl_conf_path_environment(tmp_path: Path) -> None:
    """Intel's QCNL finds its file through $QCNL_CONF_PATH; so does eaa ($EAA_QCNL_CONF wins)."""
    conf = tmp_path / "q.conf"
    conf.write_text('{"pccs_url": "https://intel-env:8081/sgx/certification/v4/"}')
    other = tmp_path / "other.conf"
    other.write_text("PCCS_URL=https://eaa-env/\n")
    c = load_qcnl(environ={"QCNL_CONF_PATH": str(conf)})
    assert c is not None and c.pccs_url.startswith("https://intel-env")
    c = load_qcnl(environ={"QCNL_CONF_PATH": str(conf), "EAA_QCNL_CONF": str(other)})
    assert c is not None and c.pccs_url == "https://eaa-env/"
    with pytest.raises(ConfigError):
        load_qcnl(environ={"QCNL_CONF_PATH": str(tmp_path / "absent")})


def test_every_documented_key_reaches_the_client() -> None:
    conf = parse_qcnl(JSON_CONF.replace('"local_cache_only": false', '"local_cache_only": true').replace(
        '"pccs_api_version": "3.1"', '"pccs_api_version": "3.1", "local_pck_url": "http://127.0.0.1:9/sgx/certification/v4/"'))
    assert conf is not None
    client = PcsClient.from_config(conf, cache_dir=None)
    assert client.pck_url == "http://127.0.0.1:9" and client.pck_cache_only is True
    assert client.request_options["get_cert"] == ({"head1": "value1"}, {"param1": "value // not a comment"})
    # pccs_api_version is ignored (3.1 forced, no /crl) when the collateral comes from Intel's PCS
    assert client.crl_by_uri is False
    c2 = PcsClient.from_config(parse_qcnl('{"pccs_url": "https://p/", "pccs_api_version": "3.1"}'),  # type: ignore[arg-type]
                               cache_dir=None)
    assert c2.crl_by_uri is True and c2.pck_url is None and c2.pck_cache_only is False


def test_retry_delay_as_qcnl_uses_it() -> None:
    """Without retry_delay QCNL waits 1 s and doubles; with it, the same delay before every retry."""
    import httpx

    from eaa.collateral.http import HttpGetter

    backoff = PcsClient.from_config(parse_qcnl('{"pccs_url": "https://p/", "retry_times": 3}'),  # type: ignore[arg-type]
                                    cache_dir=None)
    assert (backoff.http.retries, backoff.http.retry_delay, backoff.http.backoff) == (3, 1.0, True)
    fixed = PcsClient.from_config(parse_qcnl(JSON_CONF), cache_dir=None)  # type: ignore[arg-type]
    assert (fixed.http.retries, fixed.http.retry_delay, fixed.http.backoff) == (6, 10.0, False)
    for exponential, expected in ((True, [2.0, 4.0, 8.0]), (False, [2.0, 2.0, 2.0])):
        sleeps: list[float] = []
        getter = HttpGetter(retries=3, retry_delay=2.0, backoff=exponential, sleep=sleeps.append,
                            transport=httpx.MockTransport(lambda r: httpx.Response(503)))
        assert getter.get("https://p/x").status == 503
        assert sleeps == expected
