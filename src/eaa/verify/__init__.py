"""Verification of attestation evidence: signatures, chains, collateral and TCB evaluation."""
