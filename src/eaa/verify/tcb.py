"""TCB evaluation as Intel's QVL does it: QE identity level, platform TCB level, TDX module, status merge.

References: QVL ``Checks/TcbLevelCheck.cpp``, ``Verifiers/EnclaveReportVerifier.cpp``,
``Checks/TDRelaunchCheck.cpp``; dcap-qvl ``src/verify.rs`` (shared/docs/dcap-reference.md §2.2).
All functions here are pure: parsed structures in, a status or a typed error out.
"""

from __future__ import annotations

from operator import ge
from typing import TYPE_CHECKING, NamedTuple

from ..checks import Check
from ..errors import CollateralInvalid, IdentityMismatch, TcbNotSupported
from ..formats.enclave_identity import EnclaveIdentity, EnclaveTcbLevel
from ..formats.pck_extensions import PckExtensions
from ..formats.report_body import SgxReportBody
from ..formats.tcb_info import ModuleTcbLevel, TcbInfo, TcbLevel, TdxModuleIdentity
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

if TYPE_CHECKING:
    from ..formats.td_report import TdReportBody

TCB_INFO_STATUSES = frozenset({
    UP_TO_DATE, SW_HARDENING_NEEDED, CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED, OUT_OF_DATE,
    OUT_OF_DATE_CONFIGURATION_NEEDED, REVOKED,
})
TDX_MODULE_STATUSES = frozenset({UP_TO_DATE, OUT_OF_DATE, REVOKED})
QE_IDENTITY_STATUSES = frozenset({UP_TO_DATE, OUT_OF_DATE, CONFIGURATION_NEEDED, OUT_OF_DATE_CONFIGURATION_NEEDED,
                                  REVOKED})


# A NamedTuple, not a dataclass: an internal record, and defining a frozen dataclass costs a one-shot
# command's start several times more.
class StatusWithAdvisory(NamedTuple):
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
            raise CollateralInvalid(f"TCB info has unknown tcbStatus {lv.status!r}", check=Check.COLLATERAL_STATUS)
    for ident in tcb_info.tdx_module_identities:
        for mlv in ident.tcb_levels:
            if mlv.status not in TDX_MODULE_STATUSES:
                raise CollateralInvalid(f"TDX module identity {ident.id} has unknown tcbStatus {mlv.status!r}",
                                        check=Check.COLLATERAL_STATUS)
    for qlv in qe_identity.tcb_levels:
        if qlv.status not in QE_IDENTITY_STATUSES:
            raise CollateralInvalid(f"QE identity has unknown tcbStatus {qlv.status!r}", check=Check.COLLATERAL_STATUS)


def check_qe_identity(qe_report: SgxReportBody, identity: EnclaveIdentity) -> EnclaveTcbLevel:
    """QVL EnclaveReportVerifier: signer, product, MISCSELECT/ATTRIBUTES, then the QE TCB level.

    As QVL, the report's MISCSELECT and ATTRIBUTES are masked and must then equal the identity's values as
    published (an identity value with bits outside its own mask matches no report), and the TCB level is
    the first one in the identity's own order whose ISVSVN the report meets (QVL's
    ``EnclaveIdentityV2::getTcbStatus`` walks the levels as published, it does not sort them)."""
    if qe_report.mr_signer != identity.mrsigner:
        raise IdentityMismatch("QE report MRSIGNER does not match the QE identity", check=Check.QE_MRSIGNER)
    if qe_report.isv_prod_id != identity.isvprodid:
        raise IdentityMismatch("QE report ISVPRODID does not match the QE identity", check=Check.QE_ISVPRODID)
    if (qe_report.misc_select & identity.miscselect_mask) != identity.miscselect:
        raise IdentityMismatch("QE report MISCSELECT does not match the QE identity", check=Check.QE_MISCSELECT)
    amask = int.from_bytes(identity.attributes_mask, "little")
    if int.from_bytes(qe_report.attributes, "little") & amask != int.from_bytes(identity.attributes, "little"):
        raise IdentityMismatch("QE report ATTRIBUTES do not match the QE identity", check=Check.QE_ATTRIBUTES)
    for lv in identity.tcb_levels:
        if qe_report.isv_svn >= lv.isvsvn:
            return lv
    raise TcbNotSupported(f"QE ISVSVN {qe_report.isv_svn} is below every QE identity TCB level",
                          check=Check.QE_TCB_LEVEL)


