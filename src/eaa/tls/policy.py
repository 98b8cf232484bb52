"""Appraisal of a verified peer: which results an Enclave-TLS endpoint accepts.

Verification says what the evidence proves; the policy says whether that is good enough. The default
accepts TCB statuses UpToDate and SWHardeningNeeded, rejects debug enclaves/TDs and expired
collateral, and checks reference values only when given. A result from ``nullverifier`` (tee
"none") passes the default policy because ``nullverifier`` is only ever used when named; it fails
any policy with reference values.

Any object with ``check(result)`` (raising :class:`~eaa.errors.PolicyViolation`), or any callable
``result -> bool | None``, may be used instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..errors import ConfigError, PolicyViolation, Revoked
from ..verify.result import REVOKED, SW_HARDENING_NEEDED, UP_TO_DATE, VerificationResult

DEFAULT_ACCEPTED_STATUSES = frozenset({UP_TO_DATE, SW_HARDENING_NEEDED})


def _norm(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return str(value).lower()


@dataclass(frozen=True)
class Policy:
    accepted_statuses: frozenset[str] = DEFAULT_ACCEPTED_STATUSES
    allow_debug: bool = False
    allow_expired_collateral: bool = False
    # measurement name (e.g. "mrenclave", "mrsigner", "isv_prod_id", "mrtd") -> acceptable values (hex or int)
    reference_values: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def create(cls, *, accepted_statuses: Iterable[str] | None = None, allow_debug: bool = False,
               allow_expired_collateral: bool = False,
               reference_values: Mapping[str, Iterable[Any] | Any] | None = None) -> "Policy":
        refs: dict[str, frozenset[str]] = {}
        for name, values in (reference_values or {}).items():
            if isinstance(values, (str, bytes, bytearray, int)):
                values = [values]
            refs[name] = frozenset(_norm(v) for v in values)
        return cls(frozenset(accepted_statuses) if accepted_statuses is not None else DEFAULT_ACCEPTED_STATUSES,
                   allow_debug, allow_expired_collateral, refs)

    def check(self, result: VerificationResult) -> None:
        if result.tee != "none":
            if result.status == REVOKED and REVOKED not in self.accepted_statuses:
                raise Revoked("the peer's platform is revoked")
            if result.status not in self.accepted_statuses:
                raise PolicyViolation(f"TCB status {result.status} is not accepted "
                                      f"(accepted: {', '.join(sorted(self.accepted_statuses))})")
            if result.debug and not self.allow_debug:
                raise PolicyViolation("the peer runs a debug enclave/TD, which the policy rejects")
            if result.collateral_expired and not self.allow_expired_collateral:
                raise PolicyViolation("the collateral used to verify the peer has expired")
        for name, allowed in self.reference_values.items():
            if name not in result.measurements:
                raise PolicyViolation(f"the peer's evidence has no {name} to compare with the reference values")
            if _norm(result.measurements[name]) not in allowed:
                raise PolicyViolation(f"the peer's {name} {_norm(result.measurements[name])} is not a reference value")


DEFAULT_POLICY = Policy()

PolicyLike = Policy | Callable[[VerificationResult], Any] | Any


def apply_policy(policy: PolicyLike | None, result: VerificationResult) -> None:
    """Run ``policy`` (default :data:`DEFAULT_POLICY`) on ``result``; raise PolicyViolation on rejection."""
    policy = DEFAULT_POLICY if policy is None else policy
    check = getattr(policy, "check", None)
    if callable(check):
        outcome = check(result)
    elif callable(policy):
        outcome = policy(result)
    else:
        raise ConfigError(f"policy of type {type(policy).__name__} has no check() and is not callable")
    if outcome is False:
        raise PolicyViolation("the peer's verification result is rejected by the policy")
