"""Enclave identity v2 (QE, TD_QE, QVE) as signed by Intel's TCB signing key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..errors import FormatError
from ..records import record
from .signed_json import advisory_ids, get, get_hex, load_body, parse_time, split_signed, svn, valid_times


@record(slots=True)
class EnclaveTcbLevel:
    """One ISV SVN level of an enclave identity or a TDX module identity: its date, status and advisories."""

    isvsvn: int
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


@record(slots=True)
class EnclaveIdentity:
    """Intel's signed identity of a QE, TD_QE, QVE or QAE, decoded, with the exact body bytes and signature."""

    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    tcb_evaluation_data_number: int
    miscselect: int
    miscselect_mask: int
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isvprodid: int
    tcb_levels: tuple[EnclaveTcbLevel, ...]
    body: bytes
    signature: bytes

    @classmethod
    def from_response(cls, text: str | bytes) -> EnclaveIdentity:
        body, sig = split_signed(text, "enclaveIdentity")
        return cls.from_body(body, sig)

    @classmethod
    def from_body(cls, body: str | bytes, signature: bytes, *, authenticated: bool = False) -> EnclaveIdentity:
        w = "enclaveIdentity"
        obj = load_body(body, authenticated=authenticated, what=w)
        version = get(obj, "version", int, w)
        if version not in (2, 3):
            raise FormatError(f"unsupported enclave identity version {version}", field=f"{w}.version")
        ident = get(obj, "id", str, w)
        if ident not in ("QE", "TD_QE", "QVE", "QAE"):
            raise FormatError(f"unknown enclave identity id {ident!r}", field=f"{w}.id")
        levels = isv_levels(get(obj, "tcbLevels", list, w), f"{w}.tcbLevels")
        if len(signature) != 64:
            raise FormatError("enclave identity signature must be 64 bytes", field="signature")
        return cls(
            ident, version, parse_time(get(obj, "issueDate", str, w), f"{w}.issueDate"),
            parse_time(get(obj, "nextUpdate", str, w), f"{w}.nextUpdate"),
            get(obj, "tcbEvaluationDataNumber", int, w),
            int.from_bytes(get_hex(obj, "miscselect", 4, w), "little"),
            int.from_bytes(get_hex(obj, "miscselectMask", 4, w), "little"),
            get_hex(obj, "attributes", 16, w), get_hex(obj, "attributesMask", 16, w),
            get_hex(obj, "mrsigner", 32, w), get(obj, "isvprodid", int, w), tuple(levels),
            body.encode("utf-8") if isinstance(body, str) else bytes(body), bytes(signature),
        )


def isv_levels(raw: list[Any], where: str) -> tuple[EnclaveTcbLevel, ...]:
    """The levels of an enclave or TDX module identity: at least one, no two with the same ISVSVN (QVL's
    parsers refuse both: "should be a nonempty array", "Detected duplicated TCB levels")."""
    levels = tuple(isv_level(lv, f"{where}[{i}]") for i, lv in enumerate(raw))
    if not levels:
        raise FormatError("no TCB levels", field=where)
    if len({lv.isvsvn for lv in levels}) != len(levels):
        raise FormatError("two TCB levels with the same ISVSVN", field=where)
    return levels


def isv_level(lv: Any, where: str) -> EnclaveTcbLevel:
    """One ``{tcb: {isvsvn}, tcbDate, tcbStatus, advisoryIDs}`` level, the shape enclave identities and TDX
    module identities share. The fast path reads fields directly; the slow path names what is wrong."""
    try:
        isvsvn, date, status = lv["tcb"]["isvsvn"], lv["tcbDate"], lv["tcbStatus"]
        adv = lv.get("advisoryIDs", ())
        if (type(isvsvn) is int and isvsvn >= 0 and type(date) is str and type(status) is str
                and (adv == () or type(adv) is list and (not adv or set(map(type, adv)) == _STR))
                and valid_times((date,))):
            return EnclaveTcbLevel(isvsvn, date, status, tuple(adv))
    except (KeyError, TypeError, AttributeError):
        pass
    tcb = get(lv, "tcb", dict, where)
    isvsvn = svn(get(tcb, "isvsvn", int, where), f"{where}.isvsvn")
    date = get(lv, "tcbDate", str, where)
    parse_time(date, f"{where}.tcbDate")
    return EnclaveTcbLevel(isvsvn, date, get(lv, "tcbStatus", str, where), advisory_ids(lv, where))


_STR = {str}
