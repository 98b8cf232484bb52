"""Evidence as attesters produce it and verifiers consume it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..collateral.bundle import Collateral

REPORT_DATA_SIZE = 64

# Evidence types (rats-tls names of the attester that produced them).
SGX_ECDSA = "sgx_ecdsa"
TDX_ECDSA = "tdx_ecdsa"
SEV_SNP = "sev_snp"
SGX_LA = "sgx_la"
NULL = "nullattester"


@dataclass(frozen=True)
class Evidence:
    type: str  # one of the evidence types above
    data: bytes  # the quote or report, exact bytes
    report_data: bytes  # the 64 bytes the attester bound into it
    collateral: "Collateral | None" = None  # endorsements, when the attester has them
    simulated: bool = False  # produced by the simulated TEE (a hint only; trust comes from the verifier)


class Attester(Protocol):
    name: str
    evidence_type: str

    def collect_evidence(self, report_data: bytes) -> Evidence:
        """Produce fresh evidence whose report data is ``report_data`` (at most 64 bytes, zero-padded)."""
        ...


def pad_report_data(report_data: bytes) -> bytes:
    from ..errors import ConfigError

    if len(report_data) > REPORT_DATA_SIZE:
        raise ConfigError(f"report data is {len(report_data)} bytes; at most {REPORT_DATA_SIZE} fit")
    return report_data.ljust(REPORT_DATA_SIZE, b"\x00")
