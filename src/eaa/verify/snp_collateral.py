"""Where the certificates and CRLs for one SEV-SNP report come from: the evidence's own certificate table,
explicit certificates, files, and (through the verifier) the simulated platform or AMD's KDS.

Nothing here is trusted: every chain is checked against the verifier's anchors (:mod:`eaa.pki.amd`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

from cryptography import x509

from ..checks import Check
from ..collateral.kds import KDS_URL, KdsClient
from ..errors import EaaError, FormatError
from ..formats.snp_certs import SnpCertTable, SnpEndorsements
from ..formats.snp_report import SIGNING_KEY_VLEK, TURIN, SnpReport
from ..formats.snp_vek import VCEK, VLEK, vek_extensions, vek_kind
from ..formats.x509_errors import PARSE_ERRORS
from ..pki.amd import CertInput, CrlInput, certificates, crl_list
from ..pki.trust import der_of
from ..records import record

_MAX_CERT_FILE = 1 << 20


def _crl_der(data: bytes) -> bytes | None:
    """The DER of ``data`` when it is one CRL (DER or PEM), else None."""
    try:
        if data.lstrip().startswith(b"-----BEGIN X509 CRL-----"):
            return der_of(x509.load_pem_x509_crl(data))
        if data[:1] == b"\x30":
            x509.load_der_x509_crl(data)
            return bytes(data)
    except PARSE_ERRORS:
        return None
    return None


@record
class SnpCollateral:
    """Certificates that may verify a report: candidate VEKs and a pool of ASK/ASVK/ARK certificates.

    A pool rather than a fixed chain, so one directory or cert table can serve several products and
    chips: the verifier picks the VEK matching the report and follows issuer names through the pool.
    """

    veks: tuple[x509.Certificate, ...] = ()
    chain: tuple[x509.Certificate, ...] = ()
    crls: tuple[bytes, ...] = ()  # AMD CRLs (DER); the one the chain's ARK issued is used
    source: str = "explicit"

    @classmethod
    def of(cls, vek: CertInput | None = None, chain: CertInput | None = None, crl: CrlInput = None,
           source: str = "explicit") -> SnpCollateral:
        """From DER/PEM bytes or certificates; the VEK(s) and the chain may also be mixed in either."""
        pool = certificates(vek) + certificates(chain)
        veks = tuple(c for c in pool if vek_kind(c) is not None)
        return cls(veks, tuple(c for c in pool if vek_kind(c) is None), crl_list(crl), source)

    @classmethod
    def from_cert_table(cls, table: SnpCertTable) -> SnpCollateral:
        """The host's certificate table (VCEK/VLEK, ASK, ARK; any may be missing)."""
        parts = [table.get(name) for name in ("vcek", "vlek", "ask", "ark")]
        return cls.of(chain=[p for p in parts if p], source="cert table")

    @classmethod
    def from_endorsements(cls, endorsements: SnpEndorsements) -> SnpCollateral:
        """What came with the evidence: the host's certificate table and any CRLs (untrusted until checked)."""
        parts = [endorsements.table.get(name) for name in ("vcek", "vlek", "ask", "ark")]
        try:
            return cls.of(chain=[p for p in parts if p], crl=endorsements.crls, source="evidence")
        except FormatError as e:
            raise FormatError(f"a certificate that came with the evidence does not parse: {e}",
                              check=Check.SNP_CERT_TABLE) from None

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> SnpCollateral:
        """Certificates from a file (PEM bundle or one DER) or every certificate file of a directory.

        Files that hold no certificate are skipped, so a directory shared with DCAP collateral works;
        files holding a CRL (DER or PEM) are AMD CRL candidates (the one the chain's ARK signed is used).
        """
        p = Path(path)
        files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
        pool: list[x509.Certificate] = []
        crls: list[bytes] = []
        for f in files:
            try:
                if f.stat().st_size > _MAX_CERT_FILE:
                    continue
                data = f.read_bytes()
            except OSError:
                continue
            crl = _crl_der(data)
            if crl is not None:
                crls.append(crl)
                continue
            try:
                pool.extend(certificates(data))
            except FormatError:
                continue
        return cls.of(chain=pool, crl=crls, source=f"file {p}")

    @property
    def crl(self) -> bytes | None:
        return self.crls[0] if self.crls else None

    def merged(self, other: SnpCollateral) -> SnpCollateral:
        return SnpCollateral(self.veks + other.veks, self.chain + other.chain, self.crls + other.crls,
                             f"{self.source} + {other.source}")

    def select_vek(self, report: SnpReport, product: str | None) -> x509.Certificate | None:
        """The VEK for this report: of the kind SIGNER_INFO names, for its chip and REPORTED_TCB.

        With a single candidate it is returned even if it does not match, so that verification can say
        precisely what is wrong with it; with several, only a matching one is.
        """
        want = VLEK if report.signing_key == SIGNING_KEY_VLEK else VCEK
        kind = [c for c in self.veks if vek_kind(c) == want]
        if len(self.veks) == 1:
            return self.veks[0]
        for cert in kind:
            try:
                ext = vek_extensions(cert)
                p = product or ext.product
                if ext.tcb(p).encode() != report.reported_tcb:
                    continue
                if want == VCEK and not report.chip_id_masked and not hwid_matches(ext.hwid, report.chip_id, p):
                    continue
            except EaaError:
                continue
            return cert
        return None


def hwid_matches(hwid: bytes | None, chip_id: bytes, product: str) -> bool:
    if hwid is None:
        return False
    return hwid == (chip_id[:8] if product == TURIN else chip_id)


# Where certificates come from when the evidence carries none: fixed certificates, the host's cert table,
# a file or directory, a KDS client, or a function (tee, report bytes) -> any of these (or None).
SnpCollateralSource = Union[SnpCollateral, SnpCertTable, KdsClient, str, "os.PathLike[str]",
                            Callable[[str, bytes], Any], None]
_INTEL_PCS_HOSTS = ("api.trustedservices.intel.com",)


def default_kds_url() -> tuple[str, Any]:
    """Where AMD data is fetched when no KDS URL is given: the PCCS Intel data comes from (EAA_PCCS_URL or
    qcnl ``pccs_url``; eaa-pccs serves AMD's ``/vcek/v1/...`` paths from its KDS cache), else AMD's KDS.

    Returns the base URL and the TLS verification setting the QCNL configuration asks for.
    """
    from urllib.parse import urlsplit

    from ..collateral.http import tls_verify
    from ..collateral.pcs import split_service_url
    from ..collateral.qcnl import load_qcnl

    config = load_qcnl()
    if config is None or urlsplit(config.pccs_url).hostname in _INTEL_PCS_HOSTS:
        return KDS_URL, True
    base, _ = split_service_url(config.pccs_url)
    return base, tls_verify(config.use_secure_cert)


