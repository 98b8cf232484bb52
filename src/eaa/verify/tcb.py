"""TCB evaluation as Intel's QVL does it: QE identity level, platform TCB level, TDX module, status merge.

References: QVL ``Checks/TcbLevelCheck.cpp``, ``Verifiers/EnclaveReportVerifier.cpp``,
``Checks/TDRelaunchCheck.cpp``; dcap-qvl ``src/verify.rs`` (shared/docs/dcap-reference.md §2.2).
All functions here are pure: parsed structures in, a status or a typed error out.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CollateralInvalid, IdentityMismatch, TcbNotSupported
from ..formats.enclave_identity import EnclaveIdentity, EnclaveTcbLevel
from ..formats.pck_extensions import PckExtensions
from ..formats.report_body import SgxReportBody, TdReportBody
from ..formats.tcb_info import TcbInfo, TcbLevel, TdxModuleIdentity
from .result import (
    CONFIGURATION_AND_SW_HARDENING_NEEDED,
    CONFIGURATION_NEEDED,
    OUT_OF_DATE,
    OUT_OF_DATE_CONFIGURATION_NEEDED,
    REVOKED,
    SW_HARDENING_NEEDED,
    TD_RELAUNCH_ADVISED,
    TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
    UP_TO_DATE,
)

TCB_INFO_STATUSES = frozenset({
    UP_TO_DATE, SW_HARDENING_NEEDED, CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED, OUT_OF_DATE,
    OUT_OF_DATE_CONFIGURATION_NEEDED, REVOKED,
})
TDX_MODULE_STATUSES = frozenset({UP_TO_DATE, OUT_OF_DATE, REVOKED})
QE_IDENTITY_STATUSES = frozenset({UP_TO_DATE, OUT_OF_DATE, CONFIGURATION_NEEDED, OUT_OF_DATE_CONFIGURATION_NEEDED,
                                  REVOKED})


@dataclass(frozen=True)
class StatusWithAdvisory:
    status: str
    advisory_ids: tuple[str, ...]
    tcb_date: str | None


def _union(*lists: tuple[str, ...]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for lst in lists:
        for a in lst:
            seen.setdefault(a, None)
    return tuple(seen)


def validate_statuses(tcb_info: TcbInfo, qe_identity: EnclaveIdentity) -> None:
    for lv in tcb_info.tcb_levels:
        if lv.status not in TCB_INFO_STATUSES:
            raise CollateralInvalid(f"TCB info has unknown tcbStatus {lv.status!r}")
    for ident in tcb_info.tdx_module_identities:
        for mlv in ident.tcb_levels:
            if mlv.status not in TDX_MODULE_STATUSES:
                raise CollateralInvalid(f"TDX module identity {ident.id} has unknown tcbStatus {mlv.status!r}")
    for qlv in qe_identity.tcb_levels:
        if qlv.status not in QE_IDENTITY_STATUSES:
            raise CollateralInvalid(f"QE identity has unknown tcbStatus {qlv.status!r}")


def check_qe_identity(qe_report: SgxReportBody, identity: EnclaveIdentity) -> EnclaveTcbLevel:
    """QVL EnclaveReportVerifier: signer, product, masked MISCSELECT/ATTRIBUTES, then the QE TCB level."""
    if qe_report.mr_signer != identity.mrsigner:
        raise IdentityMismatch("QE report MRSIGNER does not match the QE identity")
    if qe_report.isv_prod_id != identity.isvprodid:
        raise IdentityMismatch("QE report ISVPRODID does not match the QE identity")
    mask = identity.miscselect_mask
    if (qe_report.misc_select & mask) != (identity.miscselect & mask):
        raise IdentityMismatch("QE report MISCSELECT does not match the QE identity")
    amask = identity.attributes_mask
    if bytes(a & m for a, m in zip(qe_report.attributes, amask)) != bytes(
        a & m for a, m in zip(identity.attributes, amask)
    ):
        raise IdentityMismatch("QE report ATTRIBUTES do not match the QE identity")
    for lv in sorted(identity.tcb_levels, key=lambda x: -x.isvsvn):
        if qe_report.isv_svn >= lv.isvsvn:
            return lv
    raise TcbNotSupported(f"QE ISVSVN {qe_report.isv_svn} is below every QE identity TCB level")


def _level_key(lv: TcbLevel) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
    return (lv.sgx_components, lv.pcesvn, lv.tdx_components or ())


def _sgx_matches(pck: PckExtensions, lv: TcbLevel) -> bool:
    return pck.pce_svn >= lv.pcesvn and all(p >= t for p, t in zip(pck.tcb_components, lv.sgx_components))


def _tdx_matches(tee_tcb_svn: bytes, lv: TcbLevel) -> bool:
    comps = lv.tdx_components
    if comps is None:
        return False
    start = 2 if tee_tcb_svn[1] > 0 else 0
    return all(tee_tcb_svn[i] >= comps[i] for i in range(start, 16))


def match_platform_level(tcb_info: TcbInfo, pck: PckExtensions, tee_tcb_svn: bytes | None) -> TcbLevel:
    """The first level (highest first) whose SGX components and PCESVN, and TDX components, the platform meets."""
    levels = sorted(tcb_info.tcb_levels, key=_level_key, reverse=True)
    for lv in levels:
        if not _sgx_matches(pck, lv):
            continue
        if tee_tcb_svn is None or _tdx_matches(tee_tcb_svn, lv):
            return lv
    raise TcbNotSupported("no TCB level in the TCB info matches the platform (TCB not supported)")


def select_module_identity(tcb_info: TcbInfo, td: TdReportBody) -> TdxModuleIdentity | None:
    """QVL 4.1.2.4.11: the TDX module the quote must come from, by module major version."""
    major = td.tee_tcb_svn[1]
    if major == 0:
        return tcb_info.tdx_module
    want = f"TDX_{major:02X}"
    for ident in tcb_info.tdx_module_identities:
        if ident.id.upper() == want:
            return ident
    raise TcbNotSupported(f"TCB info has no TDX module identity {want}")


def check_tdx_module(tcb_info: TcbInfo, td: TdReportBody) -> TdxModuleIdentity | None:
    ident = select_module_identity(tcb_info, td)
    if ident is None:
        raise CollateralInvalid("TDX TCB info lacks tdxModule")
    if td.mrsigner_seam != ident.mrsigner:
        raise IdentityMismatch("TDX module MRSIGNER_SEAM does not match the TCB info")
    mask = ident.attributes_mask
    if bytes(a & m for a, m in zip(td.seam_attributes, mask)) != bytes(a & m for a, m in zip(ident.attributes, mask)):
        raise IdentityMismatch("TDX module SEAM attributes do not match the TCB info")
    return ident if ident.tcb_levels else None


def _module_level(ident: TdxModuleIdentity, isvsvn: int) -> StatusWithAdvisory:
    for lv in sorted(ident.tcb_levels, key=lambda x: -x.isvsvn):
        if isvsvn >= lv.isvsvn:
            return StatusWithAdvisory(lv.status, lv.advisory_ids, lv.tcb_date)
    raise TcbNotSupported(f"TDX module ISVSVN {isvsvn} is below every level of {ident.id}")


def converge_out_of_date(platform: str, other: str) -> str:
    """Merge a component status (QE or TDX module) into the platform status, as QVL does."""
    if other == REVOKED:
        return REVOKED
    if other == OUT_OF_DATE:
        if platform in (UP_TO_DATE, SW_HARDENING_NEEDED):
            return OUT_OF_DATE
        if platform in (CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED):
            return OUT_OF_DATE_CONFIGURATION_NEEDED
    return platform


def _older(a: str | None, b: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def evaluate_platform(tcb_info: TcbInfo, pck: PckExtensions, tee_tcb_svn: bytes | None,
                      module: TdxModuleIdentity | None) -> StatusWithAdvisory:
    lv = match_platform_level(tcb_info, pck, tee_tcb_svn)
    out = StatusWithAdvisory(lv.status, lv.advisory_ids, lv.tcb_date)
    if module is not None and tee_tcb_svn is not None:
        m = _module_level(module, tee_tcb_svn[0])
        out = StatusWithAdvisory(converge_out_of_date(out.status, m.status), _union(out.advisory_ids, m.advisory_ids),
                                 _older(out.tcb_date, m.tcb_date))
    return out


def check_relaunch(launch: str, current: str) -> str:
    """QVL TDRelaunchCheck: an out-of-date TD on an updated module should be relaunched."""
    if launch not in (OUT_OF_DATE, OUT_OF_DATE_CONFIGURATION_NEEDED):
        return launch
    if current not in (UP_TO_DATE, SW_HARDENING_NEEDED, CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED):
        return launch
    needs_config = launch == OUT_OF_DATE_CONFIGURATION_NEEDED or current in (
        CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED)
    return TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED if needs_config else TD_RELAUNCH_ADVISED


def evaluate_tcb(tcb_info: TcbInfo, pck: PckExtensions, body: SgxReportBody | TdReportBody,
                 qe_level: EnclaveTcbLevel) -> StatusWithAdvisory:
    """Platform (and TDX module) status merged with the QE status; advisory IDs are the union."""
    if isinstance(body, TdReportBody):
        module = check_tdx_module(tcb_info, body)
        platform = evaluate_platform(tcb_info, pck, body.tee_tcb_svn, module)
        if body.tee_tcb_svn2 is not None and platform.status in (OUT_OF_DATE, OUT_OF_DATE_CONFIGURATION_NEEDED):
            try:
                current: StatusWithAdvisory | None = evaluate_platform(
                    tcb_info, pck, body.tee_tcb_svn2, select_module_identity_for(tcb_info, body.tee_tcb_svn2))
            except TcbNotSupported:
                current = None
            if current is not None:
                platform = StatusWithAdvisory(check_relaunch(platform.status, current.status),
                                              platform.advisory_ids, platform.tcb_date)
    else:
        platform = evaluate_platform(tcb_info, pck, None, None)
    status = converge_out_of_date(platform.status, qe_level.status)
    return StatusWithAdvisory(status, _union(platform.advisory_ids, qe_level.advisory_ids), platform.tcb_date)


def select_module_identity_for(tcb_info: TcbInfo, tee_tcb_svn: bytes) -> TdxModuleIdentity | None:
    major = tee_tcb_svn[1]
    if major == 0:
        return None
    want = f"TDX_{major:02X}"
    for ident in tcb_info.tdx_module_identities:
        if ident.id.upper() == want:
            return ident if ident.tcb_levels else None
    raise TcbNotSupported(f"TCB info has no TDX module identity {want}")
