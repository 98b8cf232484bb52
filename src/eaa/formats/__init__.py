"""Pure parsing of attestation structures: bytes in, frozen dataclasses out; no I/O, no crypto policy."""
