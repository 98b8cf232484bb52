"""Lazy re-exports for the packages' public names (PEP 562).

A package's ``__init__`` runs whenever any of its modules is imported, so a curated ``from eaa.verify
import QuoteVerifier`` must not import every verifier up front: each name is imported from its module on
first access. Start-up cost stays with the commands that use a name (tests/test_cli_startup.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``exports`` (public name -> submodule, relative to ``package``)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
