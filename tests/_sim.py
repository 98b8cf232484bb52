"""Fixtures the simulated-platform tests share: one platform per module, created at a fixed time, and a
default platform directory that is never the user's."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from eaa.sim import SimPlatform, init_platform

T0 = datetime(2031, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _never_the_real_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test forgets to pass, the default platform directory is a temporary one."""
    monkeypatch.setenv("EAA_SIM_DIR", str(tmp_path / "default-sim"))


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    return init_platform(tmp_path_factory.mktemp("sim") / "platform", now=T0)
