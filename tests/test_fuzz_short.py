"""A short, fixed-seed fuzzing run of every reader of untrusted bytes (fuzz/targets.py) inside
``make test``: mutated real and simulated inputs must give a result or a typed error, never anything
else. ``make fuzz`` runs the same targets coverage-guided for longer."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))

import targets as fuzz_targets  # noqa: E402

INTERESTING = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x30, 0x02, 0x04, 0xA0]
# The whole peer check verifies signatures: fewer examples keep the suite quick.
EXAMPLES = {"peer_certificate": 60}


@st.composite
def mutated(draw: st.DrawFn, seeds: tuple[bytes, ...]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)) if seeds and draw(st.integers(0, 9)) else
                     draw(st.binary(max_size=64)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 5))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == 0 and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == 1 and data:
            data[at] = draw(st.sampled_from(INTERESTING))
        elif op == 2 and draw(st.booleans()):
            del data[at:at + draw(st.integers(1, 64))]
        elif op == 2:
            del data[draw(st.integers(0, len(data))):]  # truncation
        elif op == 3:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == 4 and data:
            end = min(len(data), at + draw(st.integers(1, 32)))
            data[at:at] = data[at:end] * draw(st.integers(1, 3))
        elif op == 5 and seeds:
            other = draw(st.sampled_from(seeds))
            data = data[:at] + bytearray(other[draw(st.integers(0, len(other))):])
    return bytes(data[:fuzz_targets.MAX_INPUT])


@pytest.mark.parametrize("name", sorted(fuzz_targets.TARGETS))
def test_target_gives_a_result_or_a_typed_error(name: str) -> None:
    target = fuzz_targets.TARGETS[name]
    seeds = tuple(target.seeds())
    for seed in seeds:  # the seeds themselves
        fuzz_targets.check(target, seed)

    @settings(max_examples=EXAMPLES.get(name, 150), deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(mutated(seeds))
    def run(data: bytes) -> None:
        fuzz_targets.check(target, data)

    run()
