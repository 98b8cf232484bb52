"""Applying the appraisal policy (:mod:`eaa.policy`) to a verified Enclave-TLS peer.

The default is :class:`eaa.policy.Policy()`: TCB statuses UpToDate and SWHardeningNeeded, no debug
enclaves/TDs, no expired collateral, the TDX/SGX attribute rules. A ``nullverifier`` result (tee "none")
carries no TCB status; it only exists because the caller named ``nullverifier``, so it passes a policy
without reference values and fails one with them.

Instead of a Policy, any object with ``appraise(result)`` or ``check(result)``, or a callable
``result -> bool``, may be given. It accepts a peer only by returning ``True``: None, a truthy object
or a forgotten ``return`` reject (fail closed), and so does raising, which may say why with a
:class:`~eaa.errors.PolicyViolation`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, EaaError, PolicyViolation
from ..policy import Policy
from ..verify.result import VerificationResult

DEFAULT_POLICY = Policy()

PolicyLike = Policy | Callable[[VerificationResult], Any] | Any


def apply_policy(policy: PolicyLike | None, result: VerificationResult) -> None:
    """Run ``policy`` (default :data:`DEFAULT_POLICY`) on ``result``; raise PolicyViolation on rejection."""
    policy = DEFAULT_POLICY if policy is None else policy
    if isinstance(policy, Policy):
        policy.check(result)  # raises the violation, with its check identifier
        return
    check = getattr(policy, "appraise", None) or getattr(policy, "check", None)
    if callable(check):
        hook = check
    elif callable(policy):
        hook = policy
    else:
        raise ConfigError(f"policy of type {type(policy).__name__} has no appraise() and is not callable")
    try:
        outcome = hook(result)
    except EaaError:
        raise
    except Exception as e:  # noqa: BLE001 - a policy hook that fails rejects; it never crashes the handshake
        raise PolicyViolation(f"the policy callback failed ({type(e).__name__}); the peer is rejected") from None
    if outcome is not True:
        raise PolicyViolation(f"the policy callback returned {type(outcome).__name__}, not True; the peer is rejected")
