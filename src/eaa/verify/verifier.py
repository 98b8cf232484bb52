"""What a verifier is, and what every verifier is handed: the report-data binding, collateral sources, and a
simulated platform the caller chose to trust.

The simulated platform arrives as an object (``eaa.sim.trusted_simulation``) rather than a flag, so that
verification never imports the simulator: trusting it is decided, and its files are read, by the layers
above (the TLS peer verifier, the command line).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, Union

from ..errors import IdentityMismatch
from .result import VerificationResult

if TYPE_CHECKING:
    from ..collateral.bundle import Collateral
    from ..pki.trust import TrustAnchor

# Where collateral comes from when the evidence does not carry it: a fixed bundle, a file or
# directory (eaa.collateral.bundle.load_collateral), or a function (tee, quote bytes) -> Collateral | None.
CollateralSource = Union["Collateral", str, "os.PathLike[str]", Callable[[str, bytes], "Collateral | None"], None]


class Verifier(Protocol):
    name: str
    evidence_types: tuple[str, ...]  # what it can check; nullverifier: everything

    def verify_evidence(self, evidence: bytes, *, evidence_type: str, report_data_hash: bytes | None,
                        collateral: Collateral | None, at: datetime) -> VerificationResult:
        """Check ``report_data[0:len(hash)] == report_data_hash`` and then the evidence itself."""
        ...


class SimulatedSnpPlatform(Protocol):
    """The simulated SEV-SNP platform: its ARK, its one chip, and that chip's certificates and CRL."""

    chip_id: bytes

    def anchor(self) -> TrustAnchor: ...

    def collateral(self) -> Any: ...  # eaa.verify.snp_collateral.SnpCollateral


class SimulationTrust(Protocol):
    """A simulated platform the caller chose to trust: its root, the collateral it issues (SGX/TDX), and its
    SEV-SNP platform."""

    def anchor(self) -> TrustAnchor: ...

    def collateral(self, tee: str) -> Collateral: ...

    def snp(self) -> SimulatedSnpPlatform: ...


class UntrustedSimulationHint(Protocol):
    """A simulated platform that is *not* trusted, known only so that its evidence is refused at once, saying
    why, instead of asking AMD's KDS about a chip that does not exist."""

    def snp_chip_id(self) -> bytes | None: ...


class ReportDataMismatch(IdentityMismatch):
    """The evidence's report data is not the hash the TLS layer expects (claims buffer / legacy key hash)."""

    code = "REPORT_DATA_MISMATCH"


def check_report_data(report_data: bytes, expected: bytes | None) -> None:
    if expected is not None and report_data[:len(expected)] != expected:
        raise ReportDataMismatch("the evidence's report data does not match the hash of the claims it was "
                                 "sent with: the evidence is not bound to this certificate")
