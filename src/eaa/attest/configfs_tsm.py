"""configfs-tsm (Linux ≥ 6.7): the kernel's common interface for TDX quotes and SEV-SNP reports.

``/sys/kernel/config/tsm/report/`` holds report *instances*: ``mkdir`` one, write the 64-byte
``inblob`` (committed when the file is closed), read ``outblob`` (and, on SNP, ``auxblob``), then
``rmdir`` it (shared/docs/tee-interfaces.md §1c, Linux ``drivers/virt/coco/guest/report.c``).

Every request gets its own freshly created instance with an unguessable name, so concurrent
requests never share one. ``generation`` counts writes to the instance: on a fresh instance it must
equal the writes we made, and it must not move while we read; otherwise somebody else wrote to our
instance and the report may be over their data, so we fail (:class:`ConcurrentReportRequest`).

Tests replace :meth:`ConfigfsTsm._new_instance` / :meth:`ConfigfsTsm._remove_instance` (a plain
directory cannot produce reports) and, to simulate other writers, :meth:`ConfigfsTsm._read`.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from pathlib import Path

from ..errors import ConfigError
from ..records import record
from ._io import read_bounded, under, write_all
from .errors import ConcurrentReportRequest, EvidenceMismatch, TeeInterfaceError

log = logging.getLogger(__name__)

REPORT_DIR = "/sys/kernel/config/tsm/report"
PROVIDER_TDX = "tdx_guest"
PROVIDER_SEV = "sev_guest"
INBLOB_MAX = 64  # TSM_REPORT_INBLOB_MAX
PRIVLEVEL_MAX = 3  # TSM_REPORT_PRIVLEVEL_MAX (SNP VMPL)
MAX_BLOB = 1 << 20  # far above any quote or cert table; bounds what a broken provider can make us read
_MAX_TEXT = 256


class TsmUnavailable(ConfigError):
    """configfs-tsm is absent here, not usable by us, or backed by another TEE's provider."""


@record
class TsmReport:
    """What one configfs-tsm request returned."""

    provider: str  # e.g. "tdx_guest", "sev_guest"
    outblob: bytes  # TDX: a TD quote; SNP: the 1184-byte ATTESTATION_REPORT
    auxblob: bytes  # SNP: the host's certificate table (may be empty); b"" when not read / not offered
    generation: int  # the instance's write counter when the report was read


def _strerror(e: OSError) -> str:
    return os.strerror(e.errno) if e.errno else str(e)


