"""The simulated platform as verifiers take it: trusted (its roots and collateral), or only recognised.

Kept apart from the platform code so that a program that may meet simulated evidence (every TLS
client) pays for the simulator only when it actually reads the platform.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..collateral.bundle import Collateral
    from ..pki.trust import TrustAnchor


def simulation_anchor(sim_dir: str | os.PathLike[str] | None = None, *, now: datetime | None = None) -> TrustAnchor:
    """The simulated platform's root as a trust anchor (``simulated=True``); pass it only on explicit request."""
    from .published import published_anchor

    return published_anchor(sim_dir, now=now)


def simulation_collateral(tee: str, sim_dir: str | os.PathLike[str] | None = None, *,
                          now: datetime | None = None) -> Collateral:
    """The simulated platform's collateral for ``tee`` ("sgx" or "tdx") quotes."""
    from .published import published_collateral

    return published_collateral(tee, sim_dir, now=now)


class TrustedSimulation:
    """The simulated platform in ``sim_dir``, as a verifier that was told to trust it takes it
    (:class:`eaa.verify.verifier.SimulationTrust`): verification never imports the simulator itself.

    The root is read once; collateral is read on each use, so a platform refreshed on disk
    (``eaa sim refresh``) is seen by a long-running verifier."""

    def __init__(self, sim_dir: str | os.PathLike[str] | None = None) -> None:
        self.sim_dir = sim_dir
        self._anchor: TrustAnchor | None = None
        self._snp: Any = None

    def anchor(self) -> TrustAnchor:
        if self._anchor is None:
            self._anchor = simulation_anchor(self.sim_dir)
        return self._anchor

    def collateral(self, tee: str) -> Collateral:
        return simulation_collateral(tee, self.sim_dir)

    def snp(self) -> Any:
        """The simulated SEV-SNP platform (:class:`eaa.sim.snp.SimSnpPlatform`), loaded on first use."""
        if self._snp is None:
            from .snp import load_snp_platform

            self._snp = load_snp_platform(self.sim_dir)
        return self._snp


class UntrustedSimulation:
    """The simulated platform in ``sim_dir`` when it is *not* trusted (``eaa.verify.verifier.UntrustedSimulationHint``):
    only its SEV-SNP chip is read, so that a report of that chip is refused with the reason.

    The chip is kept once found; while there is no platform, every call looks again, so one created later is
    still recognised. (A platform re-created while a verifier runs is not: its reports then fail as any
    report with an unknown chip does, only with a less specific message.)"""

    def __init__(self, sim_dir: str | os.PathLike[str] | None = None) -> None:
        self.sim_dir = sim_dir
        self._chip_id: bytes | None = None

    def snp_chip_id(self) -> bytes | None:
        if self._chip_id is None:
            from ..errors import EaaError
            from .snp import load_snp_platform

            try:
                self._chip_id = load_snp_platform(self.sim_dir, create=False).chip_id
            except EaaError:
                return None
        return self._chip_id
