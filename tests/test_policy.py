"""Appraisal policy and reference values: each rule has a case that fails it."""

from __future__ import annotations

import pytest

from eaa.errors import ConfigError, PolicyViolation, Revoked
from eaa.policy import Policy, ReferenceValues
from eaa.verify.result import VerificationResult

MRE = "11" * 32
MRS = "22" * 32


def result(**kw: object) -> VerificationResult:
    base: dict[str, object] = dict(tee="sgx", status="UpToDate", advisory_ids=(), report_data=b"\x00" * 64,
                                   measurements={"mrenclave": MRE, "mrsigner": MRS, "isv_prod_id": 1, "isv_svn": 3})
    base.update(kw)
    return VerificationResult(**base)  # type: ignore[arg-type]


def test_default_policy_accepts_up_to_date_and_sw_hardening() -> None:
    Policy().appraise(result())
    Policy().appraise(result(status="SWHardeningNeeded"))


@pytest.mark.parametrize("status", ["OutOfDate", "ConfigurationNeeded", "OutOfDateConfigurationNeeded",
                                    "TDRelaunchAdvised"])
def test_default_policy_rejects_other_statuses(status: str) -> None:
    with pytest.raises(PolicyViolation, match=status):
        Policy().appraise(result(status=status))


def test_revoked_is_its_own_error() -> None:
    with pytest.raises(Revoked):
        Policy().appraise(result(status="Revoked"))


def test_debug_and_expired_rejected_unless_allowed() -> None:
    with pytest.raises(PolicyViolation, match="debug"):
        Policy().appraise(result(debug=True))
    Policy(allow_debug=True).appraise(result(debug=True))
    with pytest.raises(PolicyViolation, match="expired"):
        Policy().appraise(result(collateral_expired=True))
    Policy(allow_expired_collateral=True).appraise(result(collateral_expired=True))


def test_reference_values_match_and_mismatch() -> None:
    ok = ReferenceValues.from_mapping({"mrenclave": MRE.upper(), "mrsigner": [MRS, "33" * 32], "isv_prod_id": 1,
                                       "min_isv_svn": 3})
    assert ok.mismatches(result()) == []
    bad = ReferenceValues.from_mapping({"mrenclave": "aa" * 32})
    (msg,) = bad.mismatches(result())
    assert msg.startswith("mrenclave mismatch")
    assert ReferenceValues.from_mapping({"min_isv_svn": 4}).mismatches(result())
    assert ReferenceValues.from_mapping({"isv_prod_id": 2}).mismatches(result())
    assert ReferenceValues.from_mapping({"mrtd": "00" * 48}).mismatches(result())  # not measured by SGX
    with pytest.raises(PolicyViolation, match="mrenclave mismatch"):
        Policy(reference=bad).appraise(result())


@pytest.mark.parametrize("data", [{"mrenclave": "zz"}, {"mrenclave": "00" * 31}, {"bogus": 1}, {"isv_prod_id": -1},
                                  {"isv_svn": True}])
def test_bad_reference_values_rejected(data: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ReferenceValues.from_mapping(data)


def test_policy_files_toml_and_json(tmp_path) -> None:
    t = tmp_path / "p.toml"
    t.write_text('[policy]\naccepted_statuses = ["UpToDate"]\nallow_debug = true\n[reference]\n'
                 f'mrenclave = "{MRE}"\n')
    p = Policy.load(t)
    assert p.accepted_statuses == {"UpToDate"} and p.allow_debug
    p.appraise(result(debug=True))
    with pytest.raises(PolicyViolation):
        p.appraise(result(status="SWHardeningNeeded"))
    j = tmp_path / "r.json"
    ref = ReferenceValues.from_mapping({"mrenclave": MRE, "isv_prod_id": 1})
    j.write_text(ref.to_json())
    assert ReferenceValues.load(j) == ref
    t2 = tmp_path / "r.toml"
    t2.write_text(ref.to_toml())
    assert ReferenceValues.load(t2) == ref


@pytest.mark.parametrize("text", ['accepted_statuses = ["Fine"]', "allow_debug = 1", "nonsense = true", "{", "x ="])
def test_bad_policy_files(tmp_path, text: str) -> None:
    f = tmp_path / "p.toml"
    f.write_text(text)
    with pytest.raises(ConfigError):
        Policy.load(f)


def test_with_reference_overrides() -> None:
    p = Policy(reference=ReferenceValues.from_mapping({"mrenclave": "aa" * 32})).with_reference(
        ReferenceValues.from_mapping({"mrenclave": MRE}))
    p.appraise(result())


# ---- Enclave-TLS policy hooks fail closed: only True accepts ----

from typing import Any  # noqa: E402

from eaa.tls.policy import apply_policy  # noqa: E402


class _Appraiser:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def appraise(self, result: VerificationResult) -> Any:
        return self.outcome


def _raises(result: VerificationResult) -> bool:
    raise ValueError("bug in a policy hook")


@pytest.mark.parametrize("policy", [lambda r: None, lambda r: False, lambda r: 1, lambda r: "yes", lambda r: [True],
                                    _Appraiser(None), _Appraiser("ok"), _raises])
def test_policy_callback_must_return_true(policy: Any) -> None:
    with pytest.raises(PolicyViolation):
        apply_policy(policy, result())


def test_policy_callback_returning_true_accepts() -> None:
    apply_policy(lambda r: True, result())
    apply_policy(_Appraiser(True), result())


def test_policy_without_a_hook_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        apply_policy(object(), result())
