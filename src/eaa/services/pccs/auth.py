"""Who may call eaa-pccs's admin and registration routes, and how often a client may register.

Tokens are held as Intel's PCCS holds them: the hex SHA-512 of the token (``AdminTokenHash`` and
``UserTokenHash`` in its ``config/default.json``), so an operator moving from Intel's PCCS keeps
its configuration, and the running process never holds a plaintext token it does not need. A
plaintext token file is hashed when it is read. Registration (``POST /platforms``) needs the user
(or admin) token unless the operator opened it explicitly: an open registration route lets anyone
grow the database and, in LAZY/REQ mode, trigger upstream fetches.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ...errors import ConfigError
from ...records import record
from .errors import Forbidden, TooManyRequests, Unauthorized

ADMIN_HEADER = "admin-token"
USER_HEADER = "user-token"
SHA512_HEX = 128
MAX_TOKEN = 4096


def token_hash(token: str) -> str:
    """Intel's PCCS: ``crypto.createHash('sha512').update(token).digest('hex')``."""
    return hashlib.sha512(token.encode("utf-8")).hexdigest()


def check_token_text(token: str, what: str) -> str:
    """A token must be usable as an HTTP header value; the message never repeats the content."""
    if not token:
        raise ConfigError(f"the {what} is empty")
    if len(token) > MAX_TOKEN or not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        raise ConfigError(f"the {what} is not a token (one line of at most {MAX_TOKEN} printable ASCII characters "
                          "without spaces)")
    return token


def check_hash(value: str, what: str) -> str:
    v = value.strip().lower()
    if len(v) != SHA512_HEX or any(c not in "0123456789abcdef" for c in v):
        raise ConfigError(f"{what} must be a SHA-512 hash ({SHA512_HEX} hex digits), as Intel's PCCS config holds")
    return v


@record
class Tokens:
    """The expected SHA-512 hashes (None: not configured) and whether registration is open to anyone."""

    admin_hash: str | None = None
    user_hash: str | None = None
    open_registration: bool = False

    @classmethod
    def from_plain(cls, admin: str | None = None, user: str | None = None, *,
                   open_registration: bool = False) -> Tokens:
        return cls(token_hash(admin) if admin else None, token_hash(user) if user else None, open_registration)

    def admin_ok(self, given: str | None) -> bool:
        return _matches(self.admin_hash, given)

    def check_admin(self, given: str | None) -> None:
        if not self.admin_hash:
            raise Forbidden("the admin API is disabled (start eaa-pccs with an admin token)")
        if not self.admin_ok(given):
            raise Unauthorized(f"missing or wrong {ADMIN_HEADER} header")

    def check_user(self, user_given: str | None, admin_given: str | None) -> None:
        """The user token, or the admin token in either header; nothing when registration is open."""
        if self.open_registration:
            return
        if not self.user_hash and not self.admin_hash:
            raise Forbidden("platform registration is disabled: configure a user token, or start eaa-pccs with "
                            "--open-registration")
        if (_matches(self.user_hash, user_given) or self.admin_ok(user_given) or self.admin_ok(admin_given)):
            return
        raise Unauthorized(f"missing or wrong {USER_HEADER} header")


def _matches(expected_hash: str | None, given: str | None) -> bool:
    """Constant time over the digests, so neither the token nor its length leaks through timing."""
    if not expected_hash or not given or len(given) > MAX_TOKEN:
        return False
    return hmac.compare_digest(token_hash(given).encode(), expected_hash.encode())


class RateLimiter:
    """A token bucket per client address: ``burst`` requests at once, then ``rate`` per second.

    The table is bounded (least recently seen clients are forgotten first), so a flood of source
    addresses costs memory only up to ``max_clients``. ``clock`` is monotonic seconds (tests pin it).
    """

    def __init__(self, rate: float, burst: int, *, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ConfigError("the registration rate limit needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Take one request from ``client``'s bucket, or raise 429 saying when to come back."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                retry = max(1, int((1.0 - tokens) / self.rate + 0.999))
                raise TooManyRequests(f"too many registrations from this client; retry in {retry} s",
                                      retry_after=retry)
            self._buckets[client] = (tokens - 1.0, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