def _level_key(lv: TcbLevel) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
    return (lv.sgx_components, lv.pcesvn, lv.tdx_components or ())


def _sgx_matches(pck: PckExtensions, lv: TcbLevel) -> bool:
    # Both sides hold exactly 16 components (the parsers check), so map() pairs them all.
    return pck.pce_svn >= lv.pcesvn and all(map(ge, pck.tcb_components, lv.sgx_components))


def _tdx_matches(tee_tcb_svn: bytes, lv: TcbLevel) -> bool:
    comps = lv.tdx_components
    if comps is None:
        return False
    start = 2 if tee_tcb_svn[1] > 0 else 0
    return all(map(ge, tee_tcb_svn[start:16], comps[start:16]))


def sorted_levels(tcb_info: TcbInfo) -> list[TcbLevel]:
    """Highest first, as QVL's ``std::set<TcbLevel, std::greater>``."""
    return sorted(tcb_info.tcb_levels, key=_level_key, reverse=True)


def match_levels(tcb_info: TcbInfo, pck: PckExtensions,
                 tee_tcb_svn: bytes | None) -> tuple[TcbLevel | None, TcbLevel | None]:
    """QVL ``matchTcbLevels``: the first level the platform's SGX TCB meets, and (TDX) the first that its
    TEE TCB meets as well."""
    sgx_level = None
    for lv in sorted_levels(tcb_info):
        if not _sgx_matches(pck, lv):
            continue
        if tee_tcb_svn is None:
            return lv, None
        if sgx_level is None:
            sgx_level = lv
        if _tdx_matches(tee_tcb_svn, lv):
            return sgx_level, lv
    return sgx_level, None


def match_platform_level(tcb_info: TcbInfo, pck: PckExtensions, tee_tcb_svn: bytes | None) -> TcbLevel:
    """The level that decides the platform status: SGX's, or for TDX the first meeting both TCBs."""
    sgx_level, tdx_level = match_levels(tcb_info, pck, tee_tcb_svn)
    level = sgx_level if tee_tcb_svn is None else tdx_level
    if level is None:
        raise TcbNotSupported("no TCB level in the TCB info matches the platform (TCB not supported)",
                              check=Check.TCB_LEVEL)
    return level


def find_module_identity(tcb_info: TcbInfo, major: int) -> TdxModuleIdentity:
    want = f"TDX_{major:02X}"
    for ident in tcb_info.tdx_module_identities:
        if ident.id.upper() == want:
            return ident
    raise IdentityMismatch(f"TDX module mismatch: the TCB info has no identity {want}", check=Check.TDX_MODULE)


def check_tdx_module(tcb_info: TcbInfo, td: TdReportBody) -> TdxModuleIdentity | None:
    """QVL 4.1.2.4.11: the module signer and attributes (from ``tdxModule`` for major version 0, else
    from ``tdxModuleIdentities``); returns the identity whose TCB levels grade the module, if any."""
    major = td.tee_tcb_svn[1]
    ident = tcb_info.tdx_module if major == 0 else find_module_identity(tcb_info, major)
    if ident is None:
        raise CollateralInvalid("TDX TCB info lacks tdxModule", check=Check.TDX_MODULE)
    if td.mrsigner_seam != ident.mrsigner:
        raise IdentityMismatch("TDX module MRSIGNER_SEAM does not match the TCB info", check=Check.TDX_MODULE)
    # QVL 4.1.2.4.11.2 compares every byte unmasked and requires it zero: no SEAM attribute is defined yet, so
    # one set in the report (or published in the TCB info) is a module QVL does not know how to judge.
    if td.seam_attributes != ident.attributes or any(td.seam_attributes):
        raise IdentityMismatch("TDX module SEAM attributes are not zero and equal to the TCB info's",
                               check=Check.TDX_MODULE)
    return None if major == 0 else ident


def _module_levels(ident: TdxModuleIdentity) -> list[ModuleTcbLevel]:
    return sorted(ident.tcb_levels, key=lambda x: -x.isvsvn)


def module_status(ident: TdxModuleIdentity | None, isvsvn: int) -> StatusWithAdvisory:
    """QVL ``checkTdxModuleTcbStatus``: UpToDate for module version 0, else the first module level met."""
    if ident is None:
        return StatusWithAdvisory(UP_TO_DATE, (), None)
    for lv in _module_levels(ident):
        if isvsvn >= lv.isvsvn:
            return StatusWithAdvisory(lv.status, lv.advisory_ids, lv.tcb_date)
    raise TcbNotSupported(f"TDX module ISVSVN {isvsvn} is below every level of {ident.id}",
                          check=Check.TDX_MODULE_TCB_LEVEL)


