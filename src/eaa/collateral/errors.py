"""Errors of the collateral clients and caches (subclasses of the shared :mod:`eaa.errors` types).

They keep the shared codes' meaning (missing collateral, transport failure, invalid collateral) while
letting a PCCS tell a client's "no such FMSPC" (404) apart from "upstream down" (503) and "upstream
sent something that does not verify" (502).
"""

from __future__ import annotations

from ..errors import CollateralInvalid, CollateralMissing, ConfigError, TransportError


class CollateralNotFound(CollateralMissing):
    """The service answered that it has no such collateral (HTTP 404)."""

    code = "COLLATERAL_NOT_FOUND"


class UpstreamUnavailable(TransportError):
    """The service could not be reached, timed out or kept failing (5xx) after the retries."""

    code = "UPSTREAM_UNAVAILABLE"


class UpstreamServerError(UpstreamUnavailable):
    """The service answered, with a server error (5xx) or 429, after the retries: reachable but failing.
    Kept apart from a connection failure because a PCCS answers the two differently (Intel's PCCS: 404
    for any upstream status but 200, 504 when the upstream could not be reached)."""

    status = 0


class UpstreamRejected(ConfigError):
    """The service refused the request itself (400/401/403): a configuration problem, retrying won't help."""

    code = "UPSTREAM_REJECTED"


class CorruptCollateral(CollateralInvalid):
    """An upstream returned collateral that does not verify: it must be neither cached nor served."""

    code = "COLLATERAL_CORRUPT"
