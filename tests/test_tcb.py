"""TCB evaluation rules of Intel's QVL, each with the case that makes it fail or change."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from eaa.errors import CollateralInvalid, IdentityMismatch, TcbNotSupported
from eaa.formats.enclave_identity import EnclaveIdentity, EnclaveTcbLevel
from eaa.formats.pck_extensions import PckExtensions
from eaa.formats.report_body import SgxReportBody
from eaa.formats.tcb_info import ModuleTcbLevel, TcbInfo, TcbLevel, TdxModuleIdentity
from eaa.formats.td_report import TdReportBody
from eaa.verify import tcb

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def level(sgx: int, pce: int, status: str, tdx: int | None = None, adv: tuple[str, ...] = (),
          date: str = "2024-01-01T00:00:00Z") -> TcbLevel:
    return TcbLevel((sgx,) * 16, pce, None if tdx is None else (tdx,) * 16, date, status, adv)


def info(levels: list[TcbLevel], tee: str = "SGX", module: TdxModuleIdentity | None = None,
         identities: tuple[TdxModuleIdentity, ...] = ()) -> TcbInfo:
    return TcbInfo(tee, 3, T0, T0, b"\x00" * 6, b"\x00\x00", 0, 1, module, identities, tuple(levels), b"{}",
                   b"\x00" * 64)


def pck(svn: int, pce: int) -> PckExtensions:
    return PckExtensions(None, (svn,) * 16, pce, b"\x00" * 16, b"\x00\x00", b"\x00" * 6, 0, None, {})


def td(svn: bytes, svn2: bytes | None = None, signer: bytes = b"\x00" * 48) -> TdReportBody:
    return TdReportBody(3 if svn2 else 2, svn, b"\x00" * 48, signer, b"\x00" * 8, b"\x00" * 8, b"\x00" * 8,
                        b"\x00" * 48, b"\x00" * 48, b"\x00" * 48, b"\x00" * 48, (b"\x00" * 48,) * 4, b"\x00" * 64,
                        svn2, b"\x00" * 48 if svn2 else None, None, b"")


QE_UP = EnclaveTcbLevel(8, "2024-01-01T00:00:00Z", "UpToDate", ())


def test_highest_matching_level_wins_regardless_of_order() -> None:
    levels = [level(2, 5, "OutOfDate", adv=("SA-1",)), level(5, 10, "UpToDate"), level(4, 10, "SWHardeningNeeded")]
    assert tcb.match_platform_level(info(levels), pck(5, 10), None).status == "UpToDate"
    assert tcb.match_platform_level(info(levels), pck(4, 12), None).status == "SWHardeningNeeded"
    assert tcb.match_platform_level(info(levels), pck(5, 9), None).status == "OutOfDate"


def test_one_component_below_fails_the_level() -> None:
    p = pck(5, 10)
    p = replace(p, tcb_components=(5,) * 15 + (4,))
    with pytest.raises(TcbNotSupported):
        tcb.match_platform_level(info([level(5, 10, "UpToDate")]), p, None)


def test_pcesvn_below_every_level_is_not_supported() -> None:
    with pytest.raises(TcbNotSupported):
        tcb.match_platform_level(info([level(1, 10, "UpToDate")]), pck(9, 9), None)


def test_tdx_components_and_index_two_rule() -> None:
    ti = info([level(1, 1, "UpToDate", tdx=3), level(1, 1, "OutOfDate", tdx=1)], tee="TDX")
    svn = bytes([3] * 16)
    assert tcb.match_platform_level(ti, pck(1, 1), svn).status == "UpToDate"
    low01 = bytes([0, 0] + [3] * 14)  # module version 0: bytes 0-1 count
    with pytest.raises(TcbNotSupported):
        tcb.match_platform_level(ti, pck(1, 1), low01)
    skip01 = bytes([0, 1] + [3] * 14)  # module version 1: comparison starts at index 2
    assert tcb.match_platform_level(ti, pck(1, 1), skip01).status == "UpToDate"


def test_qe_out_of_date_converges() -> None:
    assert tcb.converge_out_of_date("UpToDate", "OutOfDate") == "OutOfDate"
    assert tcb.converge_out_of_date("SWHardeningNeeded", "OutOfDate") == "OutOfDate"
    assert tcb.converge_out_of_date("ConfigurationNeeded", "OutOfDate") == "OutOfDateConfigurationNeeded"
    assert tcb.converge_out_of_date("ConfigurationAndSWHardeningNeeded", "OutOfDate") == \
        "OutOfDateConfigurationNeeded"
    assert tcb.converge_out_of_date("UpToDate", "Revoked") == "Revoked"
    assert tcb.converge_out_of_date("ConfigurationNeeded", "UpToDate") == "ConfigurationNeeded"


MOD01 = TdxModuleIdentity("TDX_01", b"\x00" * 48, b"\x00" * 8, b"\xff" * 8,
                          (ModuleTcbLevel(5, "2024-01-01T00:00:00Z", "UpToDate", ()),
                           ModuleTcbLevel(0, "2023-01-01T00:00:00Z", "OutOfDate", ("SA-MOD",))))
BASE = TdxModuleIdentity("", b"\x00" * 48, b"\x00" * 8, b"\xff" * 8, ())


def relaunch_info(up_status: str = "UpToDate") -> TcbInfo:
    return info([level(1, 1, up_status, tdx=3), level(1, 1, "OutOfDate", tdx=1, adv=("SA-9",))], tee="TDX",
                module=BASE, identities=(MOD01,))


def test_td15_relaunch_advised_when_the_current_module_is_latest() -> None:
    # Launched on module 1.1 (out of date), now running module 1.5 with the latest TDX SVNs.
    launch = bytes([1, 1] + [1] * 14)
    out = tcb.evaluate_tcb(relaunch_info(), pck(1, 1), td(launch, bytes([5, 1, 3] + [3] * 13)), QE_UP)
    assert out.status == "TDRelaunchAdvised" and set(out.advisory_ids) == {"SA-9", "SA-MOD"}
    # A configuration-needed SGX level turns it into ...ConfigurationNeeded.
    out = tcb.evaluate_tcb(relaunch_info("ConfigurationNeeded"), pck(1, 1),
                           td(launch, bytes([5, 1, 3] + [3] * 13)), QE_UP)
    assert out.status == "TDRelaunchAdvisedConfigurationNeeded"


@pytest.mark.parametrize("svn2,qe", [
    (bytes([4, 1, 3] + [3] * 13), QE_UP),  # current module below the latest module level
    (bytes([5, 1, 2] + [3] * 13), QE_UP),  # TDX component 2 below the latest level
    (bytes([5, 1, 3] + [3] * 13), EnclaveTcbLevel(1, "d", "OutOfDate", ())),  # an out-of-date QE: no advice
])
def test_td15_no_relaunch(svn2: bytes, qe: EnclaveTcbLevel) -> None:
    out = tcb.evaluate_tcb(relaunch_info(), pck(1, 1), td(bytes([1, 1] + [1] * 14), svn2), qe)
    assert out.status == "OutOfDate"


def test_td15_relaunch_needs_the_module_identity_of_tee_tcb_svn2() -> None:
    with pytest.raises(IdentityMismatch):
        tcb.evaluate_tcb(relaunch_info(), pck(1, 1), td(bytes([1, 1] + [1] * 14), bytes([5, 2, 3] + [3] * 13)),
                         QE_UP)


def test_td15_relaunch_with_module_version_zero() -> None:
    def lv(n: int, status: str) -> TcbLevel:
        return TcbLevel((1,) * 16, 1, (n, 0) + (n,) * 14, "2024-01-01T00:00:00Z", status, ())

    ti = info([lv(3, "UpToDate"), lv(1, "OutOfDate")], tee="TDX", module=BASE, identities=(MOD01,))
    # Module version 0 has no TCB levels of its own (status UpToDate), so no relaunch is advised.
    out = tcb.evaluate_tcb(ti, pck(1, 1), td(bytes([1] + [0] + [1] * 14), bytes([3, 0, 3] + [3] * 13)), QE_UP)
    assert out.status == "OutOfDate"


def test_tdx_module_identity_and_levels() -> None:
    mod = TdxModuleIdentity("TDX_01", b"\x11" * 48, b"\x00" * 8, b"\xff" * 8,
                            (ModuleTcbLevel(5, "2024-01-01T00:00:00Z", "UpToDate", ()),
                             ModuleTcbLevel(2, "2023-01-01T00:00:00Z", "OutOfDate", ("SA-M",))))
    base = TdxModuleIdentity("", b"\x00" * 48, b"\x00" * 8, b"\xff" * 8, ())
    ti = info([level(1, 1, "UpToDate", tdx=0)], tee="TDX", module=base, identities=(mod,))
    ok = td(bytes([5, 1] + [0] * 14), signer=b"\x11" * 48)
    assert tcb.evaluate_tcb(ti, pck(1, 1), ok, QE_UP).status == "UpToDate"
    old = td(bytes([3, 1] + [0] * 14), signer=b"\x11" * 48)
    out = tcb.evaluate_tcb(ti, pck(1, 1), old, QE_UP)
    assert out.status == "OutOfDate" and out.advisory_ids == ("SA-M",)
    with pytest.raises(TcbNotSupported):
        tcb.evaluate_tcb(ti, pck(1, 1), td(bytes([1, 1] + [0] * 14), signer=b"\x11" * 48), QE_UP)
    with pytest.raises(IdentityMismatch):
        tcb.evaluate_tcb(ti, pck(1, 1), td(bytes([5, 1] + [0] * 14), signer=b"\x12" * 48), QE_UP)
    with pytest.raises(IdentityMismatch, match="TDX_02"):  # no TDX_02 identity: QVL's TDX_MODULE_MISMATCH
        tcb.evaluate_tcb(ti, pck(1, 1), td(bytes([5, 2] + [0] * 14), signer=b"\x11" * 48), QE_UP)
    with pytest.raises(IdentityMismatch):  # version 0 uses tdxModule, whose signer is zero
        tcb.evaluate_tcb(ti, pck(1, 1), td(bytes([5, 0] + [0] * 14), signer=b"\x11" * 48), QE_UP)


def _qe_report(**kw: object) -> SgxReportBody:
    fields = dict(cpu_svn=b"\x00" * 16, misc_select=0, isv_ext_prod_id=b"\x00" * 16, attributes=b"\x11" + b"\x00" * 15,
                  mr_enclave=b"\x00" * 32, mr_signer=b"\xaa" * 32, config_id=b"\x00" * 64, isv_prod_id=1, isv_svn=8,
                  config_svn=0, isv_family_id=b"\x00" * 16, report_data=b"\x00" * 64, raw=b"")
    fields.update(kw)
    return SgxReportBody(**fields)  # type: ignore[arg-type]


def _identity() -> EnclaveIdentity:
    return EnclaveIdentity("QE", 2, T0, T0, 1, 0, 0xFFFFFFFF, b"\x11" + b"\x00" * 15, b"\xfb" + b"\xff" * 15,
                           b"\xaa" * 32, 1, (EnclaveTcbLevel(8, "d", "UpToDate", ()),
                                             EnclaveTcbLevel(6, "d", "OutOfDate", ("SA-QE",))), b"", b"")


def test_qe_identity_checks() -> None:
    ident = _identity()
    assert tcb.check_qe_identity(_qe_report(), ident).status == "UpToDate"
    assert tcb.check_qe_identity(_qe_report(isv_svn=7), ident).status == "OutOfDate"
    with pytest.raises(TcbNotSupported):
        tcb.check_qe_identity(_qe_report(isv_svn=5), ident)
    with pytest.raises(IdentityMismatch, match="MRSIGNER"):
        tcb.check_qe_identity(_qe_report(mr_signer=b"\xab" * 32), ident)
    with pytest.raises(IdentityMismatch, match="ISVPRODID"):
        tcb.check_qe_identity(_qe_report(isv_prod_id=2), ident)
    with pytest.raises(IdentityMismatch, match="MISCSELECT"):
        tcb.check_qe_identity(_qe_report(misc_select=1), ident)
    with pytest.raises(IdentityMismatch, match="ATTRIBUTES"):
        tcb.check_qe_identity(_qe_report(attributes=b"\x13" + b"\x00" * 15), ident)
    # A masked-out bit (0x04 of byte 0) may differ.
    assert tcb.check_qe_identity(_qe_report(attributes=b"\x15" + b"\x00" * 15), ident).status == "UpToDate"


def test_qe_status_merges_with_platform_and_advisories_union() -> None:
    ti = info([level(1, 1, "SWHardeningNeeded", adv=("SA-P",))])
    out = tcb.evaluate_tcb(ti, pck(1, 1), _qe_report(), EnclaveTcbLevel(6, "d", "OutOfDate", ("SA-QE", "SA-P")))
    assert out.status == "OutOfDate" and out.advisory_ids == ("SA-P", "SA-QE")


def test_unknown_status_strings_rejected() -> None:
    with pytest.raises(CollateralInvalid):
        tcb.validate_statuses(info([level(1, 1, "Fine")]), _identity())
    bad = replace(_identity(), tcb_levels=(EnclaveTcbLevel(1, "d", "SWHardeningNeeded", ()),))
    with pytest.raises(CollateralInvalid):
        tcb.validate_statuses(info([level(1, 1, "UpToDate")]), bad)


@pytest.mark.parametrize("report,published,mask", [
    (b"\x01" + b"\x00" * 7, b"\x00" * 8, b"\x00" * 8),  # a bit the mask hides: QVL compares unmasked
    (b"\x01" + b"\x00" * 7, b"\x01" + b"\x00" * 7, b"\xff" * 8),  # equal, but QVL requires zero
    (b"\x00" * 8, b"\x01" + b"\x00" * 7, b"\x00" * 8),  # a published attribute no report can match
])
def test_seam_attributes_must_be_zero_and_equal_unmasked(report: bytes, published: bytes, mask: bytes) -> None:
    """QVL 4.1.2.4.11.2 (the TCB info's attributesMask is read and not applied)."""
    ti = info([level(1, 1, "UpToDate", tdx=1)], tee="TDX", module=replace(BASE, attributes=published,
                                                                          attributes_mask=mask))
    with pytest.raises(IdentityMismatch, match="SEAM attributes") as e:
        tcb.evaluate_tcb(ti, pck(1, 1), replace(td(bytes([1, 0] + [1] * 14)), seam_attributes=report), QE_UP)
    assert e.value.check == "TDX_MODULE"


@pytest.mark.parametrize("qe_status", ["ConfigurationNeeded", "OutOfDateConfigurationNeeded"])
def test_a_qe_level_neither_up_to_date_nor_revoked_counts_as_out_of_date(qe_status: str) -> None:
    """QVL EnclaveReportVerifier 4.1.2.9.10: any other QE level status is ISVSVN_OUT_OF_DATE."""
    qe = EnclaveTcbLevel(8, "d", qe_status, ())
    assert tcb.evaluate_tcb(info([level(1, 1, "UpToDate")]), pck(1, 1), _qe_report(), qe).status == "OutOfDate"
    assert tcb.evaluate_tcb(info([level(1, 1, "ConfigurationNeeded")]), pck(1, 1), _qe_report(), qe).status == \
        "OutOfDateConfigurationNeeded"
    # ... and, out of date, it rules out the TD 1.5 relaunch advice.
    out = tcb.evaluate_tcb(relaunch_info(), pck(1, 1), td(bytes([1, 1] + [1] * 14), bytes([5, 1, 3] + [3] * 13)), qe)
    assert out.status == "OutOfDate"


def test_qe_tcb_level_is_the_first_met_in_published_order() -> None:
    """QVL EnclaveIdentityV2::getTcbStatus walks the levels as published; it does not sort them."""
    ident = replace(_identity(), tcb_levels=(EnclaveTcbLevel(2, "d", "OutOfDate", ()),
                                             EnclaveTcbLevel(8, "d", "UpToDate", ())))
    assert tcb.check_qe_identity(_qe_report(isv_svn=8), ident).status == "OutOfDate"


def test_qe_miscselect_and_attributes_are_compared_with_the_published_values_unmasked() -> None:
    """QVL: (report & mask) != identity value; an identity value with bits outside its mask matches nothing."""
    with pytest.raises(IdentityMismatch, match="MISCSELECT"):
        tcb.check_qe_identity(_qe_report(misc_select=0), replace(_identity(), miscselect=1, miscselect_mask=0))
    with pytest.raises(IdentityMismatch, match="ATTRIBUTES"):  # 0x04 is outside the mask 0xfb
        tcb.check_qe_identity(_qe_report(attributes=b"\x15" + b"\x00" * 15),
                              replace(_identity(), attributes=b"\x15" + b"\x00" * 15))
