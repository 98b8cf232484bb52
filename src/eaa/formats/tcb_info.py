"""TCB info v2 (SGX, PCS API v3) and v3 (SGX and TDX, PCS API v4), with the exact signed body bytes."""

from __future__ import annotations

from datetime import datetime
from operator import itemgetter
from typing import Any

from ..errors import FormatError
from ..records import record
from .enclave_identity import EnclaveTcbLevel, isv_levels
from .signed_json import advisory_ids, get, get_hex, load_body, parse_time, split_signed, svn, valid_times


@record(slots=True)
class TcbLevel:
    """One TCB level of TCB info: the SVNs a platform must reach for it, the status it then has, and the advisories."""

    sgx_components: tuple[int, ...]
    pcesvn: int
    tdx_components: tuple[int, ...] | None
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


# A TDX module TCB level has the shape of an enclave identity level: an ISV SVN, a date, a status.
ModuleTcbLevel = EnclaveTcbLevel


@record(slots=True)
class TdxModuleIdentity:
    """A TDX module's expected MRSIGNER and attributes, with its TCB levels, from TCB info's ``tdxModule`` or
    ``tdxModuleIdentities``."""

    id: str
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes
    tcb_levels: tuple[ModuleTcbLevel, ...]


@record(slots=True)
class TcbInfo:
    """Intel's signed TCB info for one FMSPC, decoded, with the exact body bytes and the signature over them."""

    id: str  # "SGX" or "TDX" (v2 has no id: "SGX")
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int
    tdx_module: TdxModuleIdentity | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]
    tcb_levels: tuple[TcbLevel, ...]
    body: bytes  # exact signed bytes
    signature: bytes

    @classmethod
    def from_response(cls, text: str | bytes) -> TcbInfo:
        body, sig = split_signed(text, "tcbInfo")
        return cls.from_body(body, sig)

    @classmethod
    def from_body(cls, body: str | bytes, signature: bytes, *, authenticated: bool = False) -> TcbInfo:
        obj = load_body(body, authenticated=authenticated, what="tcbInfo")
        w = "tcbInfo"
        version = get(obj, "version", int, w)
        if version not in (2, 3):
            raise FormatError(f"unsupported TCB info version {version}", field="tcbInfo.version")
        tee_id = get(obj, "id", str, w) if version == 3 else obj.get("id", "SGX")
        if tee_id not in ("SGX", "TDX"):
            raise FormatError(f"unknown TCB info id {tee_id!r}", field="tcbInfo.id")
        if version == 2 and tee_id != "SGX":
            raise FormatError("TCB info v2 is SGX only", field="tcbInfo.id")
        raw_levels = get(obj, "tcbLevels", list, w)
        levels = _levels_fast(raw_levels, version, tee_id)
        if levels is None:  # something is off: find it and name it
            levels = tuple(_level(lv, version, tee_id, i) for i, lv in enumerate(raw_levels))
        if not levels:
            raise FormatError("TCB info has no TCB levels", field="tcbInfo.tcbLevels")
        if len({(lv.sgx_components, lv.pcesvn, lv.tdx_components) for lv in levels}) != len(levels):
            # QVL keeps the levels in a set and refuses a second one equal to the first (whatever its status)
            raise FormatError("TCB info has two TCB levels with the same SVNs", field="tcbInfo.tcbLevels")
        module = None
        identities: tuple[TdxModuleIdentity, ...] = ()
        if tee_id == "SGX" and ("tdxModule" in obj or "tdxModuleIdentities" in obj):
            raise FormatError("SGX TCB info carries a TDX module", field="tcbInfo.tdxModule")
        if tee_id == "TDX":
            m = get(obj, "tdxModule", dict, w)
            module = TdxModuleIdentity(
                "", get_hex(m, "mrsigner", 48, "tdxModule"), get_hex(m, "attributes", 8, "tdxModule"),
                get_hex(m, "attributesMask", 8, "tdxModule"), ())
            mids = obj.get("tdxModuleIdentities", [])
            if not isinstance(mids, list):
                raise FormatError("tdxModuleIdentities must be a list", field="tcbInfo.tdxModuleIdentities")
            identities = tuple(_module_identity(x, i) for i, x in enumerate(mids))
            if "tdxModuleIdentities" in obj and not identities:
                raise FormatError("tdxModuleIdentities is empty", field="tcbInfo.tdxModuleIdentities")
        if len(signature) != 64:
            raise FormatError("TCB info signature must be 64 bytes", field="signature")
        tcb_type = get(obj, "tcbType", int, w)
        if tcb_type != 0:  # QVL 4.1.2.7.4: the only type whose components it knows how to compare
            raise FormatError(f"unsupported tcbType {tcb_type}", field="tcbInfo.tcbType")
        return cls(
            tee_id, version, parse_time(get(obj, "issueDate", str, w), "tcbInfo.issueDate"),
            parse_time(get(obj, "nextUpdate", str, w), "tcbInfo.nextUpdate"), get_hex(obj, "fmspc", 6, w),
            get_hex(obj, "pceId", 2, w), tcb_type, get(obj, "tcbEvaluationDataNumber", int, w),
            module, identities, levels, body.encode("utf-8") if isinstance(body, str) else bytes(body),
            bytes(signature),
        )


