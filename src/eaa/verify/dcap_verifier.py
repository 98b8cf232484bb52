"""The DCAP verifier plugins (sgx_ecdsa, sgx_ecdsa_qve, tdx_ecdsa): quote verification (:mod:`eaa.verify.dcap`)
with collateral found for the quote when it came without any.

As in rats-tls since PR #162, the SGX ECDSA verifiers also check TDX quotes (same QVL), so a named
``sgx_ecdsa`` verifier accepts a TDX peer; ``tdx_ecdsa`` checks TDX quotes only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ..collateral.bundle import Collateral, load_collateral
from ..errors import CollateralMissing, ConfigError, EaaError, IdentityMismatch, UntrustedRoot
from ..evidence import SGX_ECDSA, TDX_ECDSA
from ..formats.x509_errors import PARSE_ERRORS
from ..pki.trust import TrustAnchor, default_anchors, is_simulation_certificate
from .dcap import QuoteVerifier
from .result import VerificationResult
from .verifier import CollateralSource, SimulationTrust, check_report_data


def collateral_from(source: CollateralSource, tee: str, quote: bytes) -> Collateral | None:
    if source is None:
        return None
    if isinstance(source, Collateral):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load_collateral(Path(source))
    if callable(source):
        return source(tee, quote)
    raise ConfigError(f"collateral source of type {type(source).__name__} is not supported")


# A chain the quote verifier will report precisely, which only has to be passed over here.
_UNREADABLE: tuple[type[Exception], ...] = (*PARSE_ERRORS, EaaError, AttributeError, IndexError)


def _quote_root(quote: Any) -> Any:
    """The last certificate of the quote's own PCK chain (its root, for Intel and simulated quotes), or None."""
    from cryptography import x509

    try:
        chain = quote.certification_data.pem_chain
        return x509.load_pem_x509_certificate(chain[-1]) if chain else None
    except _UNREADABLE:
        return None


def default_collateral(quote: Any, *, simulation: SimulationTrust | None,
                       anchors: Sequence[TrustAnchor] | None = None) -> Collateral:
    """Collateral for a quote that came without any: the simulated platform's for a simulated quote
    (only when the simulation is trusted), else fetched from the configured PCCS."""
    root = _quote_root(quote)
    simulated = root is not None and is_simulation_certificate(root)
    if simulated and simulation is not None:
        return simulation.collateral(quote.tee)
    from ..collateral.qcnl import pccs_configured  # reading the QCNL configuration is needed only from here

    if simulated and not pccs_configured():  # a PCCS may serve a simulated platform, its root passed explicitly
        raise UntrustedRoot("the quote is signed by a SIMULATION platform, whose root is not trusted "
                            "(use --trust-sim / EAA_TRUST_SIMULATION=1 to accept simulated evidence)")
    if pccs_configured():
        from ..collateral.fetch import fetch_collateral_for_quote

        return fetch_collateral_for_quote(quote, anchors=anchors)
    raise CollateralMissing(f"no collateral for this {quote.tee.upper()} quote: none came with it and no PCCS is "
                            "configured (EAA_PCCS_URL or /etc/sgx_default_qcnl.conf)")


class DcapVerifier:
    def __init__(self, name: str, tees: tuple[str, ...], evidence_types: tuple[str, ...], *,
                 trust_anchors: Sequence[TrustAnchor] | None = None, simulation: SimulationTrust | None = None,
                 collateral_source: CollateralSource = None, check_crl: bool = True, strict: bool = False,
                 cache_size: int = 256) -> None:
        self.name = name
        self.tees = tees
        self.evidence_types = evidence_types
        self.simulation = simulation
        self.collateral_source = collateral_source
        self.strict = strict
        anchors = list(trust_anchors) if trust_anchors is not None else list(default_anchors())
        if simulation is not None:
            sim = simulation.anchor()
            if all(a.der != sim.der for a in anchors):
                anchors.append(sim)
        self.trust_anchors = tuple(anchors)
        self._qv = QuoteVerifier(self.trust_anchors, check_crl=check_crl, cache_size=cache_size)

    def _collateral(self, quote: Any, raw: bytes) -> Collateral:
        c = collateral_from(self.collateral_source, quote.tee, raw)
        if c is not None:
            return c
        return default_collateral(quote, simulation=self.simulation, anchors=self.trust_anchors)

    def verify_evidence(self, evidence: bytes, *, evidence_type: str, report_data_hash: bytes | None,
                        collateral: Collateral | None, at: datetime) -> VerificationResult:
        from ..formats.quote import parse_quote

        quote = parse_quote(evidence)
        if quote.tee not in self.tees:
            raise IdentityMismatch(f"verifier {self.name} checks {'/'.join(self.tees).upper()} quotes; "
                                   f"this is a {quote.tee.upper()} quote")
        check_report_data(quote.report_data, report_data_hash)
        return self._qv.verify(quote, collateral or self._collateral(quote, evidence), at=at, strict=self.strict)


def sgx_ecdsa(**options: Any) -> DcapVerifier:
    return DcapVerifier("sgx_ecdsa", ("sgx", "tdx"), (SGX_ECDSA, TDX_ECDSA), **options)


def sgx_ecdsa_qve(**options: Any) -> DcapVerifier:
    """The same software verifier (there is no QvE here), under rats-tls's name and priority."""
    return DcapVerifier("sgx_ecdsa_qve", ("sgx", "tdx"), (SGX_ECDSA, TDX_ECDSA), **options)


def tdx_ecdsa(**options: Any) -> DcapVerifier:
    return DcapVerifier("tdx_ecdsa", ("tdx",), (TDX_ECDSA,), **options)
