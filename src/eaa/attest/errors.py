"""Errors of the real attesters: the local TEE could not give us trustworthy evidence.

"The interface is not on this machine" is a :class:`~eaa.errors.ConfigError` (so registry selection
moves on to the next attester). Everything below is a failure *after* we found the interface: the
device or pseudo-file failed, or it returned something other than what we asked for. An attester
never hands out evidence it has not checked against the request, so a misbehaving or shared
interface fails closed here rather than as a confusing verification error on the peer.
"""

from __future__ import annotations

from ..errors import EaaError


class AttestationError(EaaError):
    """The local TEE did not produce usable evidence."""

    code = "ATTESTATION_FAILED"
    exit_code = 13


class TeeInterfaceError(AttestationError):
    """The TEE interface (pseudo-file, configfs-tsm, device ioctl) failed or answered out of spec."""

    code = "TEE_INTERFACE_ERROR"


class ConcurrentReportRequest(TeeInterfaceError):
    """Someone else wrote to our configfs-tsm report instance while we used it: the report may not be ours."""

    code = "TSM_GENERATION_CHANGED"


class EvidenceMismatch(AttestationError):
    """The TEE returned evidence of the wrong kind, or bound to report data other than the requested one."""

    code = "EVIDENCE_MISMATCH"
