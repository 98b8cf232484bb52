"""Fail-closed check of a DCAP quote fresh from the local TEE, before it leaves the attester.

The interfaces we read (Gramine's pseudo-files, Occlum's ioctl, configfs-tsm) are shared state a
bug or a concurrent writer can confuse; the one thing an attester can always check is that what
came back is a quote of the expected TEE bound to exactly the report data we asked for.
"""

from __future__ import annotations

from ..errors import FormatError
from ..formats.quote import Quote, parse_quote
from .errors import EvidenceMismatch


def check_quote(data: bytes, tee: str, report_data: bytes, source: str) -> Quote:
    """Parse ``data`` and require a ``tee`` ("sgx"/"tdx") quote whose report data is ``report_data`` (64 B)."""
    try:
        quote = parse_quote(data)
    except FormatError as e:
        raise EvidenceMismatch(f"{source} returned {len(data)} bytes that are not a DCAP quote: {e}") from None
    if quote.tee != tee:
        raise EvidenceMismatch(f"{source} returned a {quote.tee.upper()} quote; expected a {tee.upper()} quote")
    if quote.report_data != report_data:
        raise EvidenceMismatch(f"{source} returned a quote over other report data than requested "
                               f"(got {quote.report_data[:8].hex()}…, asked {report_data[:8].hex()}…)")
    return quote
