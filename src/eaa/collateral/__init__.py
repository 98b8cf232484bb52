"""Collateral: bundles, file forms, PCCS / PCS / AMD KDS clients and caches."""
