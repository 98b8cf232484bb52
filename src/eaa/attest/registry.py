"""The attester registry, with rats-tls names and priorities (shared/docs/eaa-reference.md §2)."""

from __future__ import annotations

from ..registry import Registry
from .evidence import Attester
from .null import NullAttester
from .sgx import sgx_ecdsa_factory
from .snp import sev_snp_factory
from .tdx import tdx_ecdsa_factory

attesters: Registry[Attester] = Registry("attester")
attesters.register("nullattester", 0, NullAttester)
attesters.register("sgx_ecdsa", 52, sgx_ecdsa_factory)
attesters.register("tdx_ecdsa", 42, tdx_ecdsa_factory)
attesters.register("sev_snp", 42, sev_snp_factory)


def _register_optional() -> None:
    """Attesters living in other modules register themselves here, so one import finds them all."""
    try:
        from ..sim import attesters as _sim  # noqa: F401  (registers sim_sgx_ecdsa, sim_tdx_ecdsa)
    except ImportError:
        pass
    try:
        from ..sim.snp_attester import sim_sev_snp_factory
    except ImportError:
        return
    attesters.register("sim_sev_snp", 42, sim_sev_snp_factory, auto=False)


_register_optional()
