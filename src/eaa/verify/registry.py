"""The verifier registry, with rats-tls names and priorities (shared/docs/eaa-reference.md §2).

| name            | priority | verifies                                                     |
|-----------------|----------|--------------------------------------------------------------|
| sgx_ecdsa_qve   | 53       | sgx_ecdsa evidence (the same software verifier; no QvE here)  |
| sgx_ecdsa       | 52       | sgx_ecdsa evidence: DCAP quote verification                   |
| tdx_ecdsa       | 42       | tdx_ecdsa evidence: DCAP quote verification                   |
| sev_snp         | 42       | sev_snp evidence: SEV-SNP report, VCEK/VLEK chain to AMD's ARK |
| sgx_la          | 15       | sgx_la reports (same-platform only: raises UnsupportedEvidence)|
| nullverifier    | 0        | nothing: accepts any (or no) evidence without checking it     |

A verifier is built once per configuration (``verifiers.select(name, **options)``) and then checks
many pieces of evidence. Like rats-tls it first compares ``report_data[0:32]`` with the hash it is
given, then verifies the evidence itself. Options every factory accepts (unknown ones are ignored):
``trust_anchors``, ``trust_simulation``, ``collateral_source``, ``check_crl``, ``sim_dir``, ``strict``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, Union

from ..collateral.bundle import Collateral, load_collateral
from ..errors import CollateralMissing, ConfigError, IdentityMismatch, UnsupportedEvidence, UntrustedRoot
from ..evidence import NULL, SGX_ECDSA, SGX_LA, TDX_ECDSA, UNVERIFIABLE
from ..pki.trust import TrustAnchor, default_anchors, is_simulation_certificate
from ..registry import Registry
from .result import VerificationResult

NOT_VERIFIED = "NotVerified"
NO_EVIDENCE = "NoEvidence"

# Where collateral comes from when the evidence does not carry it: a fixed bundle, a file or
# directory (eaa.collateral.bundle.load_collateral), or a function (tee, quote bytes) -> Collateral | None.
CollateralSource = Union[Collateral, str, "os.PathLike[str]", Callable[[str, bytes], "Collateral | None"], None]


class ReportDataMismatch(IdentityMismatch):
    """The evidence's report data is not the hash the TLS layer expects (claims buffer / legacy key hash)."""

    code = "REPORT_DATA_MISMATCH"


class Verifier(Protocol):
    name: str
    evidence_types: tuple[str, ...]  # what it can check; nullverifier: everything

    def verify_evidence(self, evidence: bytes, *, evidence_type: str, report_data_hash: bytes | None,
                        collateral: Collateral | None, at: datetime) -> VerificationResult:
        """Check ``report_data[0:len(hash)] == report_data_hash`` and then the evidence itself."""
        ...


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

    def __init__(self, **_: Any) -> None:
        pass

    def verify_evidence(self, evidence: bytes, *, evidence_type: str = NULL, report_data_hash: bytes | None = None,
                        collateral: Collateral | None = None, at: datetime | None = None) -> VerificationResult:
        return VerificationResult(
            tee="none", status=NO_EVIDENCE if not evidence else NOT_VERIFIED, advisory_ids=(),
            measurements=unverified_claims(evidence_type, evidence), report_data=b"",
            details={"verifier": self.name, "evidence_type": evidence_type})


def check_report_data(report_data: bytes, expected: bytes | None) -> None:
    if expected is not None and report_data[:len(expected)] != expected:
        raise ReportDataMismatch("the evidence's report data does not match the hash of the claims it was "
                                 "sent with: the evidence is not bound to this certificate")


def _collateral_from(source: CollateralSource, tee: str, quote: bytes) -> Collateral | None:
    if source is None:
        return None
    if isinstance(source, Collateral):
        return source
    if isinstance(source, (str, os.PathLike)):
        return load_collateral(Path(source))
    if callable(source):
        return source(tee, quote)
    raise ConfigError(f"collateral source of type {type(source).__name__} is not supported")


def _quote_root(quote: Any) -> Any:
    """The last certificate of the quote's own PCK chain (its root, for Intel and simulated quotes), or None."""
    try:
        from cryptography import x509

        chain = quote.certification_data.pem_chain
        return x509.load_pem_x509_certificate(chain[-1]) if chain else None
    except Exception:  # noqa: BLE001 - unreadable here; the quote verifier reports it precisely
        return None


def default_collateral(quote: Any, raw: bytes, *, trust_simulation: bool, sim_dir: str | os.PathLike[str] | None,
                       anchors: Sequence[TrustAnchor] | None = None) -> Collateral:
    """Collateral for a quote that came without any: the simulated platform's for a simulated quote
    (only when the simulation is trusted), else fetched from the configured PCCS."""
    from ..collateral.qcnl import pccs_configured

    root = _quote_root(quote)
    if root is not None and is_simulation_certificate(root):
        if trust_simulation:
            from ..sim import simulation_collateral

            return simulation_collateral(quote.tee, sim_dir)
        if not pccs_configured():  # a PCCS may serve a simulated platform whose root was passed explicitly
            raise UntrustedRoot("the quote is signed by a SIMULATION platform, whose root is not trusted "
                                "(use --trust-sim / EAA_TRUST_SIMULATION=1 to accept simulated evidence)")
    if pccs_configured():
        from ..collateral.fetch import fetch_collateral_for_quote

        return fetch_collateral_for_quote(quote, anchors=anchors)
    raise CollateralMissing(f"no collateral for this {quote.tee.upper()} quote: none came with it and no PCCS is "
                            "configured (EAA_PCCS_URL or /etc/sgx_default_qcnl.conf)")


