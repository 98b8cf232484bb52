"""The simulated platform: state directory, PKI, CRLs and signed collateral (eaa.sim)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import eaa.sim.platform as platform_mod
from _sim import T0, _never_the_real_home, plat  # noqa: F401 - shared fixtures
from eaa.collateral.bundle import Collateral, load_collateral
from eaa.errors import ConfigError, FormatError
from eaa.formats.der import decode_int, decode_oid, read_tlv
from eaa.formats.enclave_identity import EnclaveIdentity
from eaa.formats.pck_extensions import SGX_EXTENSION_OID, parse_sgx_extension
from eaa.formats.tcb_info import TcbInfo
from eaa.pki.chain import verify_raw_signature
from eaa.pki.trust import is_simulation_certificate
from eaa.sim import (
    TCB_STATES,
    PlatformExists,
    SimPlatform,
    default_sim_dir,
    der,
    generate_files,
    init_platform,
    load_platform,
    simulation_anchor,
    simulation_collateral,
)
from eaa.sim.pki import raw_public_key


def _all_certs(p: SimPlatform) -> list[x509.Certificate]:
    return [p.root_certificate, p.pck_ca_certificate, p.pck_certificate, p.tcb_signing_certificate]


# ---- the small DER encoder ----

@pytest.mark.parametrize("n,hexval", [(0, "020100"), (1, "020101"), (127, "02017f"), (128, "02020080"),
                                      (255, "020200ff"), (256, "02020100"), (-1, "0201ff"), (-129, "0202ff7f")])
def test_der_integer(n: int, hexval: str) -> None:
    assert der.integer(n).hex() == hexval
    tag, value, end = read_tlv(der.integer(n), 0, "t")
    assert tag == 0x02 and decode_int(value, "t") == n


@pytest.mark.parametrize("dotted", ["1.2.840.113741.1.13.1", "1.2.840.113741.1.13.1.2.18", "2.999.3", "0.39"])
def test_der_oid_round_trip(dotted: str) -> None:
    _, value, _ = read_tlv(der.oid(dotted), 0, "oid")
    assert decode_oid(value) == dotted


def test_der_oid_known_bytes_and_errors() -> None:
    assert der.oid("1.2.840.113741.1.13.1").hex() == "06092a864886f84d010d01"
    for bad in ("1", "3.1", "1.40", "1.-2"):
        with pytest.raises(ValueError):
            der.oid(bad)


def test_der_long_lengths_and_other_types() -> None:
    big = der.octet_string(bytes(300))
    assert big[:4].hex() == "04820" + "12c"
    tag, value, end = read_tlv(big, 0, "x")
    assert tag == 0x04 and len(value) == 300 and end == len(big)
    assert der.octet_string(bytes(200))[:3].hex() == "0481c8"
    assert der.boolean(True).hex() == "0101ff" and der.boolean(False).hex() == "010100"
    assert der.enumerated(1).hex() == "0a0101"
    assert der.sequence(der.integer(1), der.integer(2)).hex() == "3006020101020102"


def test_sgx_extension_rejects_wrong_sizes() -> None:
    from eaa.sim.pki import sgx_extension_der

    good = dict(ppid=bytes(16), tcb_components=[0] * 16, pce_svn=0, cpu_svn=bytes(16), pce_id=bytes(2),
                fmspc=bytes(6), sgx_type=0)
    sgx_extension_der(**good)  # type: ignore[arg-type]
    for key, bad in (("ppid", bytes(15)), ("tcb_components", [0] * 15), ("cpu_svn", bytes(17)), ("pce_id", bytes(3)),
                     ("fmspc", bytes(5))):
        with pytest.raises(ValueError):
            sgx_extension_der(**{**good, key: bad})  # type: ignore[arg-type]


# ---- PKI ----

def test_root_is_a_simulation_never_intel(plat: SimPlatform) -> None:
    root = plat.root_certificate
    assert "SIMULATION" in root.subject.rfc4514_string()
    assert is_simulation_certificate(root)
    assert root.subject == root.issuer
    for cert in _all_certs(plat):
        for n in (cert.subject, cert.issuer):
            assert "intel" not in n.rfc4514_string().lower()
    for crl_der in (plat.root_ca_crl, plat.pck_crl):
        assert "intel" not in x509.load_der_x509_crl(crl_der).issuer.rfc4514_string().lower()
    anchor = simulation_anchor(plat.sim_dir)
    assert anchor.simulated and anchor.certificate == root


def test_chain_structure(plat: SimPlatform) -> None:
    root, pck_ca, pck, tcb = _all_certs(plat)
    root.verify_directly_issued_by(root)
    pck_ca.verify_directly_issued_by(root)
    pck.verify_directly_issued_by(pck_ca)
    tcb.verify_directly_issued_by(root)
    bc = {c: c.extensions.get_extension_for_class(x509.BasicConstraints).value for c in _all_certs(plat)}
    assert bc[root].ca and bc[root].path_length == 1
    assert bc[pck_ca].ca and bc[pck_ca].path_length == 0
    assert not bc[pck].ca and not bc[tcb].ca
    assert "SGX PCK Certificate" in pck.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert "PCK Platform CA" in pck_ca.subject.rfc4514_string()
    for cert in _all_certs(plat):
        assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha256"
        assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]


def test_pck_sgx_extension(plat: SimPlatform) -> None:
    ext = plat.pck_certificate.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID))
    assert not ext.critical
    parsed = parse_sgx_extension(ext.value.value)  # type: ignore[attr-defined]
    p = plat.params
    assert parsed.tcb_components == p.tcb_components
    assert parsed.pce_svn == p.pce_svn
    assert parsed.cpu_svn == p.cpu_svn
    assert parsed.pce_id == p.pce_id
    assert parsed.fmspc == p.fmspc
    assert parsed.ppid == p.ppid and len(parsed.ppid) == 16
    assert parsed.sgx_type == 1
    assert parsed.platform_instance_id is not None and len(parsed.platform_instance_id) == 16
    assert parsed.configuration == {"dynamic_platform": False, "cached_keys": True, "smt_enabled": True}


def test_validity_windows_start_before_now_and_last(plat: SimPlatform) -> None:
    for cert in _all_certs(plat):
        assert T0 - timedelta(days=1) < cert.not_valid_before_utc < T0
        assert cert.not_valid_after_utc - T0 > timedelta(days=10 * 365)
    for crl_der in (plat.root_ca_crl, plat.pck_crl):
        crl = x509.load_der_x509_crl(crl_der)
        assert T0 - timedelta(days=1) < crl.last_update_utc < T0
        assert crl.next_update_utc is not None and crl.next_update_utc - T0 > timedelta(days=360)
    for tee in ("sgx", "tdx"):
        c = plat.collateral(tee)
        for item in (TcbInfo.from_body(c.tcb_info, c.tcb_info_signature),
                     EnclaveIdentity.from_body(c.qe_identity, c.qe_identity_signature)):
            assert T0 - timedelta(days=1) < item.issue_date < T0
            assert item.next_update - T0 > timedelta(days=360)


def test_crls(tmp_path: Path, plat: SimPlatform) -> None:
    root_crl = x509.load_der_x509_crl(plat.root_ca_crl)
    pck_crl = x509.load_der_x509_crl(plat.pck_crl)
    assert root_crl.issuer == plat.root_certificate.subject
    assert root_crl.is_signature_valid(plat.root_certificate.public_key())  # type: ignore[arg-type]
    assert pck_crl.issuer == plat.pck_certificate.issuer == plat.pck_ca_certificate.subject
    assert pck_crl.is_signature_valid(plat.pck_ca_certificate.public_key())  # type: ignore[arg-type]
    assert not pck_crl.is_signature_valid(plat.root_certificate.public_key())  # type: ignore[arg-type]
    assert pck_crl.get_revoked_certificate_by_serial_number(plat.pck_certificate.serial_number) is None
    assert len(pck_crl) == 1  # another platform's PCK
    revoked = init_platform(tmp_path / "revoked", tcb="revoked", now=T0)
    crl = x509.load_der_x509_crl(revoked.pck_crl)
    assert crl.get_revoked_certificate_by_serial_number(revoked.pck_certificate.serial_number) is not None


def test_signed_collateral(plat: SimPlatform) -> None:
    key = plat.tcb_signing_certificate.public_key()
    for tee, tcb_id, qe_id in (("sgx", "SGX", "QE"), ("tdx", "TDX", "TD_QE")):
        c = plat.collateral(tee)
        # signatures: raw r||s over the exact UTF-8 bytes of the inner object
        assert len(c.tcb_info_signature) == 64 and len(c.qe_identity_signature) == 64
        verify_raw_signature(key, c.tcb_info_signature, c.tcb_info.encode(), "tcb")  # type: ignore[arg-type]
        verify_raw_signature(key, c.qe_identity_signature, c.qe_identity.encode(), "qe")  # type: ignore[arg-type]
        tcb = TcbInfo.from_body(c.tcb_info, c.tcb_info_signature)
        qe = EnclaveIdentity.from_body(c.qe_identity, c.qe_identity_signature)
        assert (tcb.id, tcb.version, qe.id, qe.version) == (tcb_id, 3, qe_id, 2)
        assert tcb.fmspc == plat.params.fmspc and tcb.pce_id == plat.params.pce_id
        statuses = [lv.status for lv in tcb.tcb_levels]
        for s in ("UpToDate", "SWHardeningNeeded", "ConfigurationNeeded", "OutOfDate"):
            assert s in statuses
        assert any(lv.advisory_ids for lv in tcb.tcb_levels)
        assert qe.mrsigner == (plat.params.td_qe_mrsigner if tee == "tdx" else plat.params.qe_mrsigner)
        assert qe.isvprodid == (2 if tee == "tdx" else 1)
        if tee == "tdx":
            assert tcb.tdx_module is not None
            ids = {m.id for m in tcb.tdx_module_identities}
            assert "TDX_01" in ids
            assert all(lv.tdx_components is not None for lv in tcb.tcb_levels)
        chain = x509.load_pem_x509_certificates(c.tcb_info_issuer_chain.encode())
        assert chain == [plat.tcb_signing_certificate, plat.root_certificate]
        assert x509.load_pem_x509_certificates(c.pck_crl_issuer_chain.encode()) == [
            plat.pck_ca_certificate, plat.root_certificate]


def test_collateral_file_forms_round_trip(tmp_path: Path, plat: SimPlatform) -> None:
    for tee in ("sgx", "tdx"):
        c = plat.collateral(tee)
        assert Collateral.from_qvl_json(c.to_qvl_json()) == c
        c.write_directory(tmp_path / tee)
        assert load_collateral(tmp_path / tee) == c
        assert load_collateral(tmp_path / tee / "collateral.json") == c
    assert simulation_collateral("tdx", plat.sim_dir) == plat.collateral("tdx")
    with pytest.raises(ConfigError, match="unknown TEE"):
        plat.collateral("sev")


def test_openssl_reads_certificates_and_crls(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl binary not installed")
    p = init_platform(tmp_path / "p", tcb="revoked")  # openssl checks against the real clock
    d = tmp_path / "out"
    d.mkdir()
    for name, cert in (("root", p.root_certificate), ("pck_ca", p.pck_ca_certificate), ("pck", p.pck_certificate),
                       ("tcb", p.tcb_signing_certificate)):
        (d / f"{name}.pem").write_bytes(cert.public_bytes(Encoding.PEM))
        out = subprocess.run([openssl, "x509", "-in", str(d / f"{name}.pem"), "-noout", "-text"],
                             capture_output=True, text=True, check=True).stdout
        assert "SIMULATION" in out and "ecdsa-with-SHA256" in out
        if name == "pck":
            assert "1.2.840.113741.1.13.1" in out
    crl_pems = []
    for name, crl_der in (("root_crl", p.root_ca_crl), ("pck_crl", p.pck_crl)):
        (d / f"{name}.der").write_bytes(crl_der)
        out = subprocess.run([openssl, "crl", "-inform", "DER", "-in", str(d / f"{name}.der"), "-noout", "-text"],
                             capture_output=True, text=True, check=True).stdout
        assert "SIMULATION" in out
        (d / f"{name}.pem").write_bytes(x509.load_der_x509_crl(crl_der).public_bytes(Encoding.PEM))
        crl_pems.append(str(d / f"{name}.pem"))
    ok = subprocess.run([openssl, "verify", "-CAfile", str(d / "root.pem"), "-untrusted", str(d / "pck_ca.pem"),
                         str(d / "pck.pem")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    ok = subprocess.run([openssl, "verify", "-CAfile", str(d / "root.pem"), str(d / "tcb.pem")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    crl_args = [a for f in crl_pems for a in ("-CRLfile", f)]
    revoked = subprocess.run([openssl, "verify", "-crl_check_all", *crl_args, "-CAfile", str(d / "root.pem"),
                              "-untrusted", str(d / "pck_ca.pem"), str(d / "pck.pem")], capture_output=True, text=True)
    assert revoked.returncode != 0 and "revoked" in (revoked.stdout + revoked.stderr)


# ---- generation is a function of (seed, now, state) ----

def test_generation_is_deterministic_in_seed_and_time() -> None:
    a = generate_files(seed=b"s" * 32, now=T0)
    b = generate_files(seed=b"s" * 32, now=T0)
    c = generate_files(seed=b"t" * 32, now=T0)
    assert set(a) == set(b)
    for name in a:
        if name.endswith((".key", ".json")) and "tcb_info" not in name and "qe_identity" not in name:
            assert a[name] == b[name], name
    for name in ("sgx_tcb_info.json", "tdx_qe_identity.json"):  # same body, fresh ECDSA nonce
        body = json.loads(a[name])
        assert json.loads(b[name]) | {"signature": ""} == body | {"signature": ""}
    assert a["root_ca.key"] != c["root_ca.key"]
    assert json.loads(a["platform.json"])["ppid"] != json.loads(c["platform.json"])["ppid"]
    naive = generate_files(seed=b"s" * 32, now=T0.replace(tzinfo=None))
    assert naive["platform.json"] == a["platform.json"]
    with pytest.raises(ConfigError, match="unknown TCB state"):
        generate_files(seed=b"s", now=T0, tcb="bogus")


def test_tcb_states_set_the_platform_svns(tmp_path: Path) -> None:
    seen = set()
    for state in TCB_STATES:
        p = init_platform(tmp_path / state, tcb=state, now=T0, seed=b"x" * 32)
        assert p.tcb_state == state
        seen.add((p.params.tcb_components, p.params.pce_svn, p.params.tee_tcb_svn))
    assert len(seen) == len(TCB_STATES) - 1  # "revoked" has the up-to-date SVNs


# ---- the state directory ----

def test_private_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        p = init_platform(tmp_path / "a" / "b" / "sim", now=T0)
    finally:
        os.umask(old)
    d = p.sim_dir
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    names = sorted(f.name for f in d.iterdir())
    assert "root_ca.key" in names and "pck.key" in names and "qe_attestation.key" in names
    for f in d.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f.name
    # nothing left behind beside it
    assert sorted(x.name for x in d.parent.iterdir()) == ["sim"]


def test_default_sim_dir() -> None:
    assert default_sim_dir({"EAA_SIM_DIR": "/x/y", "HOME": "/h"}) == Path("/x/y")
    assert default_sim_dir({"HOME": "/h"}) == Path("/h/.local/share/eaa/sim")
    assert default_sim_dir({"HOME": "/h", "XDG_DATA_HOME": "/data"}) == Path("/data/eaa/sim")
    assert default_sim_dir({"HOME": "/h", "XDG_DATA_HOME": "relative"}) == Path("/h/.local/share/eaa/sim")
    assert default_sim_dir({"EAA_SIM_DIR": ""} | {"HOME": "/h"}) == Path("/h/.local/share/eaa/sim")


def test_load_creates_on_first_use_then_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "sim"
    monkeypatch.setenv("EAA_SIM_DIR", str(d))
    with pytest.raises(ConfigError, match="no simulated platform"):
        load_platform(create=False)
    assert not d.exists()
    first = load_platform(now=T0)
    assert first.sim_dir == d and (d / "platform.json").is_file()
    assert load_platform().root_certificate == first.root_certificate
    assert load_platform(d, create=False).root_certificate == first.root_certificate
    assert simulation_anchor().certificate == first.root_certificate


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    d = tmp_path / "sim"
    first = init_platform(d, now=T0)
    with pytest.raises(PlatformExists, match="--force"):
        init_platform(d, now=T0)
    assert load_platform(d).root_certificate == first.root_certificate
    second = init_platform(d, force=True, tcb="outofdate", now=T0)
    assert second.root_certificate != first.root_certificate
    assert load_platform(d).tcb_state == "outofdate"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["sim"]  # old and temporary directories are gone
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_init_never_replaces_foreign_directories(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a simulated platform"):
        init_platform(home, force=True, now=T0)
    with pytest.raises(PlatformExists):
        init_platform(home, now=T0)
    with pytest.raises(ConfigError, match="not a simulated platform"):
        load_platform(home)
    assert (home / "precious.txt").read_text() == "keep me"
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        init_platform(f, now=T0)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["file", "home"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert init_platform(empty, now=T0).sim_dir == empty  # an empty directory is taken over
    assert stat.S_IMODE(empty.stat().st_mode) == 0o700


def test_unwritable_parent(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    with pytest.raises(ConfigError, match="cannot create"):
        init_platform(blocker / "sim", now=T0)


def test_concurrent_creation_is_tolerated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "sim"
    real = platform_mod.generate_files
    other: list[SimPlatform] = []

    def racing(**kw: object) -> dict[str, bytes]:
        files = real(**kw)  # type: ignore[arg-type]
        if not other:  # another process finishes first
            monkeypatch.setattr(platform_mod, "generate_files", real)
            other.append(init_platform(d, now=T0))
        return files

    monkeypatch.setattr(platform_mod, "generate_files", racing)
    got = load_platform(d, now=T0)
    assert got.root_certificate == other[0].root_certificate


def test_damaged_platforms_are_reported(tmp_path: Path) -> None:
    d = tmp_path / "sim"
    init_platform(d, now=T0)
    (d / "signer.key").unlink()
    with pytest.raises(ConfigError, match="incomplete.*signer.key"):
        load_platform(d)
    init_platform(d, force=True, now=T0)
    (d / "pck.key").write_bytes(b"garbage")
    with pytest.raises(FormatError, match="damaged"):
        load_platform(d)
    init_platform(d, force=True, now=T0)
    params = json.loads((d / "platform.json").read_text())
    for bad in ({"format": 99}, {"fmspc": "zz"}, {"ppid": "00"}, {"tcb_components": [1] * 3}, {"tcb_state": "x"}):
        (d / "platform.json").write_text(json.dumps(params | bad))
        with pytest.raises(FormatError):
            load_platform(d)
    (d / "platform.json").write_text("{not json")
    with pytest.raises(FormatError, match="not JSON"):
        load_platform(d)
    (d / "platform.json").write_text(json.dumps(params))
    (d / "root_ca.key").write_bytes(
        b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
        b"-----END PRIVATE KEY-----\n")  # an Ed25519 key
    with pytest.raises(FormatError, match="not an EC key"):
        load_platform(d)
    init_platform(d, force=True, now=T0)
    (d / "pck_crl.der").write_bytes(bytes(2 << 20))
    with pytest.raises(FormatError, match="too large"):
        load_platform(d)


def test_raw_public_key_form(plat: SimPlatform) -> None:
    xy = raw_public_key(plat.pck_certificate.public_key())  # type: ignore[arg-type]
    assert len(xy) == 64
    point = plat.pck_certificate.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert point == b"\x04" + xy
