"""Prometheus metrics of one eaa-pccs instance (its own registry, so several apps can share a process).

They answer the operator's questions: is the cache doing its job (hits vs misses vs stale serves),
is the upstream healthy (fetch outcomes, and how often it sent data that failed validation), does the
scheduled refresh keep the cache current, and how fast and how often each route answers.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401 - re-exported for the app
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("eaa_pccs_http_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=r)
        self.latency = Histogram("eaa_pccs_http_request_seconds", "HTTP request latency by route", ["route"],
                                 buckets=_BUCKETS, registry=r)
        self.cache = Counter("eaa_pccs_cache_lookups", "Cache lookups by record kind and result (hit, miss, stale)",
                             ["kind", "result"], registry=r)
        self.upstream = Counter("eaa_pccs_upstream_fetches",
                                "Upstream fetches by record kind and outcome (ok, not_found, unavailable, invalid)",
                                ["kind", "outcome"], registry=r)
        self.records = Gauge("eaa_pccs_records", "Records in the store", registry=r)
        self.imported = Counter("eaa_pccs_imported_records", "Records written by imports", registry=r)
        self.refresh_rounds = Counter("eaa_pccs_scheduled_refreshes",
                                      "Scheduled refresh rounds by outcome (ok: every record refreshed or kept; "
                                      "partial: some failed; failed: the round could not run)", ["outcome"],
                                      registry=r)
        self.last_refresh = Gauge("eaa_pccs_last_complete_refresh_timestamp_seconds",
                                  "When a scheduled refresh last completed without a failure (alert on its age)",
                                  registry=r)

    def render(self, count_records: Callable[[], int] | None = None) -> bytes:
        if count_records is not None:
            try:
                self.records.set(count_records())
            except Exception:  # noqa: BLE001 - a scrape must still answer while the database is down
                pass
        return generate_latest(self.registry)
