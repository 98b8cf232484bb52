"""eaa-pccs --refresh-every: the scheduled refresh runs the admin refresh on time, follows newer upstream data,
survives failed rounds, and is refused where it cannot work."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from eaa.cli.pccs_server import main as pccs_main
from eaa.errors import ConfigError
from eaa.services.pccs import Mode
from eaa.services.pccs.records import IDENTITY, identity_key
from eaa.services.pccs.schedule import RefreshSchedule, parse_interval
from test_pccs_support import fake_upstream, intel_routes, make_service, vector_case


@pytest.mark.parametrize("text, seconds", [("3600", 3600), ("90s", 90), ("30m", 1800), ("12h", 43200),
                                           ("30d", 2592000), (" 1.5h ", 5400)])
def test_intervals(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text, message", [("12 hours", "not a duration"), ("-5m", "not a duration"),
                                           ("", "not a duration"), ("59", "shorter than 60"), ("0d", "shorter")])
def test_bad_intervals(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_interval(text)


def test_a_round_follows_newer_upstream_data(tmp_path: Path) -> None:
    old = vector_case("go-tdx-guest/tdx_v4_spr_e4")
    new = vector_case("dcap-qvl/tdx_v4")
    path = "/tdx/certification/v4/qe/identity"
    key = identity_key("tdx", "qe", "standard")
    with fake_upstream(intel_routes(old)) as up:
        svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.LAZY, upstream_url=up.url,
                           anchors=(*old.anchors, *new.anchors), clock=lambda: float(new.verify_at))
        svc.identity("tdx", "qe", 4, None)  # a LAZY fill caches the 2023 identity
        cached = svc.store.get(IDENTITY, key)
        assert cached is not None and b'"issueDate":"2023' in cached.body
        up.routes[path] = intel_routes(new)[path]
        schedule = RefreshSchedule(svc, 3600)
        summary = schedule.run_once()
        assert summary is not None and summary.refreshed == 1 and not summary.failures
        newer = svc.store.get(IDENTITY, key)
        assert newer is not None and b'"issueDate":"2025' in newer.body
        metrics = svc.metrics.render().decode()
        assert 'eaa_pccs_scheduled_refreshes_total{outcome="ok"} 1.0' in metrics
        stamp = next(line for line in metrics.splitlines()
                     if line.startswith("eaa_pccs_last_complete_refresh_timestamp_seconds "))
        assert float(stamp.split()[1]) == float(new.verify_at)  # the service's clock, an input
        up.fail_status = 503  # the upstream goes down: the round reports it, the cache keeps its data
        summary = schedule.run_once()
        assert summary is not None and len(summary.failures) == 1
        assert svc.store.get(IDENTITY, key) == newer and schedule.rounds == 2
        assert 'eaa_pccs_scheduled_refreshes_total{outcome="partial"} 1.0' in svc.metrics.render().decode()


def test_a_failed_round_is_logged_and_the_schedule_goes_on(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE)  # refresh itself refuses: 503
    schedule = RefreshSchedule(svc, 0.01)
    with caplog.at_level(logging.WARNING, logger="eaa.pccs"):
        assert schedule.run_once() is None
        schedule.start()
        deadline = time.monotonic() + 10
        while schedule.rounds < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        schedule.stop()
    assert schedule.rounds >= 3, "the schedule stopped after a failed round"
    assert time.monotonic() - started < 5 and schedule._thread is not None and not schedule._thread.is_alive()
    assert "scheduled refresh failed: RefreshUnavailable" in caplog.text
    metrics = svc.metrics.render().decode()
    assert 'eaa_pccs_scheduled_refreshes_total{outcome="failed"}' in metrics
    assert "eaa_pccs_last_complete_refresh_timestamp_seconds 0.0" in metrics


def test_stop_does_not_wait_for_the_interval(tmp_path: Path) -> None:
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE)
    schedule = RefreshSchedule(svc, 3600).start()
    started = time.monotonic()
    schedule.stop()
    assert time.monotonic() - started < 5 and schedule.rounds == 0


@pytest.mark.parametrize("args, message", [
    (["--mode", "offline", "--refresh-every", "12h"], "needs --mode lazy"),
    (["--refresh-every", "10s"], "shorter than 60"),
    (["--refresh-every", "weekly"], "not a duration"),
])
def test_serve_refuses_a_schedule_it_cannot_run(args: list[str], message: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = pccs_main(["serve", "--insecure-http", "--listen", "127.0.0.1:0", "--db", str(tmp_path / "x.db"), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
