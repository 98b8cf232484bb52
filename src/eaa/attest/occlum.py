"""SGX DCAP quotes under Occlum, through ioctls on its in-enclave ``/dev/sgx`` device.

Occlum's LibOS implements ``/dev/sgx`` itself (occlum ``src/libos/src/fs/dev_fs/dev_sgx``); the
Python process lives in the enclave's address space, so pointers inside the ioctl structures are
plain addresses of ctypes buffers (shared/docs/tee-interfaces.md §1b). Two calls: ask the quote
size, then generate the quote into a buffer of that size. The DCAP library answers EBUSY while
another quote is being produced; we retry, as Occlum's own tests do.

On an ordinary SGX host ``/dev/sgx`` is the driver's *directory* (``enclave``, ``provision``); that
is not Occlum and is reported as unavailable.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from ..errors import ConfigError
from ..evidence import REPORT_DATA_SIZE
from ._io import DEFAULT_IOCTL, IoctlFunc, ioctl_retry, is_device_like, open_device, under
from .errors import TeeInterfaceError

DEVICE = "/dev/sgx"
SGXIOC_GET_DCAP_QUOTE_SIZE = 0x80047307  # _IOR('s', 7, uint32_t)
SGXIOC_GEN_DCAP_QUOTE = 0xC0187308  # _IOWR('s', 8, sgxioc_gen_dcap_quote_arg_t)
MAX_QUOTE_SIZE = 64 * 1024


class GenDcapQuoteArg(ctypes.Structure):
    """``sgxioc_gen_dcap_quote_arg_t``: pointers to the report data, the in/out length and the quote buffer."""

    _fields_ = [
        ("report_data", ctypes.c_void_p),  # const sgx_report_data_t* (64 bytes)
        ("quote_len", ctypes.c_void_p),  # uint32_t*: buffer size in, quote size out
        ("quote_buf", ctypes.c_void_p),  # uint8_t*
    ]


assert ctypes.sizeof(GenDcapQuoteArg) == 24


class OcclumUnavailable(ConfigError):
    """Not running inside Occlum: there is no in-enclave /dev/sgx device."""


class OcclumDcap:
    """The ``/dev/sgx`` DCAP ioctls under ``root``, issued through ``ioctl`` (``fcntl.ioctl`` by default)."""

    def __init__(self, root: str | os.PathLike[str] = "/", *, ioctl: IoctlFunc | None = None,
                 retry_delay: float = 0.05) -> None:
        self.device: Path = under(root, DEVICE)
        if self.device.is_dir():
            raise OcclumUnavailable(f"{self.device} is a directory (the host SGX driver), not Occlum's "
                                    "in-enclave device: run inside a Gramine or Occlum enclave")
        if not is_device_like(self.device):
            raise OcclumUnavailable(f"{self.device} does not exist: not running inside Occlum")
        self._ioctl = ioctl or DEFAULT_IOCTL
        self._retry_delay = retry_delay

    def quote(self, report_data: bytes) -> bytes:
        """A DCAP quote over exactly ``report_data`` (64 bytes)."""
        if len(report_data) != REPORT_DATA_SIZE:
            raise ValueError("report data must be exactly 64 bytes")
        fd = open_device(self.device, os.O_RDONLY)
        try:
            size = ctypes.c_uint32(0)
            ioctl_retry(self._ioctl, fd, SGXIOC_GET_DCAP_QUOTE_SIZE, size, "SGXIOC_GET_DCAP_QUOTE_SIZE",
                        delay=self._retry_delay)
            if not 0 < size.value <= MAX_QUOTE_SIZE:
                raise TeeInterfaceError(f"Occlum reports a DCAP quote size of {size.value} bytes")
            rd = ctypes.create_string_buffer(report_data, REPORT_DATA_SIZE)
            qlen = ctypes.c_uint32(size.value)
            qbuf = ctypes.create_string_buffer(size.value)
            arg = GenDcapQuoteArg(ctypes.addressof(rd), ctypes.addressof(qlen), ctypes.addressof(qbuf))
            ioctl_retry(self._ioctl, fd, SGXIOC_GEN_DCAP_QUOTE, arg, "SGXIOC_GEN_DCAP_QUOTE",
                        delay=self._retry_delay)
        finally:
            os.close(fd)
        if not 0 < qlen.value <= size.value:
            raise TeeInterfaceError(f"Occlum returned a quote length of {qlen.value} for a {size.value}-byte buffer")
        return qbuf.raw[:qlen.value]
