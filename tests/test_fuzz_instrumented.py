"""``make fuzz`` runs the targets in code that atheris has rewritten for coverage; that rewrite must not change
what the code does. atheris 2.3.0 on Python 3.11 miscompiled eaa.formats.pem.pem_bodies (a loop whose body
grows past a jump's reach once instrumented), so six of the twelve targets stopped at their first seed and
fuzzed nothing. Here every target's seeds run in a freshly instrumented interpreter, as the fuzzer starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))

import targets as fuzz_targets  # noqa: E402

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"

_RUN_SEEDS = """
import sys
import atheris
with atheris.instrument_imports():
    sys.path.insert(0, sys.argv[1])
    import targets
for name, target in sorted(targets.TARGETS.items()):
    seeds = target.seeds()
    for seed in seeds:
        targets.check(target, seed)  # a typed refusal is fine, anything else raises
    print(name, len(seeds))
"""

def test_every_target_runs_its_seeds_under_instrumentation() -> None:
    r = subprocess.run([sys.executable, "-c", _RUN_SEEDS, str(FUZZ)], capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    ran = dict(line.split() for line in r.stdout.splitlines())
    assert sorted(ran) == sorted(fuzz_targets.TARGETS)
    assert all(int(n) > 0 for n in ran.values())


def test_the_instrumentation_keeps_pem_bodies_intact() -> None:
    """The function atheris 2.3.0 broke, on its own: it must give the same answer instrumented as not."""
    script = ("import atheris\nwith atheris.instrument_imports():\n    from eaa.formats.pem import pem_bodies\n"
              "print(pem_bodies(b'-----BEGIN CERTIFICATE-----ab-----END CERTIFICATE-----'))\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[b'ab']"
