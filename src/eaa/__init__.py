"""eaa: the Enclave Attestation Architecture (attested TLS, quote verification, inclavared, shelter, PCCS)."""

__version__ = "0.1.0"