class DcapVerifier:
    """sgx_ecdsa / sgx_ecdsa_qve / tdx_ecdsa: Intel DCAP quote verification (eaa.verify.dcap).

    As in rats-tls since PR #162, the SGX ECDSA verifiers also check TDX quotes (same QVL), so a named
    ``sgx_ecdsa`` verifier accepts a TDX peer; ``tdx_ecdsa`` checks TDX quotes only.
    """

    def __init__(self, name: str, tees: tuple[str, ...], evidence_types: tuple[str, ...], *,
                 trust_anchors: Sequence[TrustAnchor] | None = None, trust_simulation: bool = False,
                 collateral_source: CollateralSource = None, check_crl: bool = True,
                 sim_dir: str | os.PathLike[str] | None = None, strict: bool = False, cache_size: int = 256,
                 **_: Any) -> None:
        try:
            from . import dcap
        except ImportError as e:  # pragma: no cover - only while the package is incomplete
            raise ConfigError(f"verifier {name} is not available: {e}") from None
        self.name = name
        self.tees = tees
        self.evidence_types = evidence_types
        self.trust_simulation = trust_simulation
        self.sim_dir = sim_dir
        self.collateral_source = collateral_source
        self.strict = strict
        anchors = list(trust_anchors) if trust_anchors is not None else list(default_anchors())
        if trust_simulation:
            from ..sim import simulation_anchor

            sim = simulation_anchor(sim_dir)
            if all(a.der != sim.der for a in anchors):
                anchors.append(sim)
        self.trust_anchors = tuple(anchors)
        self._qv = dcap.QuoteVerifier(self.trust_anchors, check_crl=check_crl, cache_size=cache_size)

    def _collateral(self, quote: Any, raw: bytes) -> Collateral:
        c = _collateral_from(self.collateral_source, quote.tee, raw)
        if c is not None:
            return c
        return default_collateral(quote, raw, trust_simulation=self.trust_simulation, sim_dir=self.sim_dir,
                                  anchors=self.trust_anchors)

    def verify_evidence(self, evidence: bytes, *, evidence_type: str, report_data_hash: bytes | None,
                        collateral: Collateral | None, at: datetime) -> VerificationResult:
        from ..formats.quote import parse_quote

        quote = parse_quote(evidence)
        if quote.tee not in self.tees:
            raise IdentityMismatch(f"verifier {self.name} checks {'/'.join(self.tees).upper()} quotes; "
                                   f"this is a {quote.tee.upper()} quote")
        check_report_data(quote.report_data, report_data_hash)
        return self._qv.verify(quote, collateral or self._collateral(quote, evidence), at=at, strict=self.strict)


class UnsupportedVerifier:
    """Registered under its rats-tls name so it can be named; verification is not implemented yet."""

    def __init__(self, name: str, evidence_type: str, why: str, **_: Any) -> None:
        self.name = name
        self.evidence_types: tuple[str, ...] = (evidence_type,)
        self.why = why

    def verify_evidence(self, evidence: bytes, **_: Any) -> VerificationResult:
        raise UnsupportedEvidence(f"verifier {self.name}: {self.why}")


verifiers: Registry[Verifier] = Registry("verifier")
verifiers.register("nullverifier", 0, NullVerifier)
verifiers.register("sgx_la", 15, lambda **kw: UnsupportedVerifier(
    "sgx_la", SGX_LA, "local-attestation reports can only be checked by the quoting enclave on the same "
    "platform; not supported", **kw))
verifiers.register("tdx_ecdsa", 42, lambda **kw: DcapVerifier("tdx_ecdsa", ("tdx",), (TDX_ECDSA,), **kw))


def _unverifiable(name: str, priority: int) -> None:
    """rats-tls's csv (20) and sev (35) verifiers, by name: they refuse with the reason eaa cannot verify."""
    verifiers.register(name, priority, lambda **kw: UnsupportedVerifier(name, name, UNVERIFIABLE[name], **kw))


_unverifiable("csv", 20)
_unverifiable("sev", 35)


def _sev_snp(**kw: Any) -> Verifier:
    from .snp import SevSnpVerifier  # imported on use: it pulls in the AMD KDS client

    return SevSnpVerifier(**kw)


verifiers.register("sev_snp", 42, _sev_snp)
verifiers.register("sgx_ecdsa", 52, lambda **kw: DcapVerifier(
    "sgx_ecdsa", ("sgx", "tdx"), (SGX_ECDSA, TDX_ECDSA), **kw))
verifiers.register("sgx_ecdsa_qve", 53, lambda **kw: DcapVerifier(
    "sgx_ecdsa_qve", ("sgx", "tdx"), (SGX_ECDSA, TDX_ECDSA), **kw))


def verifier_for_evidence(evidence_type: str) -> str:
    """The verifier rats-tls re-selects when none was named: the one named like the evidence type."""
    if evidence_type == NULL:
        return "nullverifier"
    return evidence_type
