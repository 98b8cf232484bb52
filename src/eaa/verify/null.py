"""The verifiers that check nothing: nullverifier, and the rats-tls names eaa cannot verify (refused, saying why)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedEvidence
from ..evidence import NULL, SGX_LA, UNVERIFIABLE
from .result import NO_EVIDENCE, NOT_VERIFIED, VerificationResult

if TYPE_CHECKING:
    from ..collateral.bundle import Collateral



def unverified_claims(evidence_type: str, evidence: bytes) -> dict[str, Any]:
    """What rats-tls hands its callback from evidence no verifier checked: CSV's VM ID, version, measure and
    policy (rats-tls ``tls_wrapper_verify_certificate_extension``); nothing for other types."""
    if evidence_type == "csv" and evidence:
        from ..formats.csv_report import parse_csv_report

        return parse_csv_report(evidence).claims()
    return {}


class NullVerifier:
    """Checks nothing. Chosen only by name; the result says so (tee "none", status NotVerified/NoEvidence).

    Claims rats-tls reads from unverified evidence (CSV) are in ``measurements``; the status says they
    are not verified, which no policy accepts together with reference values."""

    name = "nullverifier"
    evidence_types: tuple[str, ...] = ()

    def verify_evidence(self, evidence: bytes, *, evidence_type: str = NULL, report_data_hash: bytes | None = None,
                        collateral: Collateral | None = None, at: datetime | None = None) -> VerificationResult:
        return VerificationResult(
            tee="none", status=NO_EVIDENCE if not evidence else NOT_VERIFIED, advisory_ids=(),
            measurements=unverified_claims(evidence_type, evidence), report_data=b"",
            details={"verifier": self.name, "evidence_type": evidence_type})


class UnsupportedVerifier:
    """Registered under its rats-tls name so it can be named; verification is not implemented yet."""

    def __init__(self, name: str, evidence_type: str, why: str) -> None:
        self.name = name
        self.evidence_types: tuple[str, ...] = (evidence_type,)
        self.why = why

    def verify_evidence(self, evidence: bytes, **_: Any) -> VerificationResult:
        raise UnsupportedEvidence(f"verifier {self.name}: {self.why}")




def sgx_la() -> UnsupportedVerifier:
    return UnsupportedVerifier("sgx_la", SGX_LA, "local-attestation reports can only be checked by the quoting "
                               "enclave on the same platform; not supported")


def csv() -> UnsupportedVerifier:
    """rats-tls's csv verifier (priority 20), by name: it refuses with the reason eaa cannot verify."""
    return UnsupportedVerifier("csv", "csv", UNVERIFIABLE["csv"])


def sev() -> UnsupportedVerifier:
    """rats-tls's sev verifier (priority 35), by name."""
    return UnsupportedVerifier("sev", "sev", UNVERIFIABLE["sev"])
