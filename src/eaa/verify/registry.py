"""The verifier registry, with rats-tls names and priorities (shared/docs/eaa-reference.md §2).

| name            | priority | verifies                                                     |
|-----------------|----------|--------------------------------------------------------------|
| sgx_ecdsa_qve   | 53       | sgx_ecdsa evidence (the same software verifier; no QvE here)  |
| sgx_ecdsa       | 52       | sgx_ecdsa evidence: DCAP quote verification                   |
| tdx_ecdsa       | 42       | tdx_ecdsa evidence: DCAP quote verification                   |
| sev_snp         | 42       | sev_snp evidence: SEV-SNP report, VCEK/VLEK chain to AMD's ARK |
| sev             | 35       | refused: SEV(-ES) reports cannot bind a key                    |
| csv             | 20       | refused: Hygon CSV is not implemented                          |
| sgx_la          | 15       | sgx_la reports (same-platform only: refused)                  |
| nullverifier    | 0        | nothing: accepts any (or no) evidence without checking it     |

A verifier is built once per configuration (``verifiers.select(name, **options)``) and then checks
many pieces of evidence. Like rats-tls it first compares ``report_data[0:32]`` with the hash it is
given, then verifies the evidence itself. Each entry lists the options its factory takes; the
implementations are imported when first made.
"""

from __future__ import annotations

from ..evidence import NULL
from ..registry import Registry
from .verifier import Verifier

DCAP_OPTIONS = frozenset({"trust_anchors", "simulation", "collateral_source", "check_crl", "strict", "cache_size"})
SNP_OPTIONS = frozenset({"amd_anchors", "trust_anchors", "collateral_source", "kds", "product", "strict",
                         "check_crl", "simulation", "untrusted_simulation"})

verifiers: Registry[Verifier] = Registry("verifier")
verifiers.register("nullverifier", 0, "eaa.verify.null:NullVerifier")
verifiers.register("sgx_la", 15, "eaa.verify.null:sgx_la")
verifiers.register("csv", 20, "eaa.verify.null:csv")
verifiers.register("sev", 35, "eaa.verify.null:sev")
verifiers.register("tdx_ecdsa", 42, "eaa.verify.dcap_verifier:tdx_ecdsa", options=DCAP_OPTIONS)
verifiers.register("sev_snp", 42, "eaa.verify.snp_verifier:SevSnpVerifier", options=SNP_OPTIONS)
verifiers.register("sgx_ecdsa", 52, "eaa.verify.dcap_verifier:sgx_ecdsa", options=DCAP_OPTIONS)
verifiers.register("sgx_ecdsa_qve", 53, "eaa.verify.dcap_verifier:sgx_ecdsa_qve", options=DCAP_OPTIONS)


def verifier_for_evidence(evidence_type: str) -> str:
    """The verifier rats-tls re-selects when none was named: the one named like the evidence type."""
    if evidence_type == NULL:
        return "nullverifier"
    return evidence_type
