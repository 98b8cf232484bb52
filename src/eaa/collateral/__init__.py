"""Collateral: bundles, file forms, PCCS / PCS / AMD KDS clients and caches.

``fetch_collateral_for_quote`` (from :mod:`.fetch`) is re-exported lazily, so that importing the
bundle types (as the verifier does) does not pull in the HTTP client.
"""

from __future__ import annotations

from typing import Any

__all__ = ["fetch_collateral_for_quote"]


def __getattr__(name: str) -> Any:
    if name == "fetch_collateral_for_quote":
        from .fetch import fetch_collateral_for_quote

        return fetch_collateral_for_quote
    raise AttributeError(name)
