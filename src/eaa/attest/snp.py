"""``sev_snp``: SEV-SNP attestation reports from inside an SNP guest.

configfs-tsm (provider ``sev_guest``) is preferred: its ``outblob`` is the raw 1184-byte
ATTESTATION_REPORT and its ``auxblob`` the host's certificate table. Kernels without configfs-tsm
use ``/dev/sev-guest``: SNP_GET_EXT_REPORT, which also returns the host's certificate table, or
SNP_GET_REPORT where the kernel lacks it. When configfs-tsm returns no certificates (kernels whose
configfs-tsm has no auxblob support) and ``/dev/sev-guest`` is there too, the report is taken with
SNP_GET_EXT_REPORT instead, so the host's certificates are not lost.

Evidence is the raw report (type ``sev_snp``); the host's certificate table travels with it as its
collateral (:class:`~.snp_certs.SnpEndorsements`, exactly the bytes the host gave), so the verifier
needs no certificates on disk and no KDS for them: Enclave-TLS puts it in the endorsements extension
(``-e``) and the EAA protocol relays it. A table that does not parse is dropped with a warning (the
verifier can still fetch from AMD's KDS). :meth:`SevSnpAttester.collect` also returns the parsed table
(:class:`SnpAttestation`), and :attr:`SevSnpAttester.certificates` is the table from the latest report
— the host's certificates describe the platform, not one request, so the latest table is right for
every caller even when requests run concurrently.
"""

from __future__ import annotations

import logging
import os

from ..errors import ConfigError, FormatError
from ..evidence import SEV_SNP, Evidence, pad_report_data
from ..formats.snp_certs import SnpCertTable, SnpEndorsements, parse_cert_table
from ..records import record
from ._io import IoctlFunc
from .configfs_tsm import PROVIDER_SEV, ConfigfsTsm, TsmUnavailable
from .errors import EvidenceMismatch
from .sev_guest import SNP_REPORT_SIZE, ExtReportUnsupported, SevGuestDevice, SevGuestUnavailable

log = logging.getLogger(__name__)

REPORT_VERSION_OFFSET = 0x00
VMPL_OFFSET = 0x30
REPORT_DATA_OFFSET = 0x50
REPORT_DATA_END = 0x90


@record
class SnpAttestation:
    """One SNP report with what the host supplied alongside it."""

    evidence: Evidence
    certificates: SnpCertTable  # empty via /dev/sev-guest, or when the host supplied no certificates


def check_snp_report(report: bytes, report_data: bytes, vmpl: int | None, source: str) -> None:
    """Fail closed unless ``report`` is an ATTESTATION_REPORT over ``report_data`` (and at ``vmpl``, if given)."""
    if len(report) != SNP_REPORT_SIZE:
        raise EvidenceMismatch(f"{source} returned {len(report)} bytes; an SNP report is {SNP_REPORT_SIZE}")
    version = int.from_bytes(report[REPORT_VERSION_OFFSET:REPORT_VERSION_OFFSET + 4], "little")
    if version < 2:
        raise EvidenceMismatch(f"{source} returned an SNP report of unsupported version {version}")
    if report[REPORT_DATA_OFFSET:REPORT_DATA_END] != report_data:
        raise EvidenceMismatch(f"{source} returned an SNP report over other report data than requested")
    got_vmpl = int.from_bytes(report[VMPL_OFFSET:VMPL_OFFSET + 4], "little")
    if vmpl is not None and got_vmpl != vmpl:
        raise EvidenceMismatch(f"{source} returned an SNP report for VMPL {got_vmpl}; VMPL {vmpl} was requested")


class SevSnpAttester:
    """rats-tls ``sev_snp`` (priority 42). ``vmpl``: request a report at this VMPL (default: the kernel's)."""

    name = "sev_snp"
    evidence_type = SEV_SNP

    def __init__(self, root: str | os.PathLike[str] = "/", *, ioctl: IoctlFunc | None = None,
                 vmpl: int | None = None, tsm: ConfigfsTsm | None = None,
                 device: SevGuestDevice | None = None) -> None:
        if vmpl is not None and not 0 <= vmpl <= 3:
            raise ConfigError(f"an SNP VMPL is 0..3, not {vmpl}")
        self.vmpl = vmpl
        self.tsm: ConfigfsTsm | None = None
        self.device: SevGuestDevice | None = None
        self.certificates = SnpCertTable()
        if tsm is not None or device is not None:
            self.tsm, self.device = tsm, device
            return
        try:
            self.tsm = ConfigfsTsm(root, provider=PROVIDER_SEV, privlevel=vmpl)
        except TsmUnavailable as tsm_error:
            try:
                self.device = SevGuestDevice(root, ioctl=ioctl)
            except SevGuestUnavailable as dev_error:
                raise ConfigError(f"sev_snp: {tsm_error}; and {dev_error}") from None
            return
        try:  # the certificate fallback for configfs-tsm without certificates
            self.device = SevGuestDevice(root, ioctl=ioctl)
        except SevGuestUnavailable:
            self.device = None

    @property
    def backend(self) -> str:
        return "configfs-tsm (sev_guest)" if self.tsm is not None else "/dev/sev-guest"

    def collect(self, report_data: bytes) -> SnpAttestation:
        """A fresh report over ``report_data`` plus the host's certificate table (when it gave one)."""
        rd = pad_report_data(report_data)
        table = b""
        report = None
        source = self.backend
        if self.tsm is not None:
            tsm_report = self.tsm.report(rd, read_auxblob=True)
            report, table = tsm_report.outblob, tsm_report.auxblob or b""
        if self.device is not None and not table.strip(b"\x00"):
            try:
                report, table = self.device.ext_report(rd, 0 if self.vmpl is None else self.vmpl)
                source = "/dev/sev-guest (SNP_GET_EXT_REPORT)"
            except ExtReportUnsupported:
                if report is None:
                    report = self.device.report(rd, 0 if self.vmpl is None else self.vmpl)
        assert report is not None
        certs = SnpCertTable()
        if table.strip(b"\x00"):
            try:
                certs = parse_cert_table(table)
            except FormatError as e:  # host-supplied and optional: the verifier can fetch from AMD KDS
                log.warning("ignoring the host's malformed SNP certificate table: %s", e)
                certs = SnpCertTable((), table)
        check_snp_report(report, rd, self.vmpl, source)
        self.certificates = certs
        carried = SnpEndorsements(certs) if certs.entries else None
        return SnpAttestation(Evidence(SEV_SNP, report, rd, carried), certs)

    def collect_evidence(self, report_data: bytes) -> Evidence:
        return self.collect(report_data).evidence


def sev_snp_factory(root: str | os.PathLike[str] = "/", ioctl: IoctlFunc | None = None,
                    vmpl: int | None = None) -> SevSnpAttester:
    """Registry factory (``root``: where /dev and /sys are, for tests on fake trees)."""
    return SevSnpAttester(root, ioctl=ioctl, vmpl=vmpl)
