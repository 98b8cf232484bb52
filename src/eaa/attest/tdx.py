"""``tdx_ecdsa``: TDX quotes from inside a TD, through configfs-tsm.

The kernel's ``tdx_guest`` provider turns the 64-byte inblob into a TDREPORT and has the host's
quote generation service sign it: ``outblob`` is a TD quote (v4 or v5). ``/dev/tdx_guest`` alone
only gives the MAC'd TDREPORT, which is not remote evidence, so without configfs-tsm (Linux < 6.7)
this attester is not available. The quote is checked (a TDX quote over exactly the requested
report data) before it is returned.
"""

from __future__ import annotations

import os

from ..evidence import TDX_ECDSA, Evidence, pad_report_data
from ._io import under
from .configfs_tsm import PROVIDER_TDX, ConfigfsTsm, TsmUnavailable
from .quote_check import check_quote

TDX_GUEST_DEVICE = "/dev/tdx_guest"


class TdxEcdsaAttester:
    """rats-tls ``tdx_ecdsa`` (priority 42): evidence is the raw TD quote, type ``tdx_ecdsa``."""

    name = "tdx_ecdsa"
    evidence_type = TDX_ECDSA

    def __init__(self, root: str | os.PathLike[str] = "/", *, tsm: ConfigfsTsm | None = None) -> None:
        if tsm is None:
            try:
                tsm = ConfigfsTsm(root, provider=PROVIDER_TDX)
            except TsmUnavailable as e:
                if under(root, TDX_GUEST_DEVICE).exists():
                    raise TsmUnavailable(f"{e}; {TDX_GUEST_DEVICE} alone gives only a local TDREPORT, "
                                         "not a quote") from None
                raise
        self.tsm = tsm

    def collect_evidence(self, report_data: bytes) -> Evidence:
        rd = pad_report_data(report_data)
        quote = self.tsm.report(rd).outblob
        check_quote(quote, "tdx", rd, "configfs-tsm (tdx_guest)")
        return Evidence(TDX_ECDSA, quote, rd)


def tdx_ecdsa_factory(root: str | os.PathLike[str] = "/") -> TdxEcdsaAttester:
    """Registry factory (``root``: where /dev and /sys are, for tests on fake trees)."""
    return TdxEcdsaAttester(root)
