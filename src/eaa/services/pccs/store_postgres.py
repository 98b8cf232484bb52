"""PostgreSQL storage (psycopg 3 with a connection pool), for PCCS replicas sharing one database.

Every call borrows a pooled connection and commits before returning it, so a committed record is
durable whichever replica wrote it; concurrent upserts of the same key are resolved by
``ON CONFLICT`` (the last writer wins, and both wrote validated data).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from ...errors import ConfigError, TransportError
from .records import Record
from .store import SCHEMA_VERSION

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collateral (
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    body        BYTEA NOT NULL,
    meta        TEXT NOT NULL,
    next_update DOUBLE PRECISION,
    fetched_at  DOUBLE PRECISION NOT NULL,
    source      TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS eaa_pccs_schema (version INTEGER NOT NULL);
"""
_UPSERT = """
INSERT INTO collateral (kind, key, body, meta, next_update, fetched_at, source) VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (kind, key) DO UPDATE SET body = EXCLUDED.body, meta = EXCLUDED.meta,
    next_update = EXCLUDED.next_update, fetched_at = EXCLUDED.fetched_at, source = EXCLUDED.source
"""
_COLUMNS = "kind, key, body, meta, next_update, fetched_at, source"


def _row(r: Any) -> Record:
    return Record(r[0], r[1], bytes(r[2]), json.loads(r[3]), None if r[4] is None else float(r[4]), float(r[5]), r[6])


def _params(rec: Record) -> tuple[object, ...]:
    return (rec.kind, rec.key, rec.body, json.dumps(dict(rec.meta), sort_keys=True), rec.next_update,
            rec.fetched_at, rec.source)


class PostgresStore:
    def __init__(self, url: str, *, pool_size: int = 8, connect_timeout: float = 10.0) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self._errors: tuple[type[BaseException], ...] = (psycopg.Error,)
        safe = url.split("@")[-1]
        try:
            self._pool = ConnectionPool(url, min_size=1, max_size=max(1, pool_size), open=True,
                                        timeout=connect_timeout, kwargs={"autocommit": False})
            self._pool.wait(timeout=connect_timeout)
            with self._pool.connection() as conn:
                conn.execute(_SCHEMA)
                if conn.execute("SELECT COUNT(*) FROM eaa_pccs_schema").fetchone()[0] == 0:  # type: ignore[index]
                    conn.execute("INSERT INTO eaa_pccs_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        except Exception as e:  # noqa: BLE001 - psycopg and pool errors alike mean "cannot use this database"
            if hasattr(self, "_pool"):
                self._pool.close()
            raise ConfigError(f"cannot use PostgreSQL database at {safe}: {type(e).__name__}: {e}") from None

    def _run(self, fn: Any) -> Any:
        try:
            with self._pool.connection() as conn:  # commits on success, rolls back on error
                return fn(conn)
        except self._errors as e:
            raise TransportError(f"PostgreSQL: {type(e).__name__}: {e}") from None

    def get(self, kind: str, key: str) -> Record | None:
        row = self._run(lambda c: c.execute(f"SELECT {_COLUMNS} FROM collateral WHERE kind = %s AND key = %s",
                                            (kind, key)).fetchone())
        return _row(row) if row else None

    def put(self, record: Record) -> None:
        self.put_many([record])

    def put_many(self, records: Iterable[Record]) -> int:
        rows = [_params(r) for r in records]

        def write(conn: Any) -> None:
            with conn.cursor() as cur:
                cur.executemany(_UPSERT, rows)

        self._run(write)
        return len(rows)

    def scan(self, kind: str | None = None, prefix: str = "") -> Iterator[Record]:
        sql = f"SELECT {_COLUMNS} FROM collateral WHERE left(key, %s) = %s"
        args: list[object] = [len(prefix), prefix]
        if kind is not None:
            sql += " AND kind = %s"
            args.append(kind)
        rows = self._run(lambda c: c.execute(sql + " ORDER BY kind, key", args).fetchall())
        for row in rows:
            yield _row(row)

    def count(self) -> int:
        return int(self._run(lambda c: c.execute("SELECT COUNT(*) FROM collateral").fetchone()[0]))

    def ping(self) -> None:
        self._run(lambda c: c.execute("SELECT 1").fetchone())

    def close(self) -> None:
        self._pool.close()
