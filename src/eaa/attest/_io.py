"""Small I/O helpers shared by the real attesters: bounded reads, existence checks and ioctl retries.

Every TEE interface is reached through a path under a configurable ``root`` (so tests run against a
fake tree) and, for devices, through an injectable ``ioctl`` function with the signature of
:func:`fcntl.ioctl` (so tests can play the driver by filling the ctypes buffers).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import TeeInterfaceError

IoctlFunc = Callable[[int, int, Any], Any]
"""``ioctl(fd, request, arg)``: :func:`fcntl.ioctl` or a test double; ``arg`` is a mutable ctypes object."""

DEFAULT_IOCTL: IoctlFunc = fcntl.ioctl

# Drivers answer EBUSY/EAGAIN while another request is in flight (Occlum's DCAP library, sev-guest
# throttling); Occlum's own test retries EBUSY up to 20 times.
IOCTL_RETRIES = 20
_BUSY = (errno.EBUSY, errno.EAGAIN)


def under(root: str | os.PathLike[str], path: str) -> Path:
    """``path`` (absolute, as on a real machine) inside ``root``."""
    return Path(root) / path.lstrip("/")


def is_device_like(path: Path) -> bool:
    """True for a device node (or, in a fake tree, a plain file); False when missing or a directory.

    A directory is not a device: on an SGX host ``/dev/sgx/`` is the driver's directory of
    ``enclave``/``provision`` nodes, not Occlum's in-enclave ``/dev/sgx`` device.
    """
    return path.exists() and not path.is_dir()


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """Read a whole pseudo-file, refusing more than ``limit`` bytes (a broken interface must not eat memory)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise TeeInterfaceError(f"cannot read {what} ({path}): {os.strerror(e.errno) if e.errno else e}") from None
    if len(data) > limit:
        raise TeeInterfaceError(f"{what} ({path}) is larger than {limit} bytes")
    return data


def read_text(path: Path, what: str, limit: int = 4096) -> str:
    data = read_bounded(path, limit, what)
    try:
        return data.decode("ascii").strip().rstrip("\x00")
    except UnicodeDecodeError:
        raise TeeInterfaceError(f"{what} ({path}) is not ASCII text") from None


def write_all(path: Path, data: bytes, what: str) -> None:
    """Write ``data`` in one go and close: pseudo-files (Gramine, configfs bin attributes) commit on close."""
    try:
        with open(path, "wb", buffering=0) as f:
            written = f.write(data)
    except OSError as e:
        raise TeeInterfaceError(f"cannot write {what} ({path}): {os.strerror(e.errno) if e.errno else e}") from None
    if written != len(data):
        raise TeeInterfaceError(f"short write to {what} ({path}): {written} of {len(data)} bytes")


def open_device(path: str | os.PathLike[str], flags: int) -> int:
    """A file descriptor for a TEE device; failure is a typed error naming the device."""
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as e:
        raise TeeInterfaceError(f"cannot open {path}: {os.strerror(e.errno) if e.errno else e}") from None


def ioctl_retry(ioctl: IoctlFunc, fd: int, request: int, arg: Any, what: str, *,
                retries: int = IOCTL_RETRIES, delay: float = 0.05) -> None:
    """Issue ``ioctl`` and retry while the driver says it is busy; other errors become TeeInterfaceError."""
    for attempt in range(retries + 1):
        try:
            ioctl(fd, request, arg)
            return
        except OSError as e:
            if e.errno in _BUSY and attempt < retries:
                time.sleep(delay)
                continue
            detail = os.strerror(e.errno) if e.errno else str(e)
            raise TeeInterfaceError(f"{what} failed: {detail}"
                                    + (f" (still busy after {retries} retries)" if e.errno in _BUSY else "")) from None
