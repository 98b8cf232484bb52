"""The PKI layer: trust anchors, certificate chains and CRLs, and the roles Intel's PKI gives its signers.

It sits between the byte formats and everything that checks signed data: collateral validation (what
eaa-pccs imports and caches), quote and report verification, and the simulated platform all use it.
"""
