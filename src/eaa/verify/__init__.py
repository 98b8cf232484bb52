"""Verification of attestation evidence: Intel SGX and TDX ECDSA quotes as Intel's QVL checks them, and
AMD SEV-SNP reports.

The public API::

    from eaa.verify import QuoteVerifier, verify_quote, verify_snp_report, VerificationResult, TcbStatus

Names are imported on first use (:mod:`eaa._lazy`), so importing one verifier does not load the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "QuoteVerifier": "dcap",
    "verify_quote": "dcap",
    "verify_snp_report": "snp",
    "SevSnpVerifier": "snp_verifier",
    "SnpCollateral": "snp_collateral",
    "VerificationResult": "result",
    "TcbStatus": "result",
    "Measurements": "measurements",
    "SgxMeasurements": "measurements",
    "TdxMeasurements": "tdx_measurements",
    "SnpMeasurements": "snp_measurements",
    "Verifier": "verifier",
    "verifiers": "registry",
}
__all__ = [
    "Measurements",
    "QuoteVerifier",
    "SevSnpVerifier",
    "SgxMeasurements",
    "SnpMeasurements",
    "SnpCollateral",
    "TcbStatus",
    "TdxMeasurements",
    "VerificationResult",
    "Verifier",
    "verifiers",
    "verify_quote",
    "verify_snp_report",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .dcap import QuoteVerifier, verify_quote
    from .measurements import Measurements, SgxMeasurements
    from .registry import verifiers
    from .result import TcbStatus, VerificationResult
    from .snp import verify_snp_report
    from .snp_collateral import SnpCollateral
    from .snp_measurements import SnpMeasurements
    from .snp_verifier import SevSnpVerifier
    from .tdx_measurements import TdxMeasurements
    from .verifier import Verifier
