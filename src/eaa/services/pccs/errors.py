"""Errors eaa-pccs answers with: each carries the HTTP status a client gets and a stable code.

Clients must be able to tell "bad request" (fix the caller), "not cached" (import it, or go LAZY),
"upstream down" (retry later) and "upstream sent bad data" (alert someone) apart, so each has its
own status; no client input may ever surface as a 500.
"""

from __future__ import annotations

from ...errors import EaaError


class ServiceError(EaaError):
    status = 500


class BadRequest(ServiceError):
    code = "BAD_REQUEST"
    status = 400


class Unauthorized(ServiceError):
    code = "UNAUTHORIZED"
    status = 401


class Forbidden(ServiceError):
    code = "FORBIDDEN"
    status = 403


class NotFound(ServiceError):
    code = "NOT_FOUND"
    status = 404


class PayloadTooLarge(ServiceError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413


class UpstreamBadData(ServiceError):
    """The upstream answered with collateral that does not verify (or refused a valid request)."""

    code = "UPSTREAM_BAD_DATA"
    status = 502


class UpstreamDown(ServiceError):
    code = "UPSTREAM_UNAVAILABLE"
    status = 503


class StorageUnavailable(ServiceError):
    code = "STORAGE_UNAVAILABLE"
    status = 503


class IntegrityError(BadRequest):
    """Intel's PCCS_STATUS_INTEGRITY_ERROR: uploaded collateral whose signatures or chains do not verify."""

    code = "INTEGRITY_ERROR"
    status = 460


class PlatformUnknown(ServiceError):
    """Intel's PCCS_STATUS_PLATFORM_UNKNOWN: no PCK certificate cached for a platform this PCCS never saw
    and may not fetch (OFFLINE, REQ)."""

    code = "PLATFORM_UNKNOWN"
    status = 461


class TooManyRequests(ServiceError):
    code = "TOO_MANY_REQUESTS"
    status = 429

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RefreshUnavailable(ServiceError):
    """Intel's PCCS answers /refresh with 503 when its caching mode cannot refresh (OFFLINE) or the
    upstream fails during the refresh."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
