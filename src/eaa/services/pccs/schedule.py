"""Scheduled cache refresh, as Intel's PCCS does with its ``RefreshSchedule``.

A LAZY cache otherwise asks the upstream again only once a record's ``nextUpdate`` has passed, so a
TCB recovery Intel publishes mid-month reaches clients weeks late. The schedule runs the same
refresh as the admin route ``/refresh`` (same validation; a record is only ever replaced by newer
valid data), in a daemon thread that never takes the service down: a failed round is logged and the
next one runs on time.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...errors import ConfigError
from .refresh import RefreshSummary

if TYPE_CHECKING:
    from .service import PccsService

log = logging.getLogger("eaa.pccs")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL = 60.0


def parse_interval(text: str) -> float:
    """``3600``, ``90s``, ``30m``, ``12h`` or ``30d`` as seconds; at least a minute, so a typo cannot turn
    the schedule into a load test of the upstream."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not m:
        raise ConfigError(f"refresh interval {text!r} is not a duration (for example 3600, 12h or 30d)")
    seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if seconds < MIN_INTERVAL:
        raise ConfigError(f"refresh interval {text!r} is shorter than {MIN_INTERVAL:.0f} seconds")
    return seconds


class RefreshSchedule:
    """Refreshes ``service``'s cache every ``interval`` seconds until stopped.

    ``clock`` times a round for the log and ``wall_clock`` (the service's clock by default) stamps the
    last complete round for the metrics; the waiting is done on an event, so :meth:`stop` ends the
    thread at once instead of after the current interval.
    """

    def __init__(self, service: PccsService, interval: float, *, api: int = 4,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] | None = None) -> None:
        self.service = service
        self.interval = interval
        self.api = api
        self.clock = clock
        self.wall_clock = wall_clock or service.clock
        self.rounds = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> RefreshSummary | None:
        """One refresh round; its failure is logged, never raised."""
        started = self.clock()
        self.rounds += 1
        metrics = self.service.metrics
        try:
            summary = self.service.refresh(self.api, None, None)
        except Exception as e:  # noqa: BLE001 - a failed round must not end the schedule
            metrics.refresh_rounds.labels("failed").inc()
            log.warning("scheduled refresh failed: %s: %s", type(e).__name__, e)
            return None
        metrics.refresh_rounds.labels("partial" if summary.failures else "ok").inc()
        if not summary.failures:
            metrics.last_refresh.set(self.wall_clock())
        log.info("scheduled refresh in %.1f s: %d refreshed, %d unchanged, %d kept, %d failed",
                 self.clock() - started, summary.refreshed, summary.unchanged, summary.kept, len(summary.failures))
        return summary

    def run(self) -> None:
        """Wait an interval, refresh, repeat; the first round comes one interval after start."""
        while not self._stop.wait(self.interval):
            self.run_once()

    def start(self) -> RefreshSchedule:
        self._thread = threading.Thread(target=self.run, daemon=True, name="eaa-pccs-refresh")
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
