"""Collateral: bundles, file forms, PCCS / PCS / AMD KDS clients and caches.

The public API::

    from eaa.collateral import Collateral, load_collateral, fetch_collateral_for_quote, PcsClient, KdsClient

Names are imported on first use (:mod:`eaa._lazy`), so the verifier, which needs only the bundle types,
does not pull in the HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "Collateral": "bundle",
    "load_collateral": "bundle",
    "fetch_collateral_for_quote": "fetch",
    "PcsClient": "pcs",
    "KdsClient": "kds",
}
__all__ = [
    "Collateral",
    "KdsClient",
    "PcsClient",
    "fetch_collateral_for_quote",
    "load_collateral",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .bundle import Collateral, load_collateral
    from .fetch import fetch_collateral_for_quote
    from .kds import KdsClient
    from .pcs import PcsClient
