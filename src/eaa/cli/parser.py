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
from collections.abc import Iterable
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
    take the same default formatter. The terminal is asked for its width once per parser, not for each
    of the formatters argparse builds (one per ``add_argument``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        self._width: int | None = None
        super().__init__(*args, **kwargs)

    def _get_formatter(self) -> argparse.HelpFormatter:
        if self._width is None:
            self._width = terminal_columns() - 2
        return self.formatter_class(prog=self.prog, width=self._width)  # type: ignore[call-arg]  # all take width


def chosen_command(argv: list[str], commands: Iterable[str]) -> str | None:
    """The subcommand ``argv`` names, so that a program builds only that one's parser; None (build them
    all) for help, for no command and for an unknown one, whose messages list every command. For
    programs whose own options take no value: the first word that is not an option is the command."""
    for arg in argv:
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-"):
            return arg if arg in commands else None
    return None


__all__ = ["ArgumentParser", "HelpFormatter", "RawDescriptionHelpFormatter", "chosen_command", "terminal_columns"]
