"""Errors eaa-pccs answers with: each carries the HTTP status a client gets and a stable code.

Clients must be able to tell "bad request" (fix the caller), "not cached" (import it, or go LAZY),
"upstream down" (retry later) and "upstream sent bad data" (alert someone) apart, so each has its
own stable code; no client input may ever surface as a 500.

On Intel's routes (``/sgx/…``, ``/tdx/…``) a client gets what Intel's PCCS answers in the same case
(``intel``: the status and the body of its ``constants/pccs_status_code.js`` table, which its
``middleware/error.js`` sends as text); eaa's own stable code and one-line reason travel in the
``EAA-Error-Code`` and ``EAA-Error-Message`` headers. eaa's own routes (admin, AMD KDS) answer
``status`` with a JSON body.
"""

from __future__ import annotations

from ...errors import EaaError

# Intel PCCS constants/pccs_status_code.js: (HTTP status, the body its error handler sends)
INTEL_SUCCESS = (200, "Operation successful.")
INTEL_INVALID_REQ = (400, "Invalid request parameters.")
INTEL_UNAUTHORIZED = (401, "Authentication failed.")
INTEL_NO_CACHE_DATA = (404, "No cache data for this platform.")
INTEL_INTEGRITY_ERROR = (460, "The integrity of the data can't be verified.")
INTEL_PLATFORM_UNKNOWN = (461, "The platform was not found in the cache.")
INTEL_CERTS_UNAVAILABLE = (462, "Certificates are not available for certain TCBs.")
INTEL_INTERNAL_ERROR = (500, "Internal server error occurred.")
INTEL_SERVICE_UNAVAILABLE = (503, "Server is currently unable to process the request.")
INTEL_PCS_ACCESS_FAILURE = (504, "Unable to retrieve the collateral from the Intel SGX PCS.")


class ServiceError(EaaError):
    status = 500
    intel: tuple[int, str] = INTEL_INTERNAL_ERROR


class BadRequest(ServiceError):
    code = "BAD_REQUEST"
    status = 400
    intel = INTEL_INVALID_REQ


class Unauthorized(ServiceError):
    code = "UNAUTHORIZED"
    status = 401
    intel = INTEL_UNAUTHORIZED


class Forbidden(ServiceError):
    """A token-protected API whose token is not configured. Intel's PCCS compares every token with a
    configured hash, so there it is an authentication failure like a wrong token."""

    code = "FORBIDDEN"
    status = 403
    intel = INTEL_UNAUTHORIZED


class NotFound(ServiceError):
    code = "NOT_FOUND"
    status = 404
    intel = INTEL_NO_CACHE_DATA


class PayloadTooLarge(ServiceError):
    """eaa-pccs's own body limits (Intel's body parser allows 200 MB and fails beyond with a 500)."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413
    intel = (413, "request entity too large")


class UpstreamBadData(ServiceError):
    """The upstream answered with collateral that does not verify (or refused a valid request). Intel's
    PCCS treats any upstream answer it cannot use as no data (commonCacheLogic.js: NO_CACHE_DATA)."""

    code = "UPSTREAM_BAD_DATA"
    status = 502
    intel = INTEL_NO_CACHE_DATA


class UpstreamDown(ServiceError):
    """The upstream could not be reached (connection failure, timeout, circuit open). Intel's
    pcs_client.js turns a request that fails without an answer into PCS_ACCESS_FAILURE."""

    code = "UPSTREAM_UNAVAILABLE"
    status = 503
    intel = INTEL_PCS_ACCESS_FAILURE


class UpstreamFailed(UpstreamDown):
    """The upstream answered, with a server error (5xx, 429) after the retries. Intel's PCCS checks only
    for 200 and answers NO_CACHE_DATA for any other upstream status."""

    intel = INTEL_NO_CACHE_DATA


class StorageUnavailable(ServiceError):
    code = "STORAGE_UNAVAILABLE"
    status = 503
    intel = INTEL_SERVICE_UNAVAILABLE


class IntegrityError(BadRequest):
    """Intel's PCCS_STATUS_INTEGRITY_ERROR: uploaded collateral whose signatures or chains do not verify."""

    code = "INTEGRITY_ERROR"
    status = 460
    intel = INTEL_INTEGRITY_ERROR


class PlatformUnknown(ServiceError):
    """Intel's PCCS_STATUS_PLATFORM_UNKNOWN: no PCK certificate cached for a platform this PCCS never saw
    and may not fetch (OFFLINE, REQ)."""

    code = "PLATFORM_UNKNOWN"
    status = 461
    intel = INTEL_PLATFORM_UNKNOWN


class TooManyRequests(ServiceError):
    """eaa-pccs's own registration rate limit (Intel's PCCS has none)."""

    code = "TOO_MANY_REQUESTS"
    status = 429
    intel = (429, "Too many requests.")

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RefreshUnavailable(ServiceError):
    """Intel's PCCS answers /refresh with 503 when its caching mode cannot refresh (OFFLINE) or the
    upstream fails during the refresh."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    intel = INTEL_SERVICE_UNAVAILABLE
