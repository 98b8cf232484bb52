"""``sim_sgx_ecdsa`` and ``sim_tdx_ecdsa``: attesters backed by the simulated TEE.

They produce evidence of the same types as the real attesters (``sgx_ecdsa`` / ``tdx_ecdsa``: a DCAP
quote), carrying the simulated platform's collateral and ``simulated=True``. They are registered with
``auto=False``: only chosen when named, never as a fallback for missing hardware.

The measured files are hashed once, when the attester is created (as a real enclave is measured when
it is loaded); a changed file gives a changed MRENCLAVE / MRTD at the next start.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import ConfigError
from ..evidence import SGX_ECDSA, TDX_ECDSA, Evidence, pad_report_data
from .measure import measure_files, tdx_measure
from .platform import SimPlatform, load_platform

_PathList = Iterable[str | os.PathLike[str]]


def _paths(measure_paths: _PathList | str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
    if isinstance(measure_paths, (str, os.PathLike)):
        return [measure_paths]
    return list(measure_paths)


class SimSgxEcdsaAttester:
    name = "sim_sgx_ecdsa"
    evidence_type = SGX_ECDSA

    def __init__(self, sim_dir: str | os.PathLike[str] | None = None, measure_paths: _PathList = (), *,
                 mrenclave: bytes | None = None, isv_prod_id: int = 0, isv_svn: int = 0, debug: bool = False,
                 platform: SimPlatform | None = None) -> None:
        self.platform = platform or load_platform(Path(sim_dir) if sim_dir is not None else None)
        paths = _paths(measure_paths)
        if mrenclave is not None and paths:
            raise ConfigError("give either an MRENCLAVE or files to measure, not both")
        self.mrenclave = bytes(mrenclave) if mrenclave is not None else measure_files(paths)
        if len(self.mrenclave) != 32:
            raise ConfigError("MRENCLAVE must be 32 bytes")
        self.isv_prod_id = isv_prod_id
        self.isv_svn = isv_svn
        self.debug = debug

    def collect_evidence(self, report_data: bytes) -> Evidence:
        rd = pad_report_data(report_data)
        quote = self.platform.make_sgx_quote(rd, mrenclave=self.mrenclave, isv_prod_id=self.isv_prod_id,
                                             isv_svn=self.isv_svn, debug=self.debug)
        return Evidence(SGX_ECDSA, quote, rd, self.platform.collateral("sgx"), simulated=True)


class SimTdxEcdsaAttester:
    name = "sim_tdx_ecdsa"
    evidence_type = TDX_ECDSA

    def __init__(self, sim_dir: str | os.PathLike[str] | None = None, measure_paths: _PathList = (), *,
                 mrtd: bytes | None = None, rtmrs: Sequence[bytes] | None = None, debug: bool = False,
                 platform: SimPlatform | None = None) -> None:
        self.platform = platform or load_platform(Path(sim_dir) if sim_dir is not None else None)
        paths = _paths(measure_paths)
        if mrtd is not None and paths:
            raise ConfigError("give either an MRTD or files to measure, not both")
        self.mrtd = bytes(mrtd) if mrtd is not None else tdx_measure(paths)
        if len(self.mrtd) != 48:
            raise ConfigError("MRTD must be 48 bytes")
        self.rtmrs = tuple(rtmrs) if rtmrs is not None else None
        self.debug = debug

    def collect_evidence(self, report_data: bytes) -> Evidence:
        rd = pad_report_data(report_data)
        quote = self.platform.make_tdx_quote(rd, mrtd=self.mrtd, rtmrs=self.rtmrs, debug=self.debug)
        return Evidence(TDX_ECDSA, quote, rd, self.platform.collateral("tdx"), simulated=True)
