"""Every vector of the shared manifest gives its expected result at its verify_at."""

from __future__ import annotations

import json

import pytest

from _vectors import anchors, collateral, get_vector, quote_bytes, require_vectors, vector_ids
from eaa import errors
from eaa.cli.eaa import main as eaa_main
from eaa.formats.quote import parse_quote
from eaa.verify.dcap import verify_quote

ERROR_KINDS = {
    "TCB_NOT_SUPPORTED": errors.TcbNotSupported,
    "UNSUPPORTED_CERTIFICATION_DATA": errors.UnsupportedCertificationData,
}


@pytest.mark.parametrize("vid", vector_ids())
def test_vector_expected_result(vid: str) -> None:
    v = get_vector(vid)
    exp = v["expected"]
    raw = quote_bytes(v)
    if exp["result"] == "parse_only":
        q = parse_quote(raw)
        info = v["quote_info"]
        assert q.header.version == info["ver"]
        assert q.header.tee_type == int(info["tee"], 16)
        assert q.body_type == info["body_type"]
        assert q.trailing == info["trailing"]
        assert q.certification_data.cert_type == int(info["cd"].split("->")[-1])
        return
    if "collateral" not in v:  # parse-only vectors that still have an expected error
        coll = None
    else:
        coll, crl = collateral(v)
    if exp["result"] == "error":
        with pytest.raises(ERROR_KINDS[exp["error_kind"]]) as ei:
            if coll is None:
                from eaa.collateral.bundle import Collateral

                # Any well-formed collateral: the quote itself must be refused first.
                d = require_vectors()
                coll = Collateral.from_qvl_json((d / "dcap-qvl/sgx_quote_collateral.json").read_text())
                crl = True
            verify_quote(raw, coll, at=v.get("verify_at", 0), trust_anchors=anchors(v), check_crl=crl)
        assert ei.value.code == exp["error_kind"]
        return
    assert coll is not None
    r = verify_quote(raw, coll, at=v["verify_at"], trust_anchors=anchors(v), check_crl=crl)
    assert r.status == exp["status"]
    assert list(r.advisory_ids) == exp["advisory_ids"]
    assert r.collateral_expired == bool(exp.get("collateral_expired", False))
    assert r.simulated is False
    fields = v.get("report_fields", {})
    if "mr_enclave" in fields:
        assert r.measurements["mrenclave"] == fields["mr_enclave"]
    if "mr_td" in fields:
        assert r.measurements["mrtd"] == fields["mr_td"]
    if "report_data" in fields:
        assert r.report_data.hex() == fields["report_data"]
    for key in ("mrenclave", "mrsigner"):
        if key in exp:
            assert r.measurements[key] == exp[key]
    json.loads(r.to_json())


@pytest.mark.parametrize("vid", vector_ids())
def test_vector_parse_fields(vid: str) -> None:
    v = get_vector(vid)
    q = parse_quote(quote_bytes(v))
    info = v["quote_info"]
    assert q.header.version == info["ver"]
    assert q.body_type == info["body_type"]
    assert q.trailing == info["trailing"]
    if q.certification_data.cert_type == 5:
        assert len(q.certification_data.pem_chain) == 3
    hdr = v["expected"].get("header")
    if hdr:
        assert (q.header.qe_svn, q.header.pce_svn) == (hdr["qe_svn"], hdr["pce_svn"])


def test_strict_fails_on_stale_crl_vector() -> None:
    v = get_vector("mobilecoin-attestation/sgx_v3_stale_crl")
    coll, _ = collateral(v)
    with pytest.raises(errors.CollateralExpired):
        verify_quote(quote_bytes(v), coll, at=v["verify_at"], strict=True)


def test_intel_sample_needs_its_test_root() -> None:
    v = get_vector("intel-qvl-sample/sgx_v3_synthetic_test_root")
    coll, _ = collateral(v)
    with pytest.raises(errors.UntrustedRoot):
        verify_quote(quote_bytes(v), coll, at=v["verify_at"])
    assert verify_quote(quote_bytes(v), coll, at=v["verify_at"], trust_anchors=anchors(v)).status == "UpToDate"


def test_real_vector_rejected_with_other_root_only() -> None:
    v = get_vector("dcap-qvl/sgx_v3")
    coll, _ = collateral(v)
    test_root = anchors(get_vector("intel-qvl-sample/sgx_v3_synthetic_test_root"))
    with pytest.raises(errors.UntrustedRoot):
        verify_quote(quote_bytes(v), coll, at=v["verify_at"], trust_anchors=test_root)


