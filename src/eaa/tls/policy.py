"""Applying the appraisal policy (:mod:`eaa.policy`) to a verified Enclave-TLS peer.

The default is :class:`eaa.policy.Policy()`: TCB statuses UpToDate and SWHardeningNeeded, no debug
enclaves/TDs, no expired collateral. A ``nullverifier`` result (tee "none") carries no TCB status; it
only exists because the caller named ``nullverifier``, so it passes a policy without reference values
and fails one with them. Instead of a Policy, any object with ``appraise(result)`` or ``check(result)``
(raising :class:`~eaa.errors.PolicyViolation`), or a callable ``result -> bool | None``, may be given.
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import ConfigError, PolicyViolation
from ..policy import Policy
from ..verify.result import VerificationResult

DEFAULT_POLICY = Policy()

PolicyLike = Policy | Callable[[VerificationResult], Any] | Any


def apply_policy(policy: PolicyLike | None, result: VerificationResult) -> None:
    """Run ``policy`` (default :data:`DEFAULT_POLICY`) on ``result``; raise PolicyViolation on rejection."""
    policy = DEFAULT_POLICY if policy is None else policy
    if isinstance(policy, Policy) and result.tee == "none":
        if not policy.reference.is_empty():
            raise PolicyViolation("the peer was not attested (nullverifier), but the policy requires reference values")
        return
    check = getattr(policy, "appraise", None) or getattr(policy, "check", None)
    if callable(check):
        outcome = check(result)
    elif callable(policy):
        outcome = policy(result)
    else:
        raise ConfigError(f"policy of type {type(policy).__name__} has no appraise() and is not callable")
    if outcome is False:
        raise PolicyViolation("the peer's verification result is rejected by the policy")
