"""Simulated quotes: exact bytes, verification by eaa.verify.dcap (and dcap-qvl), the sim attesters."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from _sim import T0, _never_the_real_home, plat  # noqa: F401 - shared fixtures
from eaa.attest.registry import attesters
from eaa.errors import CertificateChainError, CollateralExpired, ConfigError, UntrustedRoot, VerificationError
from eaa.evidence import Evidence
from eaa.formats.enclave_identity import EnclaveIdentity
from eaa.formats.quote import INTEL_QE_VENDOR_ID, parse_quote
from eaa.formats.tcb_info import TcbInfo
from eaa.pki.chain import public_key_from_raw, verify_raw_signature
from eaa.sim import (
    EXPECTED_STATUS,
    TCB_STATES,
    SimPlatform,
    init_platform,
    measure_files,
    simulation_anchor,
    simulation_collateral,
    tdx_measure,
)
from eaa.sim.attesters import SimSgxEcdsaAttester, SimTdxEcdsaAttester
from eaa.sim.pki import raw_public_key
from eaa.sim.quote import QE_AUTH_DATA
from eaa.verify.dcap import verify_quote

AT = T0 + timedelta(minutes=5)
RD = bytes(range(64))


def _verify(p: SimPlatform, raw: bytes, tee: str, **kw: object):  # type: ignore[no-untyped-def]
    return verify_quote(raw, p.collateral(tee), at=kw.pop("at", AT), trust_anchors=[simulation_anchor(p.sim_dir)],
                        **kw)  # type: ignore[arg-type]


# ---- exact bytes ----

def test_sgx_v3_layout(plat: SimPlatform) -> None:
    raw = plat.make_sgx_quote(RD, mrenclave=b"\x11" * 32, isv_prod_id=0x1234, isv_svn=0x0506)
    # header
    assert raw[0:2] == b"\x03\x00" and raw[2:4] == b"\x02\x00" and raw[4:8] == bytes(4)
    assert int.from_bytes(raw[8:10], "little") == 8  # QE SVN (its QE identity's UpToDate level)
    assert int.from_bytes(raw[10:12], "little") == plat.params.pce_svn
    assert raw[12:28] == bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
    assert raw[28:44] == plat.params.qe_id and raw[44:48] == bytes(4)
    # body (sgx_report_body_t at 48)
    body = raw[48:432]
    assert body[0:16] == plat.params.cpu_svn
    assert body[48:56] == (0x05).to_bytes(8, "little") and body[56:64] == (0xE7).to_bytes(8, "little")
    assert body[64:96] == b"\x11" * 32
    assert body[128:160] == hashlib.sha256(raw_public_key(plat._key("signer"))).digest() == plat.mrsigner
    assert body[256:258] == b"\x34\x12" and body[258:260] == b"\x06\x05"
    assert body[320:384] == RD
    # signature data
    sig_len = int.from_bytes(raw[432:436], "little")
    assert sig_len == len(raw) - 436
    sd = raw[436:]
    sig, att_key, qe_report, qe_sig = sd[0:64], sd[64:128], sd[128:512], sd[512:576]
    assert int.from_bytes(sd[576:578], "little") == 32 and sd[578:610] == QE_AUTH_DATA
    assert int.from_bytes(sd[610:612], "little") == 5
    chain_len = int.from_bytes(sd[612:616], "little")
    assert 616 + chain_len == len(sd)
    chain = x509.load_pem_x509_certificates(sd[616:])
    assert chain == [plat.pck_certificate, plat.pck_ca_certificate, plat.root_certificate]
    # the three signatures and the binding
    verify_raw_signature(public_key_from_raw(att_key, "ak"), sig, raw[:432], "quote")
    verify_raw_signature(plat.pck_certificate.public_key(), qe_sig, qe_report, "qe report")  # type: ignore[arg-type]
    assert qe_report[320:352] == hashlib.sha256(att_key + QE_AUTH_DATA).digest()
    assert qe_report[352:384] == bytes(32)
    # the shared parser agrees
    q = parse_quote(raw)
    assert q.header.version == 3 and q.tee == "sgx" and q.trailing == 0 and q.signed_length == 432
    assert q.body.mr_enclave == b"\x11" * 32 and q.body.isv_prod_id == 0x1234 and q.body.isv_svn == 0x0506  # type: ignore[union-attr]
    assert q.certification_data.cert_type == 5 and len(q.certification_data.pem_chain) == 3


def test_tdx_v4_layout(plat: SimPlatform) -> None:
    rtmrs = [bytes([i + 1]) * 48 for i in range(4)]
    raw = plat.make_tdx_quote(RD, mrtd=b"\x22" * 48, rtmrs=rtmrs)
    assert raw[0:2] == b"\x04\x00" and raw[2:4] == b"\x02\x00"
    assert int.from_bytes(raw[4:8], "little") == 0x81 and raw[8:12] == bytes(4)
    assert raw[12:28] == INTEL_QE_VENDOR_ID
    body = raw[48:632]
    assert body[0:16] == plat.params.tee_tcb_svn
    assert body[16:64] == plat.params.mr_seam
    assert body[112:120] == bytes(8)  # seam attributes
    assert int.from_bytes(body[120:128], "little") == 1 << 28  # SEPT_VE_DISABLE, not DEBUG
    assert body[136:184] == b"\x22" * 48
    assert [body[328 + 48 * i: 376 + 48 * i] for i in range(4)] == rtmrs
    assert body[520:584] == RD
    sig_len = int.from_bytes(raw[632:636], "little")
    assert sig_len == len(raw) - 636
    sd = raw[636:]
    sig, att_key = sd[0:64], sd[64:128]
    assert int.from_bytes(sd[128:130], "little") == 6
    assert int.from_bytes(sd[130:134], "little") == len(sd) - 134
    inner = sd[134:]
    qe_report, qe_sig = inner[0:384], inner[384:448]
    assert int.from_bytes(inner[448:450], "little") == 32
    assert int.from_bytes(inner[482:484], "little") == 5
    assert x509.load_pem_x509_certificates(inner[488:])[0] == plat.pck_certificate
    verify_raw_signature(public_key_from_raw(att_key, "ak"), sig, raw[:632], "quote")
    verify_raw_signature(plat.pck_certificate.public_key(), qe_sig, qe_report, "qe report")  # type: ignore[arg-type]
    assert qe_report[320:352] == hashlib.sha256(att_key + inner[450:482]).digest()
    q = parse_quote(raw)
    assert q.header.version == 4 and q.tee == "tdx" and q.body_type == 2 and q.signed_length == 632
    assert q.body.mr_td == b"\x22" * 48 and q.body.rtmr == tuple(rtmrs)  # type: ignore[union-attr]


def test_qe_reports_match_their_identities(plat: SimPlatform) -> None:
    for tee, raw in (("sgx", plat.make_sgx_quote(RD)), ("tdx", plat.make_tdx_quote(RD))):
        qe_report = parse_quote(raw).signature_data.qe.qe_report
        c = plat.collateral(tee)
        ident = EnclaveIdentity.from_body(c.qe_identity, c.qe_identity_signature)
        assert qe_report.mr_signer == ident.mrsigner and qe_report.isv_prod_id == ident.isvprodid
        assert qe_report.isv_svn == max(lv.isvsvn for lv in ident.tcb_levels)
        masked = bytes(a & m for a, m in zip(qe_report.attributes, ident.attributes_mask, strict=True))
        assert masked == bytes(a & m for a, m in zip(ident.attributes, ident.attributes_mask, strict=True))
        assert qe_report.misc_select & ident.miscselect_mask == ident.miscselect & ident.miscselect_mask
        assert not qe_report.debug


def test_tdx_module_fields_match_the_tcb_info(plat: SimPlatform) -> None:
    td = parse_quote(plat.make_tdx_quote(RD)).body
    c = plat.collateral("tdx")
    tcb = TcbInfo.from_body(c.tcb_info, c.tcb_info_signature)
    major = td.tee_tcb_svn[1]  # type: ignore[union-attr]
    assert major > 0
    module = next(m for m in tcb.tdx_module_identities if m.id == f"TDX_{major:02X}")
    assert td.mrsigner_seam == module.mrsigner  # type: ignore[union-attr]
    assert td.seam_attributes == module.attributes  # type: ignore[union-attr]
    assert td.tee_tcb_svn[0] >= max(lv.isvsvn for lv in module.tcb_levels)  # type: ignore[union-attr]


def test_report_data_and_argument_checks(plat: SimPlatform, tmp_path: Path) -> None:
    q = parse_quote(plat.make_sgx_quote(b"short"))
    assert q.report_data == b"short" + bytes(59)
    assert parse_quote(plat.make_tdx_quote(b"")).report_data == bytes(64)
    with pytest.raises(ConfigError, match="at most 64"):
        plat.make_sgx_quote(bytes(65))
    with pytest.raises(ConfigError, match="must be bytes"):
        plat.make_sgx_quote("text")  # type: ignore[arg-type]
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(ConfigError, match="not both"):
        plat.make_sgx_quote(RD, mrenclave=bytes(32), measure_paths=[tmp_path / "f"])
    with pytest.raises(ConfigError, match="32 bytes"):
        plat.make_sgx_quote(RD, mrenclave=bytes(31))
    with pytest.raises(ConfigError, match="48 bytes"):
        plat.make_tdx_quote(RD, mrtd=bytes(32))
    for bad in (-1, 65536, True, 1.5):
        with pytest.raises(ConfigError, match="0 to 65535"):
            plat.make_sgx_quote(RD, isv_prod_id=bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="0 to 65535"):
            plat.make_sgx_quote(RD, isv_svn=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="four RTMRs"):
        plat.make_tdx_quote(RD, rtmrs=[bytes(48)] * 5)
    with pytest.raises(ConfigError, match="RTMR1 must be 48"):
        plat.make_tdx_quote(RD, rtmrs=[bytes(48), bytes(47)])
    partial = parse_quote(plat.make_tdx_quote(RD, rtmrs=[b"\x01" * 48])).body.rtmr  # type: ignore[union-attr]
    assert partial == (b"\x01" * 48, bytes(48), bytes(48), bytes(48))
    with pytest.raises(ConfigError, match="unknown TEE"):
        plat.make_quote("sev", RD)


def test_measured_files_give_the_measurements(plat: SimPlatform, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "bin").write_bytes(b"\x7fELF program")
    (app / "conf").write_bytes(b"debug=0\n")
    sgx = parse_quote(plat.make_sgx_quote(RD, measure_paths=[app])).body
    tdx = parse_quote(plat.make_tdx_quote(RD, measure_paths=[app])).body
    assert sgx.mr_enclave == measure_files([app])  # type: ignore[union-attr]
    assert tdx.mr_td == tdx_measure([app])  # type: ignore[union-attr]
    assert parse_quote(plat.make_sgx_quote(RD)).body.mr_enclave == measure_files([])  # type: ignore[union-attr]
    for name in ("bin", "conf"):
        p = app / name
        original = p.read_bytes()
        p.write_bytes(original[:-1] + bytes([original[-1] ^ 0x80]))
        assert parse_quote(plat.make_sgx_quote(RD, measure_paths=[app])).body.mr_enclave != sgx.mr_enclave  # type: ignore[union-attr]
        assert parse_quote(plat.make_tdx_quote(RD, measure_paths=[app])).body.mr_td != tdx.mr_td  # type: ignore[union-attr]
        p.write_bytes(original)


# ---- verification by the project's verifier ----

@pytest.mark.parametrize("tee", ["sgx", "tdx"])
def test_quotes_verify_up_to_date_against_the_simulation_anchor(plat: SimPlatform, tee: str, tmp_path: Path) -> None:
    (tmp_path / "prog").write_bytes(b"program")
    if tee == "sgx":
        raw = plat.make_sgx_quote(RD, measure_paths=[tmp_path / "prog"], isv_prod_id=3, isv_svn=4)
    else:
        raw = plat.make_tdx_quote(RD, measure_paths=[tmp_path / "prog"], rtmrs=[b"\x05" * 48])
    r = _verify(plat, raw, tee)
    assert r.status == "UpToDate" and r.advisory_ids == ()
    assert r.tee == tee and r.simulated and not r.collateral_expired and not r.debug
    assert r.report_data == RD
    assert r.fmspc == plat.params.fmspc.hex()
    if tee == "sgx":
        assert r.measurements["mrenclave"] == measure_files([tmp_path / "prog"]).hex()
        assert r.measurements["mrsigner"] == plat.mrsigner.hex()
        assert (r.measurements["isv_prod_id"], r.measurements["isv_svn"]) == (3, 4)
    else:
        assert r.measurements["mrtd"] == tdx_measure([tmp_path / "prog"]).hex()
        assert r.measurements["rtmr0"] == (b"\x05" * 48).hex()


@pytest.mark.parametrize("tee", ["sgx", "tdx"])
def test_debug_flag(plat: SimPlatform, tee: str) -> None:
    for debug in (False, True):
        raw = plat.make_quote(tee, RD, debug=debug)
        body = parse_quote(raw).body
        assert body.debug is debug
        if tee == "sgx":
            assert bool(body.attributes[0] & 0x02) is debug  # type: ignore[union-attr]
        else:
            assert bool(body.td_attributes[0] & 0x01) is debug  # type: ignore[union-attr]
        r = _verify(plat, raw, tee)
        assert r.debug is debug and r.status == "UpToDate"


def test_the_tcb_states_required_by_the_issue() -> None:
    assert {k: EXPECTED_STATUS[k] for k in ("uptodate", "swhardening", "configuration", "outofdate", "revoked")} == {
        "uptodate": "UpToDate", "swhardening": "SWHardeningNeeded", "configuration": "ConfigurationNeeded",
        "outofdate": "OutOfDate", "revoked": "Revoked"}


@pytest.mark.parametrize("tee", ["sgx", "tdx"])
@pytest.mark.parametrize("state", list(TCB_STATES))
def test_each_tcb_state_gives_its_status(tmp_path: Path, state: str, tee: str) -> None:
    p = init_platform(tmp_path / "p", tcb=state, now=T0)
    r = _verify(p, p.make_quote(tee, RD), tee)
    assert r.status == EXPECTED_STATUS[state] == p.expected_status
    if state in ("swhardening", "outofdate", "configuration"):
        assert r.advisory_ids and all(a.startswith("SIM-SA-") for a in r.advisory_ids)


@pytest.mark.parametrize("tee", ["sgx", "tdx"])
def test_never_verifies_against_the_default_intel_anchor(plat: SimPlatform, tee: str) -> None:
    raw = plat.make_quote(tee, RD)
    with pytest.raises(UntrustedRoot):
        verify_quote(raw, plat.collateral(tee), at=AT)
    with pytest.raises(CertificateChainError):
        verify_quote(raw, plat.collateral(tee), at=AT, trust_anchors=None)
    from eaa.pki.trust import default_anchors

    with pytest.raises(CertificateChainError):
        verify_quote(raw, plat.collateral(tee), at=AT, trust_anchors=list(default_anchors()))


@pytest.mark.parametrize("tee", ["sgx", "tdx"])
def test_two_platforms_do_not_vouch_for_each_other(tmp_path: Path, tee: str) -> None:
    a = init_platform(tmp_path / "a", now=T0)
    b = init_platform(tmp_path / "b", now=T0)
    assert a.root_certificate.public_key() != b.root_certificate.public_key()
    assert a.params.ppid != b.params.ppid
    raw = a.make_quote(tee, RD)
    anchor_a, anchor_b = simulation_anchor(a.sim_dir), simulation_anchor(b.sim_dir)
    assert verify_quote(raw, a.collateral(tee), at=AT, trust_anchors=[anchor_a]).status == "UpToDate"
    with pytest.raises(UntrustedRoot):  # same subject names, different key
        verify_quote(raw, b.collateral(tee), at=AT, trust_anchors=[anchor_b])
    with pytest.raises(UntrustedRoot):
        verify_quote(raw, a.collateral(tee), at=AT, trust_anchors=[anchor_b])
    with pytest.raises(VerificationError):  # both trusted: the collateral still belongs to another root
        verify_quote(raw, b.collateral(tee), at=AT, trust_anchors=[anchor_a, anchor_b])


def test_tampering_is_detected(plat: SimPlatform) -> None:
    raw = bytearray(plat.make_sgx_quote(RD))
    raw[48 + 320] ^= 1  # report data
    with pytest.raises(VerificationError):
        _verify(plat, bytes(raw), "sgx")


def test_validity_in_time(plat: SimPlatform) -> None:
    raw = plat.make_sgx_quote(RD)
    assert not _verify(plat, raw, "sgx", at=T0 + timedelta(days=300)).collateral_expired
    late = _verify(plat, raw, "sgx", at=T0 + timedelta(days=400))
    assert late.collateral_expired and late.status == "UpToDate"
    with pytest.raises(CollateralExpired):
        _verify(plat, raw, "sgx", at=T0 + timedelta(days=400), strict=True)
    early = _verify(plat, raw, "sgx", at=T0 - timedelta(days=1))  # Intel's QVL checks expiry only
    assert early.status == "UpToDate" and early.details["not_yet_valid"]
    with pytest.raises(CollateralExpired):
        _verify(plat, raw, "sgx", at=T0 - timedelta(days=1), strict=True)
    assert not _verify(plat, raw, "sgx", at=int((T0 - timedelta(minutes=30)).timestamp())).collateral_expired


def test_current_time_is_the_default(tmp_path: Path) -> None:
    p = init_platform(tmp_path / "now")
    now = datetime.now(timezone.utc)
    assert p.root_certificate.not_valid_before_utc <= now
    r = verify_quote(p.make_sgx_quote(RD), p.collateral("sgx"), at=now, trust_anchors=[p.anchor()])
    assert r.status == "UpToDate" and not r.collateral_expired


# ---- an independent verifier (dcap-qvl), when installed ----

@pytest.mark.parametrize("tee", ["sgx", "tdx"])
def test_dcap_qvl_accepts_simulated_quotes(tmp_path: Path, tee: str) -> None:
    dcap_qvl = pytest.importorskip("dcap_qvl")
    for state in ("uptodate", "swhardening", "configuration", "outofdate", "revoked"):
        p = init_platform(tmp_path / state, tcb=state, now=T0)
        coll = dcap_qvl.QuoteCollateralV3.from_json(p.collateral(tee).to_qvl_json())
        root = p.root_certificate.public_bytes(Encoding.DER)
        raw = p.make_quote(tee, RD)
        if state == "revoked":
            with pytest.raises(ValueError, match="(?i)revoked"):
                dcap_qvl.verify_with_root_ca(raw, coll, root, int(AT.timestamp()))
            continue
        r = dcap_qvl.verify_with_root_ca(raw, coll, root, int(AT.timestamp()))
        assert r.status == EXPECTED_STATUS[state]


# ---- the attesters ----

def test_attesters_are_registered_but_never_automatic() -> None:
    sgx, tdx = attesters.get("sim_sgx_ecdsa"), attesters.get("sim_tdx_ecdsa")
    assert (sgx.priority, sgx.auto, tdx.priority, tdx.auto) == (52, False, 42, False)
    assert SimSgxEcdsaAttester.name == "sim_sgx_ecdsa" and SimSgxEcdsaAttester.evidence_type == "sgx_ecdsa"
    assert SimTdxEcdsaAttester.name == "sim_tdx_ecdsa" and SimTdxEcdsaAttester.evidence_type == "tdx_ecdsa"


@pytest.mark.parametrize("name,tee", [("sim_sgx_ecdsa", "sgx"), ("sim_tdx_ecdsa", "tdx")])
def test_attester_evidence_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, tee: str) -> None:
    monkeypatch.setenv("EAA_SIM_DIR", str(tmp_path / "env-sim"))
    (tmp_path / "app.py").write_bytes(b"print(1)")
    att = attesters.select(name, measure_paths=[tmp_path / "app.py"])
    ev = att.collect_evidence(b"nonce")
    assert isinstance(ev, Evidence)
    assert ev.type == f"{tee}_ecdsa" and ev.simulated and ev.report_data == b"nonce" + bytes(59)
    assert ev.collateral == simulation_collateral(tee)
    r = verify_quote(ev.data, ev.collateral, at=datetime.now(timezone.utc),  # type: ignore[arg-type]
                     trust_anchors=[simulation_anchor()])
    assert r.status == "UpToDate" and r.simulated and r.report_data == ev.report_data
    key = "mrenclave" if tee == "sgx" else "mrtd"
    want = measure_files([tmp_path / "app.py"]) if tee == "sgx" else tdx_measure([tmp_path / "app.py"])
    assert r.measurements[key] == want.hex()
    assert (tmp_path / "env-sim" / "platform.json").is_file()
    with pytest.raises(ConfigError, match="at most 64"):
        att.collect_evidence(bytes(65))


def test_attester_options(plat: SimPlatform, tmp_path: Path) -> None:
    a = SimSgxEcdsaAttester(sim_dir=plat.sim_dir, mrenclave=b"\x01" * 32, isv_prod_id=7, isv_svn=9, debug=True)
    body = parse_quote(a.collect_evidence(RD).data).body
    assert (body.mr_enclave, body.isv_prod_id, body.isv_svn, body.debug) == (b"\x01" * 32, 7, 9, True)  # type: ignore[union-attr]
    t = SimTdxEcdsaAttester(platform=plat, mrtd=b"\x02" * 48, rtmrs=[b"\x03" * 48], debug=True)
    td = parse_quote(t.collect_evidence(RD).data).body
    assert (td.mr_td, td.rtmr[0], td.debug) == (b"\x02" * 48, b"\x03" * 48, True)  # type: ignore[union-attr]
    (tmp_path / "f").write_bytes(b"f")
    assert SimSgxEcdsaAttester(platform=plat, measure_paths=str(tmp_path / "f")).mrenclave == measure_files(
        [tmp_path / "f"])
    with pytest.raises(ConfigError, match="not both"):
        SimSgxEcdsaAttester(platform=plat, mrenclave=bytes(32), measure_paths=[tmp_path / "f"])
    with pytest.raises(ConfigError, match="not both"):
        SimTdxEcdsaAttester(platform=plat, mrtd=bytes(48), measure_paths=[tmp_path / "f"])
    with pytest.raises(ConfigError, match="32 bytes"):
        SimSgxEcdsaAttester(platform=plat, mrenclave=bytes(3))
    with pytest.raises(ConfigError, match="48 bytes"):
        SimTdxEcdsaAttester(platform=plat, mrtd=bytes(3))
