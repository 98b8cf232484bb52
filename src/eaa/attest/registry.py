"""The attester registry, with rats-tls names and priorities (shared/docs/eaa-reference.md §2).

Automatic selection only ever picks an attester backed by a TEE interface found on this machine:
``nullattester`` (no evidence) and the simulated attesters are chosen only when named, so a
workload never silently serves no evidence (or simulated evidence) because its TEE is missing.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..registry import Registry
from .evidence import Attester


class AttesterRegistry(Registry[Attester]):
    def none_available(self, reasons: list[str]) -> ConfigError:
        return no_tee_error(reasons)


# Every attester is made on use ("module:factory"): a program that never attests (shelter, a one-way
# client) does not pay for every TEE interface, and a real deployment never loads the simulator.
attesters = AttesterRegistry("attester")
attesters.register("nullattester", 0, "eaa.attest.null:NullAttester", auto=False)
attesters.register("sgx_ecdsa", 52, "eaa.attest.sgx:sgx_ecdsa_factory", options={"root", "ioctl"})
attesters.register("tdx_ecdsa", 42, "eaa.attest.tdx:tdx_ecdsa_factory", options={"root"})
attesters.register("sev_snp", 42, "eaa.attest.snp:sev_snp_factory", options={"root", "ioctl", "vmpl"})
# The simulated TEE: only when named.
attesters.register("sim_sgx_ecdsa", 52, "eaa.sim.attesters:SimSgxEcdsaAttester", auto=False, options={
    "sim_dir", "measure_paths", "mrenclave", "isv_prod_id", "isv_svn", "debug", "platform"})
attesters.register("sim_tdx_ecdsa", 42, "eaa.sim.attesters:SimTdxEcdsaAttester", auto=False, options={
    "sim_dir", "measure_paths", "mrtd", "rtmrs", "debug", "platform"})
attesters.register("sim_sev_snp", 42, "eaa.sim.snp_attester:SimSevSnpAttester", auto=False, options={
    "sim_dir", "measure_paths", "measurement", "debug", "platform", "policy", "vmpl", "guest_svn", "family_id",
    "image_id", "host_data", "id_key_digest", "author_key_digest"})

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
