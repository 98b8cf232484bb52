"""SEV-SNP attestation reports through the ``/dev/sev-guest`` ioctl (kernels without configfs-tsm).

``SNP_GET_REPORT`` sends MSG_REPORT_REQ to the AMD secure processor over the encrypted guest
channel (Linux ``include/uapi/linux/sev-guest.h``; shared/docs/tee-interfaces.md §1d). The
response buffer is MSG_REPORT_RSP: a 32-byte header (status, report size) and the 1184-byte
ATTESTATION_REPORT. This path gets no certificate table (that needs SNP_GET_EXT_REPORT).
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from pathlib import Path

from ..errors import ConfigError
from ._io import DEFAULT_IOCTL, IOCTL_RETRIES, IoctlFunc, is_device_like, open_device, under
from .errors import TeeInterfaceError
from .evidence import REPORT_DATA_SIZE

DEVICE = "/dev/sev-guest"
SNP_GET_REPORT = 0xC0205300  # _IOWR('S', 0x0, struct snp_guest_request_ioctl)
MSG_VERSION = 1
SNP_REPORT_SIZE = 0x4A0
RESP_HEADER_SIZE = 0x20
VMM_ERR_BUSY = 2
_FW_STATUS = {0x16: "invalid parameter", 0x27: "invalid key selection"}


class SnpGuestRequestIoctl(ctypes.Structure):
    _fields_ = [
        ("msg_version", ctypes.c_uint8),
        ("req_data", ctypes.c_uint64),
        ("resp_data", ctypes.c_uint64),
        ("exitinfo2", ctypes.c_uint64),  # low 32 bits: firmware error; high 32 bits: VMM error
    ]


class SnpReportReq(ctypes.Structure):
    # u8 arrays, not c_char: a c_char array field reads back only up to its first NUL byte
    _fields_ = [("user_data", ctypes.c_uint8 * 64), ("vmpl", ctypes.c_uint32), ("rsvd", ctypes.c_uint8 * 28)]


class SnpReportResp(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint8 * 4000)]


assert ctypes.sizeof(SnpGuestRequestIoctl) == 32 and ctypes.sizeof(SnpReportReq) == 96


class SevGuestUnavailable(ConfigError):
    """No usable /dev/sev-guest: not an SEV-SNP guest, or no permission to the device."""


class SevGuestDevice:
    """``/dev/sev-guest`` under ``root``, driven through ``ioctl`` (``fcntl.ioctl`` by default)."""

    def __init__(self, root: str | os.PathLike[str] = "/", *, ioctl: IoctlFunc | None = None,
                 retry_delay: float = 0.1) -> None:
        self.device: Path = under(root, DEVICE)
        if not is_device_like(self.device):
            raise SevGuestUnavailable(f"{self.device} does not exist: not an SEV-SNP guest (or the sev-guest "
                                      "driver is not loaded)")
        if not os.access(self.device, os.R_OK | os.W_OK):
            raise SevGuestUnavailable(f"no read/write permission on {self.device}")
        self._ioctl = ioctl or DEFAULT_IOCTL
        self._retry_delay = retry_delay

    def report(self, report_data: bytes, vmpl: int = 0) -> bytes:
        """The raw 1184-byte ATTESTATION_REPORT over ``report_data`` (64 bytes) at ``vmpl``."""
        if len(report_data) != REPORT_DATA_SIZE:
            raise ValueError("report data must be exactly 64 bytes")
        fd = open_device(self.device, os.O_RDWR)
        try:
            req = SnpReportReq(user_data=(ctypes.c_uint8 * REPORT_DATA_SIZE).from_buffer_copy(report_data), vmpl=vmpl)
            resp = SnpReportResp()
            self._request(fd, req, resp)
        finally:
            os.close(fd)
        raw = bytes(resp.data)
        status = int.from_bytes(raw[0:4], "little")
        size = int.from_bytes(raw[4:8], "little")
        if status != 0:
            raise TeeInterfaceError(f"SNP firmware rejected the report request: status {status:#x} "
                                    f"({_FW_STATUS.get(status, 'unknown')})")
        if size != SNP_REPORT_SIZE:
            raise TeeInterfaceError(f"SNP firmware returned a {size}-byte report; expected {SNP_REPORT_SIZE}")
        return raw[RESP_HEADER_SIZE:RESP_HEADER_SIZE + SNP_REPORT_SIZE]

    def _request(self, fd: int, req: SnpReportReq, resp: SnpReportResp) -> None:
        for attempt in range(IOCTL_RETRIES + 1):
            arg = SnpGuestRequestIoctl(msg_version=MSG_VERSION, req_data=ctypes.addressof(req),
                                       resp_data=ctypes.addressof(resp))
            try:
                self._ioctl(fd, SNP_GET_REPORT, arg)
                return
            except OSError as e:
                fw_error, vmm_error = arg.exitinfo2 & 0xFFFFFFFF, arg.exitinfo2 >> 32
                busy = vmm_error == VMM_ERR_BUSY or e.errno in (errno.EBUSY, errno.EAGAIN)
                if busy and attempt < IOCTL_RETRIES:
                    time.sleep(self._retry_delay)
                    continue
                detail = os.strerror(e.errno) if e.errno else str(e)
                raise TeeInterfaceError(f"SNP_GET_REPORT failed: {detail} (firmware error {fw_error:#x}, "
                                        f"VMM error {vmm_error:#x})") from None
