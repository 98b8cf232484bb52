"""The attester registry, with rats-tls names and priorities (shared/docs/eaa-reference.md §2).

Automatic selection only ever picks an attester backed by a TEE interface found on this machine:
``nullattester`` (no evidence) and the simulated attesters are chosen only when named, so a
workload never silently serves no evidence (or simulated evidence) because its TEE is missing.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..registry import Registry
from .evidence import Attester
from .null import NullAttester
from .sgx import sgx_ecdsa_factory
from .snp import sev_snp_factory
from .tdx import tdx_ecdsa_factory

attesters: Registry[Attester] = Registry("attester")
attesters.register("nullattester", 0, NullAttester, auto=False)
attesters.register("sgx_ecdsa", 52, sgx_ecdsa_factory)
attesters.register("tdx_ecdsa", 42, tdx_ecdsa_factory)
attesters.register("sev_snp", 42, sev_snp_factory)

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


def _register_optional() -> None:
    """Attesters living in other modules register themselves here, so one import finds them all."""
    try:
        from ..sim import attesters as _sim  # noqa: F401  (registers sim_sgx_ecdsa, sim_tdx_ecdsa)
    except ImportError:
        pass


_register_optional()
