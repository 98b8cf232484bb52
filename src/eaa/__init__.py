"""eaa: the Enclave Attestation Architecture (attested TLS, quote verification, inclavared, shelter, PCCS)."""

from ._dataclasses import import_dataclasses_without_inspect

__version__ = "0.1.0"

import_dataclasses_without_inspect()  # first, before any module of the package imports dataclasses
