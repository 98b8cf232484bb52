"""``dataclasses`` imported without ``inspect``, before any module of the package imports it.

Python 3.11's dataclasses imports ``inspect`` (and with it ``ast``, ``dis`` and ``tokenize``: some 5-7 ms
of every one-shot command, about a tenth of a whole ``eaa verify-quote``) for a single call,
``inspect.signature``, made only to write a docstring for a dataclass that has none. Every dataclass of
this package has one (``tests/test_records.py`` holds them to it). So while dataclasses is imported,
``inspect`` is a stand-in module whose attributes load and return the real module's; once dataclasses is
in, every other importer gets the real ``inspect``, and the stand-in is left only in dataclasses'
namespace, forwarding. Nothing is done when either module is already loaded.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def import_dataclasses_without_inspect() -> None:
    if "dataclasses" in sys.modules or "inspect" in sys.modules:
        return

    def real(name: str) -> Any:
        import importlib

        if sys.modules.get("inspect") is stand_in:  # asked for while dataclasses was still being imported
            del sys.modules["inspect"]
        return getattr(importlib.import_module("inspect"), name)

    stand_in = types.ModuleType("inspect", "Loads the real inspect module on first use (see eaa._dataclasses).")
    stand_in.__getattr__ = real  # type: ignore[method-assign]
    sys.modules["inspect"] = stand_in
    try:
        import dataclasses  # noqa: F401
    finally:
        if sys.modules.get("inspect") is stand_in:
            del sys.modules["inspect"]