def _components(lst: Any, field: str) -> tuple[int, ...]:
    if not isinstance(lst, list) or len(lst) != 16:
        raise FormatError("expected 16 TCB components", field=field)
    try:
        out = tuple([c["svn"] for c in lst])
    except (TypeError, KeyError):
        raise FormatError("TCB component lacks 'svn'", field=field) from None
    if not _all_naturals(out):
        raise FormatError("SVN must be a non-negative integer", field=field)
    if max(out) > 255:
        raise FormatError("a TCB component SVN is one byte (0-255)", field=field)
    return out


def _all_naturals(values: tuple[Any, ...]) -> bool:
    """Every value a non-negative int (not bool); C-level checks, as this runs for every TCB level."""
    return not values or (set(map(type, values)) == {int} and min(values) >= 0)


_svn_of = itemgetter("svn")


def _levels_fast(raw: list[Any], version: int, tee_id: str) -> tuple[TcbLevel, ...] | None:
    """All levels of well-formed TCB info, or None for :func:`_level` to find what is wrong.

    Reads fields directly and checks every SVN of every level in one pass: a cold verification parses
    Intel's TCB info on every call, and per-field checks would cost more than the evaluation itself.
    """
    levels = []
    svns: list[Any] = []  # component SVNs (one byte each in the PCK certificate and TEE_TCB_SVN)
    pces: list[Any] = []
    strings: list[Any] = []
    dates: list[Any] = []
    try:
        for lv in raw:
            tcb = lv["tcb"]
            if version == 2:
                sgx = tuple(map(tcb.__getitem__, _V2_KEYS))
                tdx = None
            else:
                comps = tcb["sgxtcbcomponents"]
                sgx = tuple(map(_svn_of, comps))
                if type(comps) is not list or len(sgx) != 16:
                    return None
                if tee_id == "TDX":
                    comps = tcb["tdxtcbcomponents"]
                    tdx = tuple(map(_svn_of, comps))
                    if type(comps) is not list or len(tdx) != 16:
                        return None
                    svns += tdx
                else:
                    tdx = None
            pcesvn, status, date = tcb["pcesvn"], lv["tcbStatus"], lv["tcbDate"]
            adv = lv.get("advisoryIDs", ())
            if type(adv) is list:
                strings += adv
            elif adv != ():
                return None
            svns += sgx
            pces.append(pcesvn)
            strings.append(status)
            dates.append(date)
            levels.append(TcbLevel(sgx, pcesvn, tdx, date, status, tuple(adv)))
    except (KeyError, TypeError, IndexError, AttributeError):
        return None
    if svns and (set(map(type, svns)) != _INT or min(svns) < 0 or max(svns) > 255):
        return None
    if pces and (set(map(type, pces)) != _INT or min(pces) < 0):
        return None
    if strings and set(map(type, strings)) != _STR:
        return None
    if not valid_times(dates):
        return None
    return tuple(levels)


def _level(lv: Any, version: int, tee_id: str, i: int) -> TcbLevel:
    """One TCB level, checked field by field so that the error names what is wrong."""
    w = f"tcbInfo.tcbLevels[{i}]"
    tcb = get(lv, "tcb", dict, w)
    if version == 2:
        sgx = _components([{"svn": get(tcb, f"sgxtcbcomp{n:02d}svn", int, w)} for n in range(1, 17)],
                          f"{w}.sgxtcbcomponents")
        tdx = None
    else:
        sgx = _components(get(tcb, "sgxtcbcomponents", list, w), f"{w}.sgxtcbcomponents")
        tdx = _components(get(tcb, "tdxtcbcomponents", list, w), f"{w}.tdxtcbcomponents") if tee_id == "TDX" else None
    status = get(lv, "tcbStatus", str, w)
    date = get(lv, "tcbDate", str, w)
    parse_time(date, f"{w}.tcbDate")
    return TcbLevel(sgx, svn(get(tcb, "pcesvn", int, w), f"{w}.pcesvn"), tdx, date, status, advisory_ids(lv, w))


_INT = {int}
_STR = {str}
_V2_KEYS = tuple(f"sgxtcbcomp{n:02d}svn" for n in range(1, 17))


def _module_identity(x: Any, i: int) -> TdxModuleIdentity:
    w = f"tcbInfo.tdxModuleIdentities[{i}]"
    levels = isv_levels(get(x, "tcbLevels", list, w), f"{w}.tcbLevels")
    return TdxModuleIdentity(get(x, "id", str, w), get_hex(x, "mrsigner", 48, w), get_hex(x, "attributes", 8, w),
                             get_hex(x, "attributesMask", 8, w), levels)
