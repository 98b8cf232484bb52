"""Plugin registration: one table per kind, lazy factories, declared options that match what the factories
take, and a curated public API whose names resolve."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import subprocess
import sys

import pytest

from eaa.attest.registry import attesters
from eaa.errors import ConfigError
from eaa.sim.snp import SnpGuest
from eaa.sim.snp_attester import SimSevSnpAttester
from eaa.verify.dcap_verifier import DcapVerifier
from eaa.verify.registry import verifiers


def _parameters(factory: object) -> set[str]:
    params = list(inspect.signature(factory).parameters.values())  # type: ignore[arg-type]
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
             and p.default is not inspect.Parameter.empty}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        if factory is SimSevSnpAttester:  # the rest are the simulated guest's launch parameters
            return names | {f.name for f in dataclasses.fields(SnpGuest)} - {"measurement"} | {"measurement"}
        # the DCAP entries forward everything to DcapVerifier's keyword-only options
        return {p.name for p in inspect.signature(DcapVerifier).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return names


@pytest.mark.parametrize("registry", [attesters, verifiers], ids=["attesters", "verifiers"])
def test_declared_options_are_exactly_what_each_factory_takes(registry) -> None:  # type: ignore[no-untyped-def]
    for entry in registry.ordered():
        assert isinstance(entry.factory, str), f"{entry.name} is not registered lazily"
        module, _, name = entry.factory.partition(":")
        factory = getattr(importlib.import_module(module), name)
        assert entry.options == _parameters(factory), entry.name


def test_registries_import_no_plugin() -> None:
    """Importing the tables (as every TLS program does) loads no attester, verifier or simulator module."""
    code = ("import sys, eaa.attest.registry, eaa.verify.registry\n"
            "print(sorted(m for m in sys.modules if m.startswith(('eaa.sim', 'eaa.attest.s', 'eaa.attest.t', "
            "'eaa.verify.dcap', 'eaa.verify.snp', 'eaa.verify.null'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_unknown_and_foreign_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown verifier option chek_crl"):
        verifiers.select("sgx_ecdsa", chek_crl=False)
    with pytest.raises(ConfigError, match="unknown verifier option chek_crl"):
        verifiers.select("sgx_ecdsa", chek_crl=None)
    with pytest.raises(ConfigError, match="unknown attester option"):
        attesters.select(None, measure_path=None)
    with pytest.raises(ConfigError, match="verifier nullverifier does not take strict"):
        verifiers.select("nullverifier", strict=True)
    with pytest.raises(ConfigError, match="unknown verifier option"):
        verifiers.options_for("sev_snp", {"produkt": "Milan"})
    assert verifiers.options_for("sgx_ecdsa", {"product": "Milan", "strict": True, "check_crl": None}) == {
        "strict": True}
    assert verifiers.options_for("sev_snp", {"product": "Milan", "cache_size": 0}) == {"product": "Milan"}


@pytest.mark.parametrize("package", ["eaa.verify", "eaa.formats", "eaa.collateral", "eaa.tls"])
def test_public_api_names_resolve(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018
