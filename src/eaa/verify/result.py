"""The one immutable result every verifier returns (SGX, TDX, SEV-SNP, simulated or not)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from ..records import record
from .measurements import Measurements


class TcbStatus(StrEnum):
    """What a verification says of the platform's TCB, spelt as Intel's QVL spells it (a ``str``: it
    compares equal to, prints and serialises as that spelling). ``NotVerified`` and ``NoEvidence`` are
    nullverifier's and ``SelfReported`` protocol v1's: nothing was checked."""

    UP_TO_DATE = "UpToDate"
    SW_HARDENING_NEEDED = "SWHardeningNeeded"
    CONFIGURATION_NEEDED = "ConfigurationNeeded"
    CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
    OUT_OF_DATE = "OutOfDate"
    OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
    REVOKED = "Revoked"
    TD_RELAUNCH_ADVISED = "TDRelaunchAdvised"
    TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED = "TDRelaunchAdvisedConfigurationNeeded"
    NOT_VERIFIED = "NotVerified"
    NO_EVIDENCE = "NoEvidence"
    SELF_REPORTED = "SelfReported"  # shelter's protocol v1: the workload's own word, nothing verified


# TCB statuses in the order a policy usually ranks them.
UP_TO_DATE = TcbStatus.UP_TO_DATE
SW_HARDENING_NEEDED = TcbStatus.SW_HARDENING_NEEDED
CONFIGURATION_NEEDED = TcbStatus.CONFIGURATION_NEEDED
CONFIGURATION_AND_SW_HARDENING_NEEDED = TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED
OUT_OF_DATE = TcbStatus.OUT_OF_DATE
OUT_OF_DATE_CONFIGURATION_NEEDED = TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED
REVOKED = TcbStatus.REVOKED
TD_RELAUNCH_ADVISED = TcbStatus.TD_RELAUNCH_ADVISED
TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED = TcbStatus.TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED
NOT_VERIFIED = TcbStatus.NOT_VERIFIED
NO_EVIDENCE = TcbStatus.NO_EVIDENCE

ALL_STATUSES = (
    UP_TO_DATE, SW_HARDENING_NEEDED, CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED, OUT_OF_DATE,
    OUT_OF_DATE_CONFIGURATION_NEEDED, REVOKED, TD_RELAUNCH_ADVISED, TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
)


def _freeze(m: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy; a read-only view or typed measurements are kept as they are (the verifier shares one
    per prepared quote)."""
    return m if isinstance(m, (MappingProxyType, Measurements)) else MappingProxyType(dict(m))


@record
class VerificationResult:
    """What a verifier established about one piece of evidence, immutable; whether to accept it is a policy's call."""

    tee: str  # "sgx", "tdx", "sev-snp", "none"
    status: TcbStatus
    advisory_ids: tuple[str, ...]
    # Typed per TEE (eaa.verify.measurements: SgxMeasurements, TdxMeasurements, ...), and a read-only mapping
    # by the names reference values and policies use; nullverifier's unverified claims are a plain mapping.
    measurements: Mapping[str, Any]
    report_data: bytes
    fmspc: str | None = None
    tcb_date: str | None = None
    collateral_expired: bool = False
    simulated: bool = False
    debug: bool = False
    earliest_expiration: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", TcbStatus(self.status))  # an unknown status is a bug: ValueError
        object.__setattr__(self, "measurements", _freeze(self.measurements))
        object.__setattr__(self, "details", _freeze(self.details))
        object.__setattr__(self, "advisory_ids", tuple(self.advisory_ids))

    def to_dict(self) -> dict[str, Any]:
        return {
            "tee": self.tee,
            "status": self.status,
            "advisory_ids": list(self.advisory_ids),
            "measurements": dict(self.measurements),
            "report_data": self.report_data.hex(),
            "fmspc": self.fmspc,
            "tcb_date": self.tcb_date,
            "collateral_expired": self.collateral_expired,
            "earliest_expiration": self.earliest_expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
            if self.earliest_expiration else None,
            "simulated": self.simulated,
            "debug": self.debug,
            "details": dict(self.details),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
