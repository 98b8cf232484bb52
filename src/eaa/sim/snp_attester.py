"""``sim_sev_snp``: an attester backed by the simulated SEV-SNP platform (:mod:`eaa.sim.snp`).

Its evidence has the type of the real ``sev_snp`` attester (a raw ATTESTATION_REPORT), so the same
``sev_snp`` verifier checks it; it is marked ``simulated`` and verifies only where the simulated ARK is
trusted (``--trust-sim``). Registered with ``auto=False``: chosen only when named. The guest's
MEASUREMENT is the 48-byte measurement of the files it runs (:func:`eaa.sim.measure.tdx_measure`),
taken once when the attester is created, as a real guest is measured at launch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from ..evidence import SEV_SNP, Evidence, pad_report_data
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

    def collect_evidence(self, report_data: bytes) -> Evidence:
        rd = pad_report_data(report_data)
        return Evidence(SEV_SNP, self.platform.report(rd, self.guest), rd, None, simulated=True)
