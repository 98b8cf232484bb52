"""The static checks are part of the suite, so `make test` (and CI) fails on a lint or type error.

ruff, mypy and import-linter are pinned in the ``test`` extra and read their settings from
pyproject.toml: ruff over the package, the tests, the benchmarks and the fuzz targets; mypy over the
package, strict for eaa.formats and eaa.verify; import-linter's layers contracts over the package.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_reports_nothing() -> None:
    r = _run("ruff", "check", "--no-cache", "src", "tests", "bench", "fuzz")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_reports_nothing() -> None:
    r = _run("mypy")
    assert r.returncode == 0, r.stdout + r.stderr


def test_import_layers_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ci_entry_point_is_a_valid_script() -> None:
    """.ci/run is what CI calls (it ends in `make test`); a syntax error there would skip every check above."""
    r = subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")


def test_threat_model_names_only_tests_that_exist() -> None:
    """Every claim in docs/threat-model.md names the test that holds it: each named test must exist."""
    import re

    root = Path(__file__).resolve().parent
    text = (root.parent / "docs" / "threat-model.md").read_text()
    refs = set(re.findall(r"`(test_\w+\.py)(?:::(\w+))?`", text))
    assert refs
    missing = [f"{f}::{fn}" if fn else f for f, fn in refs
               if not (root / f).is_file() or (fn and f"def {fn}(" not in (root / f).read_text())]
    assert not missing, missing
