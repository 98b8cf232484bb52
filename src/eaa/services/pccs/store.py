"""Storage for eaa-pccs: the interface, and the choice between SQLite (default) and PostgreSQL.

A single node keeps its cache in one SQLite file; a replicated PCCS Deployment shares one PostgreSQL
database. Both implement :class:`Store`, whose writes are committed when they return, so a process
killed at any moment loses nothing it had acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from ...errors import ConfigError
from .records import Record

SCHEMA_VERSION = 1


class Store(Protocol):
    def get(self, kind: str, key: str) -> Record | None: ...

    def put(self, record: Record) -> None:
        """Insert or replace one record; committed on return."""

    def put_many(self, records: Iterable[Record]) -> int:
        """Insert or replace records in one transaction (all or none); committed on return."""

    def scan(self, kind: str | None = None, prefix: str = "") -> Iterator[Record]:
        """Records of ``kind`` (all kinds if None) whose key starts with ``prefix``, ordered by kind and key."""

    def count(self) -> int: ...

    def ping(self) -> None:
        """Raise if the database cannot be used (for ``/healthz``)."""

    def close(self) -> None: ...


def open_store(url: str, *, pool_size: int = 8) -> Store:
    """``postgresql://…`` opens PostgreSQL; ``sqlite:///path`` or a plain path opens SQLite (one file, shared by
    threads)."""
    if url.startswith(("postgresql://", "postgres://")):
        from .store_postgres import PostgresStore

        return PostgresStore(url, pool_size=pool_size)
    if url.startswith("sqlite://"):
        url = url[len("sqlite://"):]
    if not url or "://" in url or url.endswith(":memory:"):
        raise ConfigError(f"unsupported database {url!r} (use a file path, sqlite:///PATH or postgresql://…)")
    from .store_sqlite import SqliteStore

    return SqliteStore(url)
