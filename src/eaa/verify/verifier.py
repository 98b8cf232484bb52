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
from typing import TYPE_CHECKING, Protocol, Union

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


class SimulationTrust(Protocol):
    """A simulated platform the caller chose to trust: its root, and the collateral it issues."""

    def anchor(self) -> TrustAnchor: ...

    def collateral(self, tee: str) -> Collateral: ...


class ReportDataMismatch(IdentityMismatch):
    """The evidence's report data is not the hash the TLS layer expects (claims buffer / legacy key hash)."""

    code = "REPORT_DATA_MISMATCH"


def check_report_data(report_data: bytes, expected: bytes | None) -> None:
    if expected is not None and report_data[:len(expected)] != expected:
        raise ReportDataMismatch("the evidence's report data does not match the hash of the claims it was "
                                 "sent with: the evidence is not bound to this certificate")
