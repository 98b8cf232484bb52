"""Plugin registries with rats-tls names and priorities.

Selection follows rats-tls: entries are tried by priority, highest first; a named selection only
considers that name; the first entry whose factory succeeds (is available here) wins.

Every plugin kind registers the same way: a name, a priority, a factory given as ``"module:attribute"``
(imported when the plugin is first made, so a program pays only for the plugins it uses and a real
deployment never loads the simulator), and the options the factory takes. Options are checked, not
guessed: one that no plugin of the kind takes is a typo and an error; a named plugin must take every
option it is given; :meth:`Registry.options_for` hands a plugin only its own options when one set of
options configures several plugins (a verifier for each evidence type a peer may present).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    """One registered plugin: its rats-tls name and priority, the options it takes, a factory imported on first use."""

    name: str
    priority: int
    factory: Callable[..., T] | str  # a callable, or "module:attribute" imported on first use
    options: frozenset[str] = frozenset()
    auto: bool = True  # False: only chosen when named (e.g. nulltls, simulated attesters)
    _resolved: Callable[..., T] | None = field(default=None, repr=False, compare=False)

    def make(self, options: Mapping[str, Any]) -> T:
        if self._resolved is None:
            if isinstance(self.factory, str):
                module, _, attribute = self.factory.partition(":")
                self._resolved = getattr(importlib.import_module(module), attribute)
            else:
                self._resolved = self.factory
        return self._resolved(**options)


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, priority: int, factory: Callable[..., T] | str, *,
                 options: Iterable[str] = (), auto: bool = True) -> None:
        self._entries[name] = Entry(name, priority, factory, frozenset(options), auto)

    def names(self) -> list[str]:
        return [e.name for e in self.ordered()]

    def ordered(self) -> list[Entry[T]]:
        return sorted(self._entries.values(), key=lambda e: -e.priority)

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r} (known: {', '.join(self.names())})") from None

    def known_options(self) -> frozenset[str]:
        return frozenset().union(*(e.options for e in self._entries.values()))

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse an option no plugin of this kind takes (a misspelt option must not pass unnoticed)."""
        unknown = sorted(set(options) - self.known_options())
        if unknown:
            raise ConfigError(f"unknown {self.kind} option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")

    def options_for(self, name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options (of a set configuring several plugins of this kind) that plugin ``name`` takes; unset
        (None) options are left out, options no plugin takes are refused."""
        self.check_options(options)
        taken = self.get(name).options
        return {k: v for k, v in options.items() if k in taken and v is not None}

    def select(self, name: str | None = None, **options: Any) -> T:
        """Instantiate the named entry with ``options`` (each of which it must take; None means unset), or the
        highest-priority automatic entry that is available here, each given the options it takes."""
        self.check_options(options)  # a misspelt option is refused even when it is unset
        options = {k: v for k, v in options.items() if v is not None}
        if name:
            entry = self.get(name)
            foreign = sorted(set(options) - entry.options)
            if foreign:
                raise ConfigError(f"{self.kind} {name} does not take {', '.join(foreign)}")
            return entry.make(options)
        errors = []
        for e in self.ordered():
            if not e.auto:
                continue
            try:
                return e.make({k: v for k, v in options.items() if k in e.options})
            except ConfigError as err:
                errors.append(f"{e.name}: {err}")
        raise self.none_available(errors)

    def none_available(self, reasons: list[str]) -> ConfigError:
        """What automatic selection raises when nothing is available (an attester registry says "no TEE")."""
        return ConfigError(f"no {self.kind} is available here ({'; '.join(reasons) or 'none registered'})")
