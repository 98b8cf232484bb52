"""``sgx_ecdsa``: SGX DCAP (ECDSA) quotes from inside a Gramine or Occlum enclave.

Like rats-tls' sgx_ecdsa attester this needs to run *inside* an enclave: plain CPython cannot
execute EREPORT, so the quote comes from the LibOS — Gramine's ``/dev/attestation`` when present
(preferred: it is a plain file interface), else Occlum's ``/dev/sgx`` ioctls. Every quote is parsed
and checked (an SGX quote over exactly the requested report data) before it is returned.

The evidence carries no collateral: a real quote's PCK chain is inside the quote, and the verifier
fetches TCB info / QE identity from its PCCS.
"""

from __future__ import annotations

import os
from typing import Protocol

from ..errors import ConfigError
from ..evidence import SGX_ECDSA, Evidence, pad_report_data
from ._io import IoctlFunc, under
from .gramine import ATTESTATION_DIR, GramineAttestation
from .occlum import OcclumDcap, OcclumUnavailable
from .quote_check import check_quote


class QuoteSource(Protocol):
    """Anything that turns 64 bytes of report data into a DCAP quote (Gramine, Occlum, a test double)."""

    def quote(self, report_data: bytes) -> bytes: ...


def open_sgx_quote_source(root: str | os.PathLike[str] = "/", *,
                          ioctl: IoctlFunc | None = None) -> tuple[str, QuoteSource]:
    """The LibOS quote interface under ``root`` as ``(name, source)``; ConfigError when neither is here.

    Gramine wins when its directory exists, even if misconfigured: then its own error (e.g.
    attestation type 'none') is the useful one, since Occlum cannot be present at the same time.
    """
    if under(root, ATTESTATION_DIR).exists():
        return "Gramine", GramineAttestation(root)
    try:
        return "Occlum", OcclumDcap(root, ioctl=ioctl)
    except OcclumUnavailable as e:
        raise ConfigError(f"sgx_ecdsa needs to run inside an SGX enclave: no Gramine "
                          f"{under(root, ATTESTATION_DIR)}, and {e}") from None


class SgxEcdsaAttester:
    """rats-tls ``sgx_ecdsa`` (priority 52): evidence is the raw DCAP quote, type ``sgx_ecdsa``."""

    name = "sgx_ecdsa"
    evidence_type = SGX_ECDSA

    def __init__(self, root: str | os.PathLike[str] = "/", *, ioctl: IoctlFunc | None = None,
                 source: QuoteSource | None = None) -> None:
        if source is not None:
            self.backend, self.source = type(source).__name__, source
        else:
            self.backend, self.source = open_sgx_quote_source(root, ioctl=ioctl)

    def collect_evidence(self, report_data: bytes) -> Evidence:
        rd = pad_report_data(report_data)
        quote = self.source.quote(rd)
        check_quote(quote, "sgx", rd, self.backend)
        return Evidence(SGX_ECDSA, quote, rd)


def sgx_ecdsa_factory(root: str | os.PathLike[str] = "/", ioctl: IoctlFunc | None = None) -> SgxEcdsaAttester:
    """Registry factory (``root``: where /dev and /sys are, for tests on fake trees)."""
    return SgxEcdsaAttester(root, ioctl=ioctl)
