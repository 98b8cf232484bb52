"""SEV-SNP attestation reports through the ``/dev/sev-guest`` ioctl (kernels without configfs-tsm).

``SNP_GET_REPORT`` sends MSG_REPORT_REQ to the AMD secure processor over the encrypted guest
channel (Linux ``include/uapi/linux/sev-guest.h``; shared/docs/tee-interfaces.md §1d). The
response buffer is MSG_REPORT_RSP: a 32-byte header (status, report size) and the 1184-byte
ATTESTATION_REPORT.

``SNP_GET_EXT_REPORT`` asks the same and also has the hypervisor copy its certificate table (VCEK or
VLEK, ASK, ARK; the layout of :mod:`eaa.formats.snp_certs`) into a guest buffer. The buffer is whole
pages; when it is too small the call fails with the VMM error INVALID_LEN and ``certs_len`` set to the
size needed, and is repeated once with that size (go-sev-guest ``client.getExtendedReport`` does the
same). Kernels without it answer ENOTTY/EINVAL, and the plain report is used.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from pathlib import Path

from ..errors import ConfigError
from ..evidence import REPORT_DATA_SIZE
from ._io import DEFAULT_IOCTL, IOCTL_RETRIES, IoctlFunc, is_device_like, open_device, under
from .errors import TeeInterfaceError

DEVICE = "/dev/sev-guest"
SNP_GET_REPORT = 0xC0205300  # _IOWR('S', 0x0, struct snp_guest_request_ioctl)
SNP_GET_EXT_REPORT = 0xC0205302  # _IOWR('S', 0x2, struct snp_guest_request_ioctl)
PAGE_SIZE = 4096
DEFAULT_CERTS_LEN = 4 * PAGE_SIZE
MAX_CERTS_LEN = 64 * PAGE_SIZE  # the kernel's SEV_FW_BLOB_MAX_SIZE is 4 pages; leave room, but bound it
VMM_ERR_INVALID_LEN = 1
_UNSUPPORTED = (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP)
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


class SnpExtReportReq(ctypes.Structure):
    """``struct snp_ext_report_req``: the report request, then where and how much certificate data to copy."""

    _fields_ = [("data", SnpReportReq), ("certs_address", ctypes.c_uint64), ("certs_len", ctypes.c_uint32)]


assert ctypes.sizeof(SnpGuestRequestIoctl) == 32 and ctypes.sizeof(SnpReportReq) == 96
assert ctypes.sizeof(SnpExtReportReq) == 112


class ExtReportUnsupported(TeeInterfaceError):
    """The kernel has no SNP_GET_EXT_REPORT (or refuses it); SNP_GET_REPORT still works."""


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
        req = self._report_req(report_data, vmpl)
        resp = SnpReportResp()
        fd = open_device(self.device, os.O_RDWR)
        try:
            self._request(fd, SNP_GET_REPORT, req, resp)
        finally:
            os.close(fd)
        return self._report_from(resp)

    def ext_report(self, report_data: bytes, vmpl: int = 0, certs_len: int = DEFAULT_CERTS_LEN) -> tuple[bytes, bytes]:
        """SNP_GET_EXT_REPORT: the report and the hypervisor's certificate table (all zero when it has none).

        Raises :class:`ExtReportUnsupported` when the kernel lacks the ioctl.
        """
        req = SnpExtReportReq(data=self._report_req(report_data, vmpl))
        resp = SnpReportResp()
        fd = open_device(self.device, os.O_RDWR)
        try:
            for attempt in range(2):
                if certs_len % PAGE_SIZE or not 0 < certs_len <= MAX_CERTS_LEN:
                    raise TeeInterfaceError(f"SNP certificate buffer of {certs_len} bytes is not 1 to "
                                            f"{MAX_CERTS_LEN // PAGE_SIZE} whole pages")
                certs = ctypes.create_string_buffer(certs_len)
                req.certs_address, req.certs_len = ctypes.addressof(certs), certs_len
                try:
                    self._request(fd, SNP_GET_EXT_REPORT, req, resp)
                except _InvalidLength:
                    if attempt:
                        raise TeeInterfaceError("SNP_GET_EXT_REPORT: the hypervisor's certificates do not fit "
                                                "the size it asked for") from None
                    certs_len = req.certs_len  # the kernel wrote the size needed
                    continue
                return self._report_from(resp), certs.raw
        finally:
            os.close(fd)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _report_req(report_data: bytes, vmpl: int) -> SnpReportReq:
        if len(report_data) != REPORT_DATA_SIZE:
            raise ValueError("report data must be exactly 64 bytes")
        return SnpReportReq(user_data=(ctypes.c_uint8 * REPORT_DATA_SIZE).from_buffer_copy(report_data), vmpl=vmpl)

    @staticmethod
    def _report_from(resp: SnpReportResp) -> bytes:
        raw = bytes(resp.data)
        status = int.from_bytes(raw[0:4], "little")
        size = int.from_bytes(raw[4:8], "little")
        if status != 0:
            raise TeeInterfaceError(f"SNP firmware rejected the report request: status {status:#x} "
                                    f"({_FW_STATUS.get(status, 'unknown')})")
        if size != SNP_REPORT_SIZE:
            raise TeeInterfaceError(f"SNP firmware returned a {size}-byte report; expected {SNP_REPORT_SIZE}")
        return raw[RESP_HEADER_SIZE:RESP_HEADER_SIZE + SNP_REPORT_SIZE]

    def _request(self, fd: int, command: int, req: ctypes.Structure, resp: SnpReportResp) -> None:
        name = "SNP_GET_EXT_REPORT" if command == SNP_GET_EXT_REPORT else "SNP_GET_REPORT"
        for attempt in range(IOCTL_RETRIES + 1):
            arg = SnpGuestRequestIoctl(msg_version=MSG_VERSION, req_data=ctypes.addressof(req),
                                       resp_data=ctypes.addressof(resp))
            try:
                self._ioctl(fd, command, arg)
                return
            except OSError as e:
                fw_error, vmm_error = arg.exitinfo2 & 0xFFFFFFFF, arg.exitinfo2 >> 32
                busy = vmm_error == VMM_ERR_BUSY or e.errno in (errno.EBUSY, errno.EAGAIN)
                if busy and attempt < IOCTL_RETRIES:
                    time.sleep(self._retry_delay)
                    continue
                if command == SNP_GET_EXT_REPORT and vmm_error == VMM_ERR_INVALID_LEN:
                    raise _InvalidLength() from None
                detail = os.strerror(e.errno) if e.errno else str(e)
                if command == SNP_GET_EXT_REPORT and e.errno in _UNSUPPORTED and not arg.exitinfo2:
                    raise ExtReportUnsupported(f"{name} is not supported here: {detail}") from None
                raise TeeInterfaceError(f"{name} failed: {detail} (firmware error {fw_error:#x}, "
                                        f"VMM error {vmm_error:#x})") from None


class _InvalidLength(Exception):
    """SNP_GET_EXT_REPORT: the certificate buffer is too small (``certs_len`` now holds the size needed)."""
