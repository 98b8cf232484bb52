"""Packaging: plain `pip install eaa` runs everything but eaa-pccs, whose command names the extra to
install; the licence, classifiers and extras are declared (issue 12)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from _vectors import require_vectors
from eaa.cli.common import EXTRAS

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("-", "_")


def without_extras(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in an interpreter where no package of an optional extra can be imported."""
    block = f"import sys\nfor _n in {sorted(EXTRAS)!r}:\n    sys.modules[_n] = None\n"
    return subprocess.run([sys.executable, "-c", block + code], capture_output=True, text=True, timeout=120)


def test_base_dependencies_hold_no_extra() -> None:
    project = PYPROJECT["project"]
    base = {_name(r) for r in project["dependencies"]}
    pccs = {_name(r) for r in project["optional-dependencies"]["pccs"]}
    assert {"fastapi", "uvicorn", "psycopg", "prometheus_client"} <= pccs
    assert not base & pccs and not base & set(EXTRAS)
    assert pccs <= set(EXTRAS)  # run_main names the extra for each of them
    assert "eaa[pccs]" in project["optional-dependencies"]["test"]  # make test keeps the PCCS tests running
    # Ranges up to the next incompatible release (exact pins for the benchmark peer and binaries) ...
    assert all(re.fullmatch(r"[\w.-]+(\[\w+\])?(==[\w.]+|>=[\w.]+,<[\w.]+)|eaa\[\w+\]", r)
               for deps in (project["dependencies"], *project["optional-dependencies"].values()) for r in deps)


def test_lock_file_holds_a_version_in_every_range() -> None:
    """... and the lock file that make test and CI install from holds one version inside each range."""
    from packaging.requirements import Requirement

    lock = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            lock[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = PYPROJECT["project"]
    for r in (*project["dependencies"], *project["optional-dependencies"]["pccs"],
              *project["optional-dependencies"]["test"]):
        if r.startswith("eaa["):
            continue
        req = Requirement(r)
        version = lock[re.sub(r"[-_.]+", "-", req.name).lower()]
        assert req.specifier.contains(version), f"{req.name} {version} is outside {req.specifier}"
    assert "-c requirements-lock.txt" in (ROOT / "Makefile").read_text()


def test_docker_image_installs_the_pccs_extra() -> None:
    text = (ROOT / "deploy" / "docker" / "eaa-pccs.Dockerfile").read_text()
    assert "pip install --no-cache-dir '.[pccs]'" in text and "LICENSE" in text
    for program in ("inclavared", "enclave-tls-server"):  # the others need only the base install
        other = (ROOT / "deploy" / "docker" / f"{program}.Dockerfile").read_text()
        assert "pip install --no-cache-dir ." in other and "[pccs]" not in other


def test_license_and_classifiers() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "Topic :: Security :: Cryptography" in project["classifiers"]


def test_everything_but_pccs_runs_without_the_extra(tmp_path: Path) -> None:
    d = require_vectors() / "dcap-qvl"
    code = f"""
import eaa.tls, eaa.services.inclavared, eaa.services.workload, eaa.services.shelter, eaa.collateral.fetch
import eaa.cli.inclavared, eaa.cli.enclave_tls_server, eaa.cli.enclave_tls_client
from eaa.cli.eaa import main
assert main(["verify-quote", {str(d / "sgx_quote")!r}, "--collateral", {str(d / "sgx_quote_collateral.json")!r},
             "--at", "1752919277"]) == 0
from eaa.cli.shelter import main as shelter
assert shelter(["mrenclave", "--sim", "--sim-dir", {str(tmp_path / "sim")!r}]) == 0
print("OK")
"""
    r = without_extras(code)
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stderr[-3000:]


@pytest.mark.parametrize("entry,argv", [
    ("eaa.cli.pccs_server", ["serve", "--insecure-http", "--listen", "127.0.0.1:0", "--mode", "offline"]),
    ("eaa.cli.eaa", ["pccs", "serve", "--insecure-http", "--listen", "127.0.0.1:0", "--mode", "offline"]),
])
def test_pccs_without_its_extra_names_it(entry: str, argv: list[str], tmp_path: Path) -> None:
    r = without_extras(f"import os\nos.chdir({str(tmp_path)!r})\nfrom {entry} import main\nsys.exit(main({argv!r}))")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "error [MISSING_EXTRA]" in r.stderr
    assert "pip install 'eaa[pccs]'" in r.stderr
