"""One HTTP GET with a timeout, a size limit and retries: the transport every collateral client shares.

Collateral services fail in ordinary ways (a PCCS restarting, Intel's PCS rate-limiting, AMD's KDS
answering 429), so transient failures (connection errors, timeouts, 5xx, 429) are retried with a
growing delay, while answers that retrying cannot change (404, 400, 401) are returned at once.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Mapping

import httpx

from ..errors import ConfigError
from ..records import record
from .errors import UpstreamUnavailable

log = logging.getLogger("eaa.collateral")

MAX_RESPONSE_SIZE = 4 << 20
MAX_RETRY_SLEEP = 10.0
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "eaa-collateral/0.1"


@record
class HttpResponse:
    """One GET's answer, whatever its status: the whole body (at most ``MAX_RESPONSE_SIZE`` bytes) and its headers."""

    status: int
    body: bytes
    headers: Mapping[str, str]  # lower-case names
    url: str


def tls_verify(use_secure_cert: bool = True, ca_file: str | None = None) -> ssl.SSLContext | bool:
    """What httpx should check: the system store, a given CA bundle, or (only if asked) nothing."""
    if not use_secure_cert:
        return False
    if ca_file:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except FileNotFoundError:
            raise ConfigError(f"CA bundle {ca_file} does not exist") from None
        except (ssl.SSLError, OSError, ValueError):
            raise ConfigError(f"CA bundle {ca_file} holds no PEM certificate") from None
    return True


class HttpGetter:
    """GET with retries; one connection pool per instance (thread-safe, as httpx.Client is)."""

    def __init__(self, *, timeout: float = 10.0, retries: int = 2, retry_delay: float = 1.0, backoff: bool = True,
                 verify: ssl.SSLContext | bool = True, transport: httpx.BaseTransport | None = None,
                 headers: Mapping[str, str] | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.retries = max(0, retries)
        self.retry_delay = max(0.0, retry_delay)
        self.backoff = backoff  # double the delay each retry (QCNL without retry_delay) or keep it constant
        self._sleep = sleep
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), verify=verify, transport=transport,
                                    follow_redirects=False, headers={"User-Agent": USER_AGENT, **(headers or {})})

    def close(self) -> None:
        self._client.close()

    def _once(self, url: str, params: Mapping[str, str] | None,
              headers: Mapping[str, str] | None = None) -> HttpResponse:
        with self._client.stream("GET", url, params=params, headers=headers) as r:
            chunks: list[bytes] = []
            size = 0
            for chunk in r.iter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_SIZE:
                    raise UpstreamUnavailable(f"{url}: response larger than {MAX_RESPONSE_SIZE} bytes")
                chunks.append(chunk)
            return HttpResponse(r.status_code, b"".join(chunks), {k.lower(): v for k, v in r.headers.items()},
                                str(r.url))

    def get(self, url: str, params: Mapping[str, str] | None = None,
            headers: Mapping[str, str] | None = None) -> HttpResponse:
        """The response (any status); :class:`UpstreamUnavailable` when no usable answer came back."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                factor = 2 ** (attempt - 1) if self.backoff else 1
                self._sleep(min(MAX_RETRY_SLEEP, self.retry_delay * factor))
            try:
                resp = self._once(url, params, headers)
            except httpx.TimeoutException:
                last = "timed out"
            except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as e:
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            except httpx.HTTPError as e:  # e.g. LocalProtocolError, whose text repeats header values (keys)
                last = type(e).__name__
            else:
                if resp.status not in RETRY_STATUSES:
                    return resp
                last = f"HTTP {resp.status}"
                if attempt == self.retries:
                    return resp
            log.info("GET %s failed (%s), attempt %d of %d", url, last, attempt + 1, self.retries + 1)
        raise UpstreamUnavailable(f"{url}: {last} (after {self.retries + 1} attempts)")
