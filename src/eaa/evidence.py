"""Evidence as attesters produce it and verifiers consume it: the types' names and the one structure.

A layer of its own, below attesters and verifiers alike, so that neither imports the other to name
what it produces or accepts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import record

if TYPE_CHECKING:
    from .collateral.bundle import Collateral
    from .formats.snp_certs import SnpEndorsements

REPORT_DATA_SIZE = 64

# Evidence types (rats-tls names of the attester that produced them).
SGX_ECDSA = "sgx_ecdsa"
TDX_ECDSA = "tdx_ecdsa"
SEV_SNP = "sev_snp"
SGX_LA = "sgx_la"
NULL = "nullattester"

# Evidence types eaa parses (a peer is accepted under a named nullverifier, with its claims, as rats-tls
# accepts it) but cannot verify, and why. rats-tls names: "sev", "csv"; 60001 has no rats-tls type.
SEV = "sev"
CSV = "csv"
TEE_REPORT = "tee_report"
UNVERIFIABLE = {
    SEV: "SEV(-ES) evidence cannot be verified: its attestation report has no user data, so it cannot bind "
         "the TLS key or a nonce (rats-tls's sev verifier skips that check); name nullverifier to accept the "
         "peer's claims unverified",
    CSV: "Hygon CSV evidence cannot be verified here: its SM2-signed report and Hygon's HRK/HSK/CEK/PEK chain "
         "are not implemented; name nullverifier to accept the peer's claims unverified",
    TEE_REPORT: "an Intel TEE report (TDX report or SGX report type 2) is not signed by a quoting enclave and "
                "can only be checked on the platform that made it (rats-tls refuses it too); name nullverifier "
                "to accept the peer's claims unverified",
}


@record
class Evidence:
    """Evidence as an attester produced it: the exact quote or report bytes, the report data bound into it
    and any endorsements."""

    type: str  # one of the evidence types above
    data: bytes  # the quote or report, exact bytes
    report_data: bytes  # the 64 bytes the attester bound into it
    # endorsements, when the attester has them: DCAP collateral (SGX/TDX), the certificate table (SEV-SNP)
    collateral: Collateral | SnpEndorsements | None = None
    simulated: bool = False  # produced by the simulated TEE (a hint only; trust comes from the verifier)


def pad_report_data(report_data: bytes) -> bytes:
    from .errors import ConfigError

    if len(report_data) > REPORT_DATA_SIZE:
        raise ConfigError(f"report data is {len(report_data)} bytes; at most {REPORT_DATA_SIZE} fit")
    return report_data.ljust(REPORT_DATA_SIZE, b"\x00")
