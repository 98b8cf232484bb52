"""Client-side collateral caches: one in memory, one on disk, both bounded by the data's own ``nextUpdate``.

Collateral changes rarely (TCB info monthly, CRLs weekly) while verifiers may run many times a
second, so a client should ask its PCCS once per ``nextUpdate``, not once per quote. The memory
cache holds already-validated objects for one process; the disk cache lets short-lived processes
(``eaa verify-quote`` on the command line) share what an earlier run fetched. Disk entries are
only raw responses: whoever reads one validates it again, since a file on disk can be changed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..records import record

log = logging.getLogger("eaa.collateral")

T = TypeVar("T")
ENV_CACHE_DIR = "EAA_COLLATERAL_CACHE_DIR"
MAX_ENTRY_SIZE = 8 << 20


@record
class Cached(Generic[T]):
    """A cached value with the time after which it must be fetched again."""

    value: T
    fetched_at: float
    expires_at: float

    def fresh(self, now: float) -> bool:
        return now < self.expires_at


class MemoryCache(Generic[T]):
    """A thread-safe LRU of validated values."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, Cached[T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Cached[T] | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, item: Cached[T]) -> None:
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@record
class RawEntry:
    """A response as received: what the disk cache stores."""

    key: str
    api_version: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    fetched_at: float = 0.0
    expires_at: float = 0.0

    def fresh(self, now: float) -> bool:
        return now < self.expires_at


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$EAA_COLLATERAL_CACHE_DIR`` (``none`` disables), else ``$XDG_CACHE_HOME/eaa/collateral``."""
    env = os.environ if environ is None else environ
    configured = env.get(ENV_CACHE_DIR)
    if configured is not None:
        return None if configured.strip().lower() in ("", "none", "off", "0") else Path(configured)
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "eaa" / "collateral"


class DiskCache:
    """Raw responses in one file per key, written atomically (a crash leaves the old file or none)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def get(self, key: str) -> RawEntry | None:
        path = self._path(key)
        try:
            if path.stat().st_size > MAX_ENTRY_SIZE:
                return None
            obj: Any = json.loads(path.read_bytes())
            if obj.get("key") != key:
                return None
            return RawEntry(key=key, api_version=int(obj["api_version"]), body=base64.b64decode(obj["body"]),
                            headers={str(k): str(v) for k, v in obj.get("headers", {}).items()},
                            fetched_at=float(obj["fetched_at"]), expires_at=float(obj["expires_at"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("ignoring unreadable collateral cache file %s: %s", path, e)
            return None

    def put(self, entry: RawEntry) -> None:
        data = json.dumps({
            "key": entry.key, "api_version": entry.api_version, "fetched_at": entry.fetched_at,
            "expires_at": entry.expires_at, "headers": dict(entry.headers),
            "body": base64.b64encode(entry.body).decode("ascii"),
        }).encode()
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, self._path(entry.key))
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as e:  # a cache that cannot be written is only slower, never wrong
            log.warning("cannot write collateral cache in %s: %s", self.directory, e)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except OSError:
            pass
