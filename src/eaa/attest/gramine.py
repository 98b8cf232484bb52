"""SGX DCAP quotes under Gramine, through its ``/dev/attestation`` pseudo-filesystem.

Gramine's LibOS serves ``/dev/attestation`` inside the enclave: write 64 bytes to
``user_report_data``, read ``quote`` and get a DCAP quote over them (shared/docs/tee-interfaces.md §1a).
``quote`` exists only when the manifest sets ``sgx.remote_attestation = "dcap"``, which
``attestation_type`` reports. The pseudo-files hold one value per process, so a write/read pair is
done under a process-wide lock: two threads attesting at once must not get each other's quote.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ..errors import ConfigError
from ..evidence import REPORT_DATA_SIZE
from ._io import read_bounded, read_text, under, write_all
from .errors import TeeInterfaceError

ATTESTATION_DIR = "/dev/attestation"
# Gramine's quote buffer is 8 KiB (SGX_QUOTE_MAX_SIZE); leave room for larger future certification data.
MAX_QUOTE_SIZE = 64 * 1024

# One lock for the whole process: there is one /dev/attestation per process, whatever the root says.
_LOCK = threading.Lock()


class GramineUnavailable(ConfigError):
    """Not running under Gramine with DCAP attestation: sgx_ecdsa cannot use /dev/attestation here."""


class GramineAttestation:
    """The ``/dev/attestation`` interface under ``root``; construction checks it offers DCAP quotes."""

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.dir: Path = under(root, ATTESTATION_DIR)
        if not self.dir.is_dir():
            raise GramineUnavailable(f"{self.dir} does not exist: not running under Gramine (Linux-SGX)")
        type_file = self.dir / "attestation_type"
        if not type_file.exists():
            raise GramineUnavailable(f"{type_file} does not exist: this Gramine has no attestation interface")
        self.attestation_type = read_text(type_file, "Gramine attestation type")
        if self.attestation_type != "dcap":
            raise GramineUnavailable(
                f"Gramine attestation type is {self.attestation_type!r}, not 'dcap': set "
                "sgx.remote_attestation = \"dcap\" in the manifest to get ECDSA quotes")

    def quote(self, report_data: bytes) -> bytes:
        """A DCAP quote over exactly ``report_data`` (64 bytes), as Gramine's quoting path returns it."""
        if len(report_data) != REPORT_DATA_SIZE:
            raise ValueError("report data must be exactly 64 bytes")
        with _LOCK:
            write_all(self.dir / "user_report_data", report_data, "Gramine user_report_data")
            quote = read_bounded(self.dir / "quote", MAX_QUOTE_SIZE, "Gramine quote")
        if not quote:
            raise TeeInterfaceError("Gramine returned an empty quote (is the AESM/quoting service running?)")
        return quote
