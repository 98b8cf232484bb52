"""bench/instructions.py's cases still run against the current API (the counts themselves need valgrind)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from _vectors import require_vectors

BENCH = Path(__file__).resolve().parent.parent / "bench" / "instructions.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_instructions", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, Path]:
    bench = _bench()
    workdir = tmp_path_factory.mktemp("instr")
    bench._prepare(workdir)
    return bench, workdir


@pytest.mark.parametrize("case", ["sig", "peer", "peerfloor", "cold:SGX v3", "warm:SGX v3", "floor:SGX v3",
                                  "cold:TDX v4", "warm:TDX v4", "floor:TDX v4"])
def test_each_eaa_case_runs(prepared: tuple[ModuleType, Path], case: str) -> None:
    bench, workdir = prepared
    if ":" in case:
        require_vectors()
    fn = bench._target(case, workdir)
    result = fn()
    if case.startswith(("cold", "warm")):
        assert result.status  # a verification result, not an error swallowed by the loop
    elif case == "peer":
        assert result.result.tee == "sgx" and result.result.simulated
    elif "floor" in case:
        assert len(result) == 64  # the report data the floor returns once every signature checked out
