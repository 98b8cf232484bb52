"""The one reading of a verification time: naive means UTC, numbers are unix seconds, results are UTC."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from eaa.timeutil import as_utc, utc_now

T = datetime(2025, 1, 1, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("at", [T, T.replace(tzinfo=None), T.timestamp(), int(T.timestamp()),
                                T.astimezone(timezone(timedelta(hours=-5)))])
def test_every_spelling_of_one_moment_is_the_same_utc_datetime(at: datetime | float) -> None:
    got = as_utc(at)
    assert got == T and got.tzinfo is timezone.utc and got.utcoffset() == timedelta(0)


def test_now_is_aware_utc() -> None:
    assert utc_now().tzinfo is timezone.utc