def _qe_grade(status: str) -> str:
    """QVL EnclaveReportVerifier 4.1.2.9.9-10: a QE level that is not UpToDate is either revoked or, whatever
    else it says (ConfigurationNeeded, OutOfDateConfigurationNeeded), out of date."""
    return status if status in (UP_TO_DATE, REVOKED) else OUT_OF_DATE


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


_CONFIG_NEEDED = (CONFIGURATION_NEEDED, OUT_OF_DATE_CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED,
                  TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED)


def check_for_relaunch(tee_tcb_svn2: bytes, tcb_info: TcbInfo, sgx_status: str, tdx_status: str,
                       module: str, qe: str) -> str:
    """QVL ``checkForRelaunch`` (TD 1.5): a TD launched on an out-of-date module whose current module
    (TEE_TCB_SVN2) meets the latest TCB level should be relaunched rather than called out of date."""
    if _qe_grade(qe) != UP_TO_DATE:
        return tdx_status
    if sgx_status not in (UP_TO_DATE, SW_HARDENING_NEEDED, CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED):
        return tdx_status
    if tdx_status not in (OUT_OF_DATE, OUT_OF_DATE_CONFIGURATION_NEEDED) or module != OUT_OF_DATE:
        return tdx_status
    levels = sorted_levels(tcb_info)
    latest = levels[0].tdx_components
    if latest is None:
        raise TcbNotSupported("the TCB info has no TDX TCB level", check=Check.TCB_LEVEL)
    if tee_tcb_svn2[1] == 0:
        ready = tee_tcb_svn2[0] >= latest[0] and tee_tcb_svn2[2] >= latest[2]
    else:
        ident2 = find_module_identity(tcb_info, tee_tcb_svn2[1])
        module_levels = _module_levels(ident2)
        if not module_levels:
            raise TcbNotSupported(f"TDX module identity {ident2.id} has no TCB level", check=Check.TDX_MODULE_TCB_LEVEL)
        ready = tee_tcb_svn2[0] >= module_levels[0].isvsvn and tee_tcb_svn2[2] >= latest[2]
    if not ready:
        return tdx_status
    if sgx_status in _CONFIG_NEEDED or tdx_status in _CONFIG_NEEDED:
        return TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED
    return TD_RELAUNCH_ADVISED


def evaluate_tcb(tcb_info: TcbInfo, pck: PckExtensions, body: SgxReportBody | TdReportBody,
                 qe_level: EnclaveTcbLevel) -> StatusWithAdvisory:
    """QVL ``checkTcbLevel``: platform (and TDX module, and TD relaunch) status merged with the QE status;
    advisory IDs are the union of the levels used."""
    tdx = not isinstance(body, SgxReportBody) and tcb_info.version >= 3 and tcb_info.id == "TDX"
    qe = _qe_grade(qe_level.status)
    if not tdx:
        level = match_platform_level(tcb_info, pck, None)
        status = converge_out_of_date(level.status, qe)
        return StatusWithAdvisory(status, _union(level.advisory_ids, qe_level.advisory_ids), level.tcb_date)
    assert not isinstance(body, SgxReportBody)
    ident = check_tdx_module(tcb_info, body)
    sgx_level, tdx_level = match_levels(tcb_info, pck, body.tee_tcb_svn)
    if sgx_level is None or tdx_level is None:
        raise TcbNotSupported("no TCB level in the TCB info matches the platform (TCB not supported)",
                              check=Check.TCB_LEVEL)
    mod = module_status(ident, body.tee_tcb_svn[0])
    status = converge_out_of_date(tdx_level.status, mod.status)
    advisories = _union(tdx_level.advisory_ids, mod.advisory_ids)
    tcb_date = _older(tdx_level.tcb_date, mod.tcb_date)
    if status == REVOKED:
        return StatusWithAdvisory(status, advisories, tcb_date)
    if body.tee_tcb_svn2 is not None:
        status = check_for_relaunch(body.tee_tcb_svn2, tcb_info, sgx_level.status, status, mod.status, qe)
    status = converge_out_of_date(status, qe)
    return StatusWithAdvisory(status, _union(advisories, qe_level.advisory_ids), tcb_date)
