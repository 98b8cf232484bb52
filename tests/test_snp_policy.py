"""go-sev-guest ``validate.go`` checks as ``[policy.snp]`` settings and reference values: a report of the
simulated SNP platform that passes every check at once, then one change per check that fails exactly
that check, named by its stable identifier."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from eaa.errors import ConfigError, PolicyViolation
from eaa.policy import Policy
from eaa.sim import TrustedSimulation
from eaa.sim.snp import SimSnpPlatform, init_snp_platform
from eaa.verify.registry import verifiers
from eaa.verify.result import VerificationResult

T0 = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
AT = T0 + dt.timedelta(days=1)
AUTHOR = "a1" * 48
ID_KEY = "1d" * 48
POLICY = 0x30000 | 0x0100 | 1 << 20  # ABI 1.0, SMT allowed, single socket
GUEST: dict[str, Any] = dict(guest_svn=2, policy=POLICY, vmpl=0, host_data=b"\x11" * 32, family_id=b"\xfa" * 16,
                             image_id=b"\x1a" * 16, author_key_digest=bytes.fromhex(AUTHOR),
                             id_key_digest=bytes.fromhex(ID_KEY))
REPORT: dict[str, Any] = dict(platform_info=0b101, signer_info=1)  # SMT and ECC on; AUTHOR_KEY_EN


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimSnpPlatform:
    return init_snp_platform(tmp_path_factory.mktemp("snp") / "sim", now=T0)


def _tcb(sim: SimSnpPlatform, **spl: int) -> int:
    t = sim.tcb.to_bytes(8, "little")
    order = {"bl": 0, "tee": 1, "snp": 6, "ucode": 7}  # Milan's layout
    b = bytearray(t)
    for k, v in spl.items():
        b[order[k]] = v
    return int.from_bytes(b, "little")


def _result(sim: SimSnpPlatform, guest: dict[str, Any] | None = None, **report: Any) -> VerificationResult:
    g = sim.guest(measurement=b"\x42" * 48, **{**GUEST, **(guest or {})})
    raw = sim.report(b"\x01" * 32, g, **{**REPORT, **report})
    v = verifiers.select("sev_snp", simulation=TrustedSimulation(sim.directory.parent), kds=False)
    return v.verify_evidence(raw, evidence_type="sev_snp", report_data_hash=None, collateral=None, at=AT)


def _policy(sim: SimSnpPlatform, **snp: Any) -> Policy:
    settings: dict[str, Any] = {
        "min_guest_svn": 2, "minimum_tcb": {"bl": 4, "tee": 0, "snp": 22, "ucode": 213},
        "minimum_launch_tcb": f"0x{sim.tcb:016x}", "minimum_build": 31, "minimum_version": "1.55",
        "guest_policy": {"abi_major": 1, "abi_minor": 0, "single_socket": True},
        "vmpl": 0, "platform_info": {"smt_enabled": True, "ecc_enabled": True},
        "require_author_key": True, "trusted_author_key_digests": [AUTHOR], "trusted_id_key_digests": [ID_KEY],
    }
    settings.update(snp)
    reference = {"measurement": "42" * 48, "host_data": "11" * 32, "family_id": "fa" * 16, "image_id": "1a" * 16,
                 "chip_id": sim.chip_id.hex()}
    return Policy.from_mapping({"policy": {"snp": settings}, "reference": reference})


def test_everything_passes_together(sim: SimSnpPlatform) -> None:
    res = _result(sim)
    assert res.details["report_version"] == 4 and res.simulated
    assert _policy(sim).violations(res) == []
    assert Policy().violations(res) == []  # the default policy accepts the platform's ordinary reports


# (id, guest changes, report changes, policy changes)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("snp.guest_svn", {"guest_svn": 1}, {}, {}),
    ("snp.policy.abi", {"policy": POLICY & ~0xFF00}, {}, {}),
    ("snp.policy.smt", {}, {}, {"guest_policy": {"abi_major": 1, "single_socket": True, "smt": False}}),
    ("snp.policy.migrate_ma", {"policy": POLICY | 1 << 18}, {}, {}),
    ("snp.policy.cxl_allowed", {"policy": POLICY | 1 << 21}, {}, {}),
    ("snp.policy.single_socket", {"policy": POLICY & ~(1 << 20)}, {}, {}),
    ("snp.policy.mem_aes_256_xts", {}, {}, {"guest_policy": {"abi_major": 1, "single_socket": True,
                                                             "mem_aes_256_xts": True}}),
    ("snp.tcb.current_below_reported", {}, {"current_tcb": "ucode=200", "committed_tcb": "ucode=200"}, {}),
    ("snp.tcb.committed_not_current", {}, {"committed_tcb": "ucode=212"}, {}),
    ("snp.tcb.committed_above_current", {}, {"committed_tcb": "ucode=214"}, {"permit_provisional_firmware": True}),
    ("snp.tcb.minimum_launch", {}, {"launch_tcb": "snp=21"}, {}),
    ("snp.tcb.minimum", {}, {}, {"minimum_tcb": {"bl": 4, "snp": 23}}),
    ("snp.firmware.build", {}, {}, {"minimum_build": 32}),
    ("snp.firmware.version", {}, {}, {"minimum_version": "1.56"}),
    ("snp.firmware.committed_not_current", {}, {"committed_firmware": (1, 55, 30)}, {}),
    ("snp.firmware.committed_above_current", {}, {"committed_firmware": (1, 56, 31)},
     {"permit_provisional_firmware": True}),
    ("snp.platform_info.tsme_enabled", {}, {"platform_info": 0b111}, {}),
    ("snp.platform_info.ecc_enabled", {}, {"platform_info": 0b001}, {}),
    ("snp.platform_info.alias_check_complete", {}, {}, {"platform_info": {"smt_enabled": True, "ecc_enabled": True,
                                                                          "alias_check_complete": True}}),
    ("snp.author_key", {}, {"signer_info": 0}, {}),
    ("snp.author_key", {"author_key_digest": b"\x00" * 48}, {}, {}),
    ("snp.id_key", {"id_key_digest": b"\x00" * 48}, {}, {"require_author_key": False, "require_id_block": True,
                                                         "trusted_author_key_digests": []}),
    ("snp.vmpl", {"vmpl": 1}, {}, {}),
    ("measurement mismatch", {"measurement": None}, {}, {}),
    ("host_data mismatch", {"host_data": b"\x12" * 32}, {}, {}),
    ("family_id mismatch", {"family_id": b"\x00" * 16}, {}, {}),
    ("image_id mismatch", {"image_id": b"\x00" * 16}, {}, {}),
    ("debug enclave/TD is not accepted", {"policy": POLICY | 1 << 19}, {}, {}),
]


@pytest.mark.parametrize(("ident", "guest", "report", "settings"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_check_fails_on_its_own(sim: SimSnpPlatform, ident: str, guest: dict[str, Any], report: dict[str, Any],
                                     settings: dict[str, Any]) -> None:
    for key in ("current_tcb", "committed_tcb", "launch_tcb"):
        if key in report:
            k, v = report[key].split("=")
            report = {**report, key: _tcb(sim, **{k: int(v)})}
    if guest.get("measurement", 0) is None:  # another guest image
        guest = {k: v for k, v in guest.items() if k != "measurement"}
        g = sim.guest(measurement=b"\x43" * 48, **GUEST)
        raw = sim.report(b"\x01" * 32, g, **REPORT)
        v = verifiers.select("sev_snp", simulation=TrustedSimulation(sim.directory.parent), kds=False)
        res = v.verify_evidence(raw, evidence_type="sev_snp", report_data_hash=None, collateral=None, at=AT)
    else:
        res = _result(sim, guest, **report)
    assert res.status == "UpToDate"  # the report itself verifies: each of these is an appraisal failure
    problems = _policy(sim, **settings).violations(res)
    assert len(problems) == 1, problems
    assert problems[0].startswith(ident)
    with pytest.raises(PolicyViolation, match=ident.split(" ")[0]) as info:
        _policy(sim, **settings).appraise(res)
    if ident.startswith("snp."):  # the error carries the check identifier of the failed check
        assert info.value.check == "SNP_" + ident.split(":")[0][4:].upper().replace(".", "_")


def test_current_below_reported_fails_even_the_default_policy(sim: SimSnpPlatform) -> None:
    """The issue's case: CURRENT_TCB < REPORTED_TCB verified UpToDate and was accepted."""
    low = _tcb(sim, ucode=200)
    res = _result(sim, current_tcb=low, committed_tcb=low)
    with pytest.raises(PolicyViolation, match="snp.tcb.current_below_reported") as info:
        Policy().appraise(res)
    assert info.value.check == "SNP_TCB_CURRENT_BELOW_REPORTED"


