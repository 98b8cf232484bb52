"""TDX and SGX attribute policy (go-tdx-guest validate.go, dcap-qvl validate_attrs): each rule refuses on
its own with its check identifier, each is configurable in policy.toml, and the defaults are safe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from _checks import fails
from _sim import T0, plat  # noqa: F401  (fixture)
from eaa import errors
from eaa.checks import Check
from eaa.policy import Policy, ReferenceValues
from eaa.sim.platform import SimPlatform
from eaa.verify.dcap import QuoteVerifier
from eaa.verify.result import VerificationResult

SEPT = 1 << 28
XFAM_OK = 0x602E7  # x87, SSE, AVX, AVX-512 state (within the fixed bits)


def td(attributes: int = SEPT, xfam: int = XFAM_OK, servicetd: bytes | None = None) -> VerificationResult:
    m: dict[str, Any] = {"mrtd": "11" * 48, "td_attributes": attributes.to_bytes(8, "little").hex(),
                         "xfam": xfam.to_bytes(8, "little").hex()}
    if servicetd is not None:
        m["mr_servicetd"] = servicetd.hex()
    return VerificationResult(tee="tdx", status="UpToDate", advisory_ids=(), measurements=m, report_data=b"",
                              debug=bool(attributes & 1))


def sgx(flags: int = 0x05) -> VerificationResult:
    attributes = flags.to_bytes(8, "little") + (0x3).to_bytes(8, "little")
    return VerificationResult(tee="sgx", status="UpToDate", advisory_ids=(), report_data=b"", debug=bool(flags & 2),
                              measurements={"mrenclave": "22" * 32, "attributes": attributes.hex()})


def test_defaults_accept_an_ordinary_td_and_enclave() -> None:
    Policy().appraise(td())
    Policy().appraise(td(SEPT | 1 << 30 | 1 << 63))  # PKS and PERFMON are within the fixed bits
    Policy().appraise(sgx())


def test_simulated_quotes_pass_the_default_policy(plat: SimPlatform) -> None:  # noqa: F811
    at = T0.timestamp() + 60
    v = QuoteVerifier([plat.anchor()])
    for tee in ("sgx", "tdx"):
        Policy().appraise(v.verify(plat.make_quote(tee, b"r"), plat.collateral(tee), at=at))


@pytest.mark.parametrize("bit", [1, 4, 5, 6, 7, 17, 27, 29, 31, 32, 62])
def test_td_attribute_bits_outside_the_fixed_ones(bit: int) -> None:
    with fails(Check.TD_ATTRIBUTES_RESERVED, errors.PolicyViolation):
        Policy().appraise(td(SEPT | 1 << bit))


def test_td_attribute_bits_allowed_by_name_or_number() -> None:
    p = Policy.from_mapping({"policy": {"allow_td_attribute_bits": ["MIGRATABLE", 31]}})
    p.appraise(td(SEPT | 1 << 29 | 1 << 31))
    with fails(Check.TD_ATTRIBUTES_RESERVED):
        p.appraise(td(SEPT | 1 << 29 | 1 << 30 | 1 << 5))


def test_sept_ve_disable_required_unless_turned_off() -> None:
    with fails(Check.SEPT_VE_DISABLE, errors.PolicyViolation):
        Policy().appraise(td(0))
    Policy.from_mapping({"require_sept_ve_disable": False}).appraise(td(0))


def test_debug_td_refused_by_its_own_check() -> None:
    with fails(Check.POLICY_DEBUG):
        Policy().appraise(td(SEPT | 1))
    Policy(allow_debug=True).appraise(td(SEPT | 1))


@pytest.mark.parametrize("xfam", [0x602E4, 0x602E5, 0x602E7 | 1 << 3, 0x602E7 | 1 << 19, 0x602E7 | 1 << 40])
def test_xfam_fixed_bits(xfam: int) -> None:
    with fails(Check.XFAM_FIXED_BITS, errors.PolicyViolation):
        Policy().appraise(td(xfam=xfam))
    Policy.from_mapping({"check_xfam": False}).appraise(td(xfam=xfam))


def test_mr_servicetd_zero_unless_a_reference_names_it() -> None:
    Policy().appraise(td(servicetd=bytes(48)))
    with fails(Check.MR_SERVICETD, errors.PolicyViolation):
        Policy().appraise(td(servicetd=b"\x01" * 48))
    named = Policy(reference=ReferenceValues.from_mapping({"mr_servicetd": "01" * 48}))
    named.appraise(td(servicetd=b"\x01" * 48))
    with fails(Check.MR_SERVICETD, errors.PolicyViolation):
        named.appraise(td(servicetd=b"\x02" * 48))


def test_sgx_provision_key_and_kss() -> None:
    with fails(Check.SGX_PROVISION_KEY, errors.PolicyViolation):
        Policy().appraise(sgx(0x05 | 0x10))
    with fails(Check.SGX_KSS, errors.PolicyViolation):
        Policy().appraise(sgx(0x05 | 0x80))
    Policy.from_mapping({"allow_sgx_provision_key": True, "allow_sgx_kss": True}).appraise(sgx(0x05 | 0x90))


def test_status_and_expiry_checks_have_identifiers() -> None:
    with fails(Check.POLICY_STATUS, errors.PolicyViolation):
        Policy().appraise(VerificationResult(tee="sgx", status="OutOfDate", advisory_ids=(), measurements={},
                                             report_data=b""))
    with fails(Check.POLICY_EXPIRED_COLLATERAL, errors.PolicyViolation):
        Policy().appraise(VerificationResult(tee="sgx", status="UpToDate", advisory_ids=(), measurements={},
                                             report_data=b"", collateral_expired=True))
    with fails(Check.POLICY_REFERENCE, errors.PolicyViolation):
        Policy(reference=ReferenceValues.from_mapping({"mrenclave": "33" * 32})).appraise(sgx())


def test_policy_file_settings(tmp_path: Path) -> None:
    f = tmp_path / "policy.toml"
    f.write_text('[policy]\nallow_td_attribute_bits = ["KL"]\nrequire_sept_ve_disable = false\ncheck_xfam = false\n'
                 'allow_sgx_kss = true\n')
    p = Policy.load(f)
    assert p.allow_td_attribute_bits == {31} and not p.require_sept_ve_disable and not p.check_xfam and p.allow_sgx_kss
    assert not p.allow_sgx_provision_key
    assert p.with_reference(ReferenceValues.from_mapping({"mrtd": "00" * 48})).allow_sgx_kss
    assert p.without_reference().allow_td_attribute_bits == {31}


@pytest.mark.parametrize("setting", [{"allow_td_attribute_bits": ["NOPE"]}, {"allow_td_attribute_bits": [64]},
                                     {"allow_td_attribute_bits": "KL"}, {"check_xfam": "yes"},
                                     {"allow_sgx_kss": 1}, {"allow_td_attribute_bits": [True]}])
def test_bad_settings_are_config_errors(setting: dict[str, Any]) -> None:
    with pytest.raises(errors.ConfigError):
        Policy.from_mapping({"policy": setting})
