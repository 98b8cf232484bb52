"""Plugin registries with rats-tls names and priorities.

Selection follows rats-tls: entries are tried by priority, highest first; a named selection only
considers that name; the first entry whose factory succeeds (is available here) wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    priority: int
    factory: Callable[..., T]
    auto: bool = True  # False: only chosen when named (e.g. nulltls, simulated attesters)


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, priority: int, factory: Callable[..., T], *, auto: bool = True) -> None:
        self._entries[name] = Entry(name, priority, factory, auto)

    def names(self) -> list[str]:
        return [e.name for e in self.ordered()]

    def ordered(self) -> list[Entry[T]]:
        return sorted(self._entries.values(), key=lambda e: -e.priority)

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r} (known: {', '.join(self.names())})") from None

    def select(self, name: str | None = None, **kwargs: object) -> T:
        """Instantiate the named entry, or the highest-priority automatic entry that is available here."""
        if name:
            return self.get(name).factory(**kwargs)
        errors = []
        for e in self.ordered():
            if not e.auto:
                continue
            try:
                return e.factory(**kwargs)
            except ConfigError as err:
                errors.append(f"{e.name}: {err}")
        raise ConfigError(f"no {self.kind} is available here ({'; '.join(errors) or 'none registered'})")