@pytest.mark.parametrize("settings", [
    {"unknown": 1}, {"vmpl": 4}, {"vmpl": True}, {"min_guest_svn": -1}, {"minimum_tcb": {"xx": 1}},
    {"minimum_tcb": {"bl": 256}}, {"minimum_tcb": "zz"}, {"minimum_version": "1"}, {"minimum_build": 300},
    {"guest_policy": {"debug": True}}, {"guest_policy": {"smt": "yes"}}, {"platform_info": {"smt": True}},
    {"trusted_id_key_digests": ["00"]}, {"require_id_block": 1}, {"permit_provisional_firmware": "no"},
])
def test_bad_settings_are_config_errors(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Policy.from_mapping({"policy": {"snp": settings}})


def test_snp_settings_from_a_toml_file(tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text('[policy]\nallow_debug = false\n[policy.snp]\nmin_guest_svn = 3\nvmpl = 0\n'
                 '[policy.snp.guest_policy]\nsingle_socket = true\n[reference]\nhost_data = "' + "ab" * 32 + '"\n')
    p = Policy.load(f)
    assert p.snp.min_guest_svn == 3 and p.snp.guest_policy == {"single_socket": True}
    assert p.reference.values["host_data"] == ("ab" * 32,)
    assert p.without_reference().snp == p.snp  # shelter splits the reference values off, never the SNP settings
