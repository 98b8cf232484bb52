"""A circuit breaker in front of each upstream (Intel PCS/PCCS, AMD KDS).

Without it an unreachable upstream costs every uncached request the whole timeout-and-retry cycle
(about 3 s with the defaults), every time. After ``threshold`` consecutive failures the breaker
opens: requests fail at once (the service then serves what it has cached, or answers 503) for
``cooldown`` seconds; then one request is let through as a probe, which closes the breaker on
success or opens it again on failure. Each state change is logged once, not each refused request.
``clock`` is monotonic seconds so tests pin the timeline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ...collateral.errors import UpstreamServerError, UpstreamUnavailable

log = logging.getLogger("eaa.pccs")
T = TypeVar("T")

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"
DEFAULT_THRESHOLD = 3
DEFAULT_COOLDOWN = 30.0


class CircuitBreaker:
    def __init__(self, name: str, *, threshold: int = DEFAULT_THRESHOLD, cooldown: float = DEFAULT_COOLDOWN,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self.clock = clock
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._answered = False  # the last failure was an answer (5xx, 429), not a connection failure
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and self.clock() - self._opened_at >= self.cooldown:
                return HALF_OPEN
            return self._state

    def _set(self, state: str, why: str) -> None:
        if state != self._state:
            level = logging.INFO if state == CLOSED else logging.WARNING
            log.log(level, "upstream %s: circuit %s (%s)", self.name, state, why)
            self._state = state

    def _admit(self) -> None:
        with self._lock:
            if self._state == CLOSED:
                return
            # failing fast stands for the failure that opened the circuit: an upstream that kept answering
            # 5xx is still failing, not unreachable (a PCCS answers the two differently)
            fail = UpstreamServerError if self._answered else UpstreamUnavailable
            if self._state == OPEN:
                if self.clock() - self._opened_at < self.cooldown:
                    raise fail(f"upstream {self.name} is unavailable (circuit open after "
                               f"{self._failures} failures; next probe in "
                               f"{self.cooldown - (self.clock() - self._opened_at):.0f} s)")
                self._set(HALF_OPEN, "probing")
            if self._probing:  # one probe at a time; the others fail fast meanwhile
                raise fail(f"upstream {self.name} is being probed after failures")
            self._probing = True

    def _result(self, ok: bool, why: str = "", *, answered: bool = False) -> None:
        with self._lock:
            self._probing = False
            self._answered = answered
            if ok:
                self._failures = 0
                self._set(CLOSED, "upstream answered")
                return
            self._failures += 1
            if self._state == HALF_OPEN or self._failures >= self.threshold:
                self._opened_at = self.clock()
                self._set(OPEN, why)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` unless the circuit is open; only :class:`UpstreamUnavailable` counts as a failure
        (a 404 or invalid data proves the upstream is reachable)."""
        self._admit()
        try:
            result = fn()
        except UpstreamUnavailable as e:
            self._result(False, str(e)[:200], answered=isinstance(e, UpstreamServerError))
            raise
        except BaseException:
            self._result(True)
            raise
        self._result(True)
        return result
