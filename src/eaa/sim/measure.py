"""Measurements of the simulated enclave / TD: a hash over the files it runs.

The algorithm (version 1) is deterministic and independent of where the files live:

1. Collect entries ``(name, content)``:
   * a file argument gives one entry named by its base name (``/opt/app/main.py`` -> ``main.py``);
   * a directory argument gives one entry per regular file beneath it (recursively), named by its
     path relative to that directory with ``/`` separators (``/opt/app`` -> ``main.py``, ``lib/util.py``);
     the directory's own name is not part of the names, so a tree measures the same wherever it is.
   Symbolic links to files are measured as the file they point to; a symbolic link to a directory
   inside a tree, or anything that is neither a file nor a directory, is an error (never skipped
   silently, as an unmeasured file could change without changing the measurement).
   Two entries with the same name are an error.
2. Sort the entries by the UTF-8 bytes of their names.
3. Hash, for each entry in order: ``u64le(len(name)) || name || u64le(len(content)) || content``,
   with SHA-256 for SGX MRENCLAVE (32 bytes) and SHA-384 for TDX MRTD (48 bytes).

No paths gives the hash of the empty string. ``shelter mrenclave`` uses :func:`measure_files` to
compute the same reference value from a copy of the files.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError

MEASUREMENT_VERSION = 1
_CHUNK = 1 << 20


def _name_bytes(name: str, where: Path) -> bytes:
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"cannot measure {where}: its name is not valid UTF-8") from None


def _collect(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[bytes, Path]]:
    entries: dict[bytes, Path] = {}

    def add(name: str, path: Path) -> None:
        key = _name_bytes(name, path)
        if key in entries:
            raise ConfigError(f"cannot measure {path}: the name {name!r} is already measured from {entries[key]}")
        entries[key] = path

    for arg in paths:
        top = Path(arg)
        try:
            st = top.stat()
        except OSError as e:
            raise ConfigError(f"cannot measure {top}: {e.strerror}") from None
        if stat.S_ISREG(st.st_mode):
            add(top.resolve().name, top)
        elif stat.S_ISDIR(st.st_mode):
            for dirpath, dirnames, filenames in os.walk(top, onerror=_raise_walk_error):
                base = Path(dirpath)
                for d in dirnames:
                    if (base / d).is_symlink():
                        raise ConfigError(f"cannot measure {base / d}: a symbolic link to a directory "
                                          "(measure its target explicitly)")
                for f in filenames:
                    p = base / f
                    try:
                        fst = p.stat()
                    except OSError as e:
                        raise ConfigError(f"cannot measure {p}: {e.strerror}") from None
                    if not stat.S_ISREG(fst.st_mode):
                        raise ConfigError(f"cannot measure {p}: not a regular file")
                    add(p.relative_to(top).as_posix(), p)
        else:
            raise ConfigError(f"cannot measure {top}: neither a regular file nor a directory")
    return sorted(entries.items())


def _raise_walk_error(e: OSError) -> None:
    raise ConfigError(f"cannot measure {e.filename}: {e.strerror}")


def _measure(paths: Iterable[str | os.PathLike[str]], h: hashlib._Hash) -> bytes:
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]  # type: ignore[list-item]
    for name, path in _collect(paths):
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                h.update(len(name).to_bytes(8, "little") + name + size.to_bytes(8, "little"))
                done = 0
                while chunk := f.read(_CHUNK):
                    done += len(chunk)
                    if done > size:
                        break
                    h.update(chunk)
        except OSError as e:
            raise ConfigError(f"cannot measure {path}: {e.strerror}") from None
        if done != size:
            raise ConfigError(f"cannot measure {path}: it changed while being read")
    return h.digest()


def measure_files(paths: Iterable[str | os.PathLike[str]]) -> bytes:
    """The simulated SGX MRENCLAVE (32 bytes, SHA-256) of ``paths``; see the module docstring."""
    return _measure(paths, hashlib.sha256())


def tdx_measure(paths: Iterable[str | os.PathLike[str]]) -> bytes:
    """The simulated TDX MRTD (48 bytes, SHA-384) of ``paths``; same entries as :func:`measure_files`."""
    return _measure(paths, hashlib.sha384())
