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

import os
from datetime import datetime

from ..collateral.bundle import Collateral
from ..pki.trust import TrustAnchor
from .measure import measure_files, tdx_measure
from .platform import (
    PlatformExists,
    SimPlatform,
    default_sim_dir,
    generate_files,
    init_platform,
    load_platform,
)
from .tcbinfo import EXPECTED_STATUS, TCB_STATES

__all__ = [
    "EXPECTED_STATUS",
    "PlatformExists",
    "SimPlatform",
    "TCB_STATES",
    "TrustedSimulation",
    "default_sim_dir",
    "generate_files",
    "init_platform",
    "load_platform",
    "measure_files",
    "simulation_anchor",
    "simulation_collateral",
    "tdx_measure",
]


def simulation_anchor(sim_dir: str | os.PathLike[str] | None = None, *, now: datetime | None = None) -> TrustAnchor:
    """The simulated platform's root as a trust anchor (``simulated=True``); pass it only on explicit request."""
    return load_platform(sim_dir, now=now).anchor()


def simulation_collateral(tee: str, sim_dir: str | os.PathLike[str] | None = None, *,
                          now: datetime | None = None) -> Collateral:
    """The simulated platform's collateral for ``tee`` ("sgx" or "tdx") quotes."""
    return load_platform(sim_dir, now=now).collateral(tee)


class TrustedSimulation:
    """The simulated platform in ``sim_dir``, as a verifier that was told to trust it takes it
    (:class:`eaa.verify.verifier.SimulationTrust`): verification never imports the simulator itself.

    The root is read once; collateral is read on each use, so a platform refreshed on disk
    (``eaa sim refresh``) is seen by a long-running verifier."""

    def __init__(self, sim_dir: str | os.PathLike[str] | None = None) -> None:
        self.sim_dir = sim_dir
        self._anchor: TrustAnchor | None = None

    def anchor(self) -> TrustAnchor:
        if self._anchor is None:
            self._anchor = simulation_anchor(self.sim_dir)
        return self._anchor

    def collateral(self, tee: str) -> Collateral:
        return simulation_collateral(tee, self.sim_dir)