class ConfigfsTsm:
    """The configfs-tsm report directory under ``root``, used for one expected ``provider``.

    Construction checks the directory exists and, when ``probe`` is true, creates and removes one
    instance to learn the provider: so a TDX attester is "not available" on an SNP guest (and vice
    versa) and automatic selection moves on, instead of failing at the first request.
    """

    def __init__(self, root: str | os.PathLike[str] = "/", *, provider: str, privlevel: int | None = None,
                 probe: bool = True) -> None:
        if privlevel is not None and not 0 <= privlevel <= PRIVLEVEL_MAX:
            raise ConfigError(f"configfs-tsm privilege level must be 0..{PRIVLEVEL_MAX}, not {privlevel}")
        self.report_dir: Path = under(root, REPORT_DIR)
        self.provider = provider
        self.privlevel = privlevel
        if not self.report_dir.is_dir():
            raise TsmUnavailable(f"{self.report_dir} does not exist: no configfs-tsm here (needs Linux 6.7+, "
                                 "configfs mounted and the TEE guest driver loaded)")
        if probe:
            self.probe()

    # ---- overridable filesystem steps ----

    def _new_instance(self) -> Path:
        """Create a fresh, uniquely named report instance and return its directory."""
        return Path(tempfile.mkdtemp(prefix="eaa-", dir=self.report_dir))

    def _remove_instance(self, instance: Path) -> None:
        os.rmdir(instance)

    def _read(self, path: Path, what: str, limit: int = MAX_BLOB) -> bytes:
        return read_bounded(path, limit, what)

    # ---- steps ----

    def _create(self) -> Path:
        try:
            return self._new_instance()
        except OSError as e:
            if e.errno == errno.ENXIO:
                why = "no TSM provider is registered (the TDX/SEV guest driver is not loaded)"
            elif e.errno in (errno.EACCES, errno.EPERM):
                why = "permission denied: creating reports needs root, or a directory pre-created and chowned"
            else:
                why = _strerror(e)
            raise TsmUnavailable(f"cannot create a configfs-tsm report in {self.report_dir}: {why}") from None

    def _remove(self, instance: Path) -> None:
        try:
            self._remove_instance(instance)
        except OSError as e:  # never mask the request's own outcome; the instance leaks but holds no secret
            log.warning("cannot remove configfs-tsm report instance %s: %s", instance, _strerror(e))

    def _text(self, instance: Path, name: str) -> str:
        data = self._read(instance / name, f"configfs-tsm {name}", _MAX_TEXT)
        try:
            return data.decode("ascii").strip()
        except UnicodeDecodeError:
            raise TeeInterfaceError(f"configfs-tsm {name} is not ASCII text") from None

    def _generation(self, instance: Path) -> int:
        text = self._text(instance, "generation")
        try:
            return int(text)
        except ValueError:
            raise TeeInterfaceError(f"configfs-tsm generation {text!r} is not a number") from None

    def probe(self) -> str:
        """Check the provider behind this configfs-tsm is the expected one; return it."""
        instance = self._create()
        try:
            try:
                provider = self._text(instance, "provider")
            except TeeInterfaceError as e:
                raise TsmUnavailable(f"configfs-tsm provider unreadable: {e}") from None
        finally:
            self._remove(instance)
        if provider != self.provider:
            raise TsmUnavailable(f"configfs-tsm provider is {provider!r}, not {self.provider!r}")
        return provider

    def report(self, inblob: bytes, *, read_auxblob: bool = False) -> TsmReport:
        """One report over ``inblob`` (≤ 64 bytes), from a private instance that is removed afterwards."""
        if len(inblob) > INBLOB_MAX:
            raise ValueError(f"configfs-tsm inblob is at most {INBLOB_MAX} bytes")
        try:
            instance = self._create()
        except TsmUnavailable as e:  # it was usable when we probed it: now it is a failing interface
            raise TeeInterfaceError(str(e)) from None
        try:
            provider = self._text(instance, "provider")
            if provider != self.provider:
                raise EvidenceMismatch(f"configfs-tsm provider is {provider!r}, not {self.provider!r}")
            writes = 0
            if self.privlevel is not None:
                if not (instance / "privlevel").exists():
                    raise TeeInterfaceError(f"provider {provider} does not support a privilege level")
                write_all(instance / "privlevel", str(self.privlevel).encode(), "configfs-tsm privlevel")
                writes += 1
            write_all(instance / "inblob", inblob, "configfs-tsm inblob")  # committed on close
            writes += 1
            generation = self._generation(instance)
            if generation != writes:
                raise ConcurrentReportRequest(f"configfs-tsm generation is {generation} after our {writes} "
                                              "write(s): another writer used this report instance")
            outblob = self._read(instance / "outblob", "configfs-tsm outblob")
            auxblob = b""
            if read_auxblob and (instance / "auxblob").exists():
                auxblob = self._read(instance / "auxblob", "configfs-tsm auxblob")
            after = self._generation(instance)
            if after != generation:
                raise ConcurrentReportRequest(f"configfs-tsm generation moved from {generation} to {after} while "
                                              "the report was read: it may not be over our data")
            if not outblob:
                raise TeeInterfaceError("configfs-tsm returned an empty outblob")
            return TsmReport(provider, outblob, auxblob, generation)
        finally:
            self._remove(instance)
