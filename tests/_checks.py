"""Asserting on the check that failed (its stable identifier), not on message text."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from eaa.errors import EaaError


@contextmanager
def fails(check: str, kind: type[EaaError] = EaaError) -> Iterator[pytest.ExceptionInfo[EaaError]]:
    """Expect an error of ``kind`` whose ``check`` is ``check``."""
    with pytest.raises(kind) as info:
        yield info
    assert info.value.check == check, f"failed {info.value.check} instead of {check}: {info.value}"
