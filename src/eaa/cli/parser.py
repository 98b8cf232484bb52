"""The argument parser every eaa command builds, with help formatters that never import ``shutil``.

argparse builds a help formatter on every ``add_argument`` (to check the metavar), and its stock
formatter imports ``shutil``, with ``bz2``, ``lzma`` and ``fnmatch``, only to read the terminal width:
about a millisecond of every one-shot command. These read the width as ``shutil.get_terminal_size``
does (``COLUMNS``, then the terminal of stdout, then 80 columns).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def terminal_columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class HelpFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         terminal_columns() - 2 if width is None else width)


class RawDescriptionHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """A description printed as written (the commands whose description is a man-page-like text)."""


class ArgumentParser(argparse.ArgumentParser):
    """Subcommand parsers are of the same class (argparse makes them with ``type(parent)``), so they
    take the same default formatter."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


__all__ = ["ArgumentParser", "HelpFormatter", "RawDescriptionHelpFormatter", "terminal_columns"]
