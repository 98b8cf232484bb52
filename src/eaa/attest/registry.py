"""The attester registry, with rats-tls names and priorities (shared/docs/eaa-reference.md §2).

Automatic selection only ever picks an attester backed by a TEE interface found on this machine:
``nullattester`` (no evidence) and the simulated attesters are chosen only when named, so a
workload never silently serves no evidence (or simulated evidence) because its TEE is missing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from ..registry import Registry
from .evidence import Attester
from .null import NullAttester


def _lazy(module: str, factory: str) -> Callable[..., Attester]:
    """A factory that imports its attester's module when it is called. Every program that imports the TLS
    layer imports this registry, and most never attest (shelter, a one-way client): they should not pay
    for every TEE interface and the simulator (and a real deployment never loads the simulator)."""
    def make(**kwargs: Any) -> Attester:
        real: Callable[..., Attester] = getattr(importlib.import_module(module, __package__), factory)
        return real(**kwargs)  # each real factory takes the options it knows and ignores the others

    make.__name__ = make.__qualname__ = factory
    return make


attesters: Registry[Attester] = Registry("attester")
attesters.register("nullattester", 0, NullAttester, auto=False)
attesters.register("sgx_ecdsa", 52, _lazy(".sgx", "sgx_ecdsa_factory"))
attesters.register("tdx_ecdsa", 42, _lazy(".tdx", "tdx_ecdsa_factory"))
attesters.register("sev_snp", 42, _lazy(".snp", "sev_snp_factory"))
# The simulated TEE: only when named. Importing eaa.sim.attesters registers the same entries again.
attesters.register("sim_sgx_ecdsa", 52, _lazy("..sim.attesters", "_sgx_factory"), auto=False)
attesters.register("sim_tdx_ecdsa", 42, _lazy("..sim.attesters", "_tdx_factory"), auto=False)
attesters.register("sim_sev_snp", 42, _lazy("..sim.snp_attester", "sim_sev_snp_factory"), auto=False)

NO_TEE_HINT = ("name an attester: --attester sim_sgx_ecdsa for the simulated TEE (development only; "
               "see 'eaa sim init'), or --attester nullattester to serve no evidence at all")


class NoTeeFound(ConfigError):
    """Automatic attester selection found no TEE interface on this machine."""

    code = "NO_TEE"


def no_tee_error(reasons: list[str]) -> NoTeeFound:
    """The error automatic selection raises when no attester is available: why each TEE is missing,
    and which flag to use instead (the reasons name device paths, never file contents)."""
    why = "; ".join(reasons) or "no attester registered"
    return NoTeeFound(f"no TEE found on this machine ({why}); {NO_TEE_HINT}")
