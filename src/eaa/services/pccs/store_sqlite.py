"""SQLite storage: one file, write-ahead log, every commit synced.

WAL lets the many reader threads of the HTTP server read while an import or an upstream fill writes;
``synchronous=FULL`` makes each commit durable before it returns, so neither ``kill -9`` nor a power
cut loses a committed record. Each thread has its own connection (sqlite3 connections are not to be
shared between threads); writes are serialised by SQLite's own lock with a busy timeout.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from .records import Record
from .store import SCHEMA_VERSION

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collateral (
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    body        BLOB NOT NULL,
    meta        TEXT NOT NULL,
    next_update REAL,
    fetched_at  REAL NOT NULL,
    source      TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS eaa_pccs_schema (version INTEGER NOT NULL);
"""
_UPSERT = """
INSERT INTO collateral (kind, key, body, meta, next_update, fetched_at, source) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body, meta = excluded.meta,
    next_update = excluded.next_update, fetched_at = excluded.fetched_at, source = excluded.source
"""
_COLUMNS = "kind, key, body, meta, next_update, fetched_at, source"


def _row(r: Any) -> Record:
    return Record(str(r[0]), str(r[1]), bytes(r[2]), json.loads(r[3]), None if r[4] is None else float(r[4]),
                  float(r[5]), str(r[6]))


def _params(rec: Record) -> tuple[object, ...]:
    return (rec.kind, rec.key, rec.body, json.dumps(dict(rec.meta), sort_keys=True), rec.next_update,
            rec.fetched_at, rec.source)


def create_private(path: str) -> None:
    """Create the database file 0600 (owner only) if it does not exist: it holds encrypted PPIDs and
    registrations. SQLite gives its -wal and -shm files the database file's permissions."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        return
    except OSError as e:
        raise ConfigError(f"cannot create SQLite database {path}: {e.strerror}") from None
    os.close(fd)


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if path != ":memory:":
            parent = Path(path).resolve().parent
            if not parent.is_dir():
                raise ConfigError(f"database directory {parent} does not exist")
            create_private(path)
        with self._conn() as c:
            c.executescript(_SCHEMA)
            if c.execute("SELECT COUNT(*) FROM eaa_pccs_schema").fetchone()[0] == 0:
                c.execute("INSERT INTO eaa_pccs_schema (version) VALUES (?)", (SCHEMA_VERSION,))

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as e:
                raise ConfigError(f"cannot open SQLite database {self.path}: {e}") from None
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def get(self, kind: str, key: str) -> Record | None:
        row = self._conn().execute(f"SELECT {_COLUMNS} FROM collateral WHERE kind = ? AND key = ?",
                                   (kind, key)).fetchone()
        return _row(row) if row else None

    def put(self, record: Record) -> None:
        self.put_many([record])

    def put_many(self, records: Iterable[Record]) -> int:
        rows = [_params(r) for r in records]
        c = self._conn()
        with c:  # one transaction: committed on success, rolled back on error
            c.executemany(_UPSERT, rows)
        return len(rows)

    def scan(self, kind: str | None = None, prefix: str = "") -> Iterator[Record]:
        sql = f"SELECT {_COLUMNS} FROM collateral WHERE substr(key, 1, ?) = ?"
        args: list[object] = [len(prefix), prefix]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        for row in self._conn().execute(sql + " ORDER BY kind, key", args).fetchall():
            yield _row(row)

    def count(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM collateral").fetchone()[0])

    def ping(self) -> None:
        self._conn().execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()
