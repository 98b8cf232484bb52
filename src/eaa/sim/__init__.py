"""The simulated TEE: a complete SGX/TDX platform in software, never trusted by accident.

It has its own root CA (its subject says SIMULATION, never Intel), PCK platform CA and PCK
certificate with the real SGX extension, TCB signing certificate, CRLs, signed TCB info (SGX and
TDX) and QE / TD_QE identities, and quoting enclaves that emit quotes in the exact SGX v3 and TDX v4
byte formats. The ordinary verifier checks them; its root is an anchor only when a caller passes
:func:`simulation_anchor` (``--trust-sim``), and results rooted in it say ``simulated``.

MRENCLAVE / MRTD are measurements of the files the simulated enclave runs (:func:`measure_files`,
:func:`tdx_measure`; the algorithm is documented in :mod:`eaa.sim.measure`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "EXPECTED_STATUS": "tcbinfo",
    "TCB_STATES": "tcbinfo",
    "PlatformExists": "platform",
    "SimPlatform": "platform",
    "default_sim_dir": "platform",
    "generate_files": "platform",
    "init_platform": "platform",
    "load_platform": "platform",
    "measure_files": "measure",
    "tdx_measure": "measure",
    "TrustedSimulation": "trust",
    "UntrustedSimulation": "trust",
    "simulation_anchor": "trust",
    "simulation_collateral": "trust",
}
__all__ = [
    "EXPECTED_STATUS",
    "PlatformExists",
    "SimPlatform",
    "TCB_STATES",
    "TrustedSimulation",
    "UntrustedSimulation",
    "default_sim_dir",
    "generate_files",
    "init_platform",
    "load_platform",
    "measure_files",
    "simulation_anchor",
    "simulation_collateral",
    "tdx_measure",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .measure import measure_files, tdx_measure
    from .platform import PlatformExists, SimPlatform, default_sim_dir, generate_files, init_platform, load_platform
    from .tcbinfo import EXPECTED_STATUS, TCB_STATES
    from .trust import TrustedSimulation, UntrustedSimulation, simulation_anchor, simulation_collateral