def test_raw_parts_and_qvl_json_agree() -> None:
    d = require_vectors()
    v = get_vector("go-tdx-guest/tdx_v4_spr_e4")
    from eaa.collateral.bundle import Collateral

    assembled = Collateral.from_qvl_json((d / v["collateral"]["qvl_json"]).read_text())
    parts = dict(v, collateral={k: x for k, x in v["collateral"].items() if k != "qvl_json"})
    raw, _ = collateral(parts)
    assert raw.tcb_info == assembled.tcb_info
    assert raw.qe_identity_signature == assembled.qe_identity_signature
    assert raw.root_ca_crl == assembled.root_ca_crl and raw.pck_crl == assembled.pck_crl


# ---- the CLI over the same vectors ----

def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = eaa_main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_verifies_vector_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    d = require_vectors()
    v = get_vector("dcap-qvl/sgx_v3")
    rc, out, _ = _cli(capsys, "verify-quote", str(d / v["quote"]), "--collateral", str(d / v["collateral"]["qvl_json"]),
                      "--at", str(v["verify_at"]), "--json")
    assert rc == 0
    res = json.loads(out)
    assert res["status"] == "ConfigurationAndSWHardeningNeeded"
    assert res["advisory_ids"] == ["INTEL-SA-00289", "INTEL-SA-00615"]
    assert res["measurements"]["mrenclave"] == v["report_fields"]["mr_enclave"]


@pytest.mark.parametrize(
    "vid,extra,code",
    [
        ("dcap-qvl/tdx_v5_no_matching_tcb_level", [], 5),
        ("dcap-qvl/sgx_v3", ["--at", "1752919279", "--strict"], 7),
        ("intel-qvl-sample/sgx_v3_synthetic_test_root", [], 4),
    ],
)
def test_cli_exit_codes(capsys: pytest.CaptureFixture[str], vid: str, extra: list[str], code: int) -> None:
    d = require_vectors()
    v = get_vector(vid)
    args = ["verify-quote", str(d / v["quote"]), "--collateral", str(d / v["collateral"]["qvl_json"]),
            "--at", str(v["verify_at"]), *extra]
    rc, out, err = _cli(capsys, *args)
    assert rc == code
    assert "Traceback" not in err and err.count("\n") == 1


def test_cli_sample_with_trust_root_and_directory(capsys: pytest.CaptureFixture[str]) -> None:
    d = require_vectors() / "intel-qvl-sample" / "sgx"
    rc, out, err = _cli(capsys, "verify-quote", str(d / "quote.dat"), "--collateral", str(d), "--at", "1700000000",
                        "--trust-root", str(d / "trustedRootCaCert.pem"))
    assert rc == 0, err
    assert "UpToDate" in out


def test_cli_no_crl_vector(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    v = get_vector("oasis-core/sgx_v3_no_crl")
    coll, crl = collateral(v)
    assert not crl
    coll.write_directory(tmp_path / "c")
    q = require_vectors() / v["quote"]
    rc, _, err = _cli(capsys, "verify-quote", str(q), "--collateral", str(tmp_path / "c"), "--at", str(v["verify_at"]))
    assert rc == 6 and "COLLATERAL_MISSING" in err  # CRLs required unless --no-crl
    rc, out, _ = _cli(capsys, "verify-quote", str(q), "--collateral", str(tmp_path / "c"), "--at",
                      str(v["verify_at"]), "--no-crl")
    assert rc == 0 and "SWHardeningNeeded" in out


@pytest.mark.parametrize("content", [b"", b"\x03\x00", b"garbage" * 100, bytes(5000)])
def test_cli_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path, content: bytes) -> None:
    f = tmp_path / "q"
    f.write_bytes(content)
    rc, _, err = _cli(capsys, "verify-quote", str(f), "--collateral", str(tmp_path))
    assert rc == 3
    assert err.startswith("eaa: error [FORMAT_ERROR]") and err.count("\n") == 1


def test_cli_missing_collateral(capsys: pytest.CaptureFixture[str]) -> None:
    d = require_vectors()
    rc, _, err = _cli(capsys, "verify-quote", str(d / "dcap-qvl/sgx_quote"))
    assert rc == 6 and "COLLATERAL_MISSING" in err
