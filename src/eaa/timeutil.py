"""One reading of "a moment" for the whole package.

Verification times are inputs (tests and callers pin them) given as an aware or naive datetime or as
unix seconds; every module turns them into one aware UTC datetime here, so a naive value means UTC
everywhere and two modules never disagree on the same input.
"""

from __future__ import annotations

from datetime import datetime, timezone


def as_utc(at: datetime | int | float) -> datetime:
    """``at`` as an aware UTC datetime: a naive datetime is taken as UTC, a number as unix seconds."""
    if isinstance(at, datetime):
        return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)
    return datetime.fromtimestamp(at, timezone.utc)


def utc_now() -> datetime:
    """The current time, for the callers whose time input was left out."""
    return datetime.now(timezone.utc)
