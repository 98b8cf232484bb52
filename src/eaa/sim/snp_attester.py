"""``sim_sev_snp``: an attester backed by the simulated SEV-SNP platform (:mod:`eaa.sim.snp`).

Its evidence has the type of the real ``sev_snp`` attester (a raw ATTESTATION_REPORT), so the same
``sev_snp`` verifier checks it; it is marked ``simulated`` and verifies only where the simulated ARK is
trusted (``--trust-sim``). Registered with ``auto=False``: chosen only when named. The guest's
MEASUREMENT is the 48-byte measurement of the files it runs (:func:`eaa.sim.measure.tdx_measure`),
taken once when the attester is created, as a real guest is measured at launch.

Like the real attester, its evidence carries the host's certificate table (VCEK, ASK, ARK, in AMD's
table layout) and, since no KDS serves the simulated platform's CRL, the ARK's CRL too: the verifier
needs no certificates on disk, only the simulated ARK as its trust anchor.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from ..evidence import SEV_SNP, Evidence, pad_report_data
from ..formats.snp_certs import ARK_GUID, ASK_GUID, VCEK_GUID, SnpEndorsements, build_cert_table, parse_cert_table
from .snp import SimSnpPlatform, load_snp_platform


class SimSevSnpAttester:
    name = "sim_sev_snp"
    evidence_type = SEV_SNP

    def __init__(self, sim_dir: str | os.PathLike[str] | None = None,
                 measure_paths: Iterable[str | os.PathLike[str]] = (), *, measurement: bytes | None = None,
                 debug: bool = False, platform: SimSnpPlatform | None = None, **launch: Any) -> None:
        self.platform = platform or load_snp_platform(sim_dir)
        paths = [measure_paths] if isinstance(measure_paths, (str, os.PathLike)) else list(measure_paths)
        self.guest = self.platform.guest(measurement=measurement, measure_paths=paths, debug=debug, **launch)
        p = self.platform
        table = build_cert_table([(VCEK_GUID, p.vcek.public_bytes(Encoding.DER)),
                                  (ASK_GUID, p.ask.public_bytes(Encoding.DER)),
                                  (ARK_GUID, p.ark.public_bytes(Encoding.DER))])
        self.endorsements = SnpEndorsements(parse_cert_table(table), (p.crl,))

    def collect_evidence(self, report_data: bytes) -> Evidence:
        rd = pad_report_data(report_data)
        return Evidence(SEV_SNP, self.platform.report(rd, self.guest), rd, self.endorsements, simulated=True)
