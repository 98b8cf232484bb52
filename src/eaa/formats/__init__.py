"""Pure parsing of attestation structures: bytes in, frozen dataclasses out; no I/O, no crypto policy.

The public API::

    from eaa.formats import parse_quote, Quote, parse_snp_report, SnpReport, TcbInfo, EnclaveIdentity

Names are imported on first use (:mod:`eaa._lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "Quote": "quote",
    "QuoteHeader": "quote",
    "parse_quote": "quote",
    "SgxReportBody": "report_body",
    "TdReportBody": "td_report",
    "SnpReport": "snp_report",
    "TcbVersion": "snp_report",
    "parse_snp_report": "snp_report",
    "TcbInfo": "tcb_info",
    "EnclaveIdentity": "enclave_identity",
    "PckExtensions": "pck_extensions",
    "parse_sgx_extension": "pck_extensions",
    "SigStruct": "sigstruct",
    "CsvReport": "csv_report",
    "parse_csv_report": "csv_report",
}
__all__ = [
    "CsvReport",
    "EnclaveIdentity",
    "PckExtensions",
    "Quote",
    "QuoteHeader",
    "SgxReportBody",
    "SigStruct",
    "SnpReport",
    "TcbInfo",
    "TcbVersion",
    "TdReportBody",
    "parse_csv_report",
    "parse_quote",
    "parse_sgx_extension",
    "parse_snp_report",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .csv_report import CsvReport, parse_csv_report
    from .enclave_identity import EnclaveIdentity
    from .pck_extensions import PckExtensions, parse_sgx_extension
    from .quote import Quote, QuoteHeader, parse_quote
    from .report_body import SgxReportBody
    from .sigstruct import SigStruct
    from .snp_report import SnpReport, TcbVersion, parse_snp_report
    from .tcb_info import TcbInfo
    from .td_report import TdReportBody
