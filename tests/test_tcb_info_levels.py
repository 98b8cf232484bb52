"""TCB info levels: the one-pass reader agrees with the field-by-field one, and any defect in any level
is reported by name."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _vectors import manifest, require_vectors
from eaa.collateral.bundle import Collateral
from eaa.errors import FormatError
from eaa.formats.enclave_identity import EnclaveIdentity, isv_level
from eaa.formats.tcb_info import TcbInfo, _level, _levels_fast

SIG = bytes(64)


def _tcb_infos() -> list[tuple[str, str]]:
    out = {}
    for v in manifest():
        path = v.get("collateral", {}).get("qvl_json")
        if path:
            d = require_vectors()
            out.setdefault(Collateral.from_qvl_json((d / path).read_text()).tcb_info, v["id"])
    return [(vid, text) for text, vid in out.items()]


INFOS = _tcb_infos()


@pytest.mark.parametrize("vid, text", INFOS or [("<no vectors>", "")])
def test_fast_and_careful_readers_agree(vid: str, text: str) -> None:
    require_vectors()
    obj = json.loads(text)
    fast = _levels_fast(obj["tcbLevels"], obj["version"], obj.get("id", "SGX"))
    careful = tuple(_level(lv, obj["version"], obj.get("id", "SGX"), i) for i, lv in enumerate(obj["tcbLevels"]))
    assert fast is not None and fast == careful
    assert TcbInfo.from_body(text, SIG).tcb_levels == careful


def _sgx() -> dict[str, Any]:
    comps = [{"svn": 3} for _ in range(16)]
    level = {"tcb": {"sgxtcbcomponents": comps, "pcesvn": 11}, "tcbDate": "2024-03-13T00:00:00Z",
             "tcbStatus": "UpToDate", "advisoryIDs": ["INTEL-SA-00001"]}
    return {"id": "SGX", "version": 3, "issueDate": "2026-01-01T00:00:00Z", "nextUpdate": "2026-02-01T00:00:00Z",
            "fmspc": "00906ea10000", "pceId": "0000", "tcbType": 0, "tcbEvaluationDataNumber": 17,
            "tcbLevels": [json.loads(json.dumps(level).replace('"pcesvn": 11', f'"pcesvn": {11 - i}'))
                          for i in range(3)]}  # distinct: QVL refuses two equal levels


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(obj: dict[str, Any]) -> None:
        target: Any = obj["tcbLevels"][2]
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return edit


_DELETE = object()


@pytest.mark.parametrize("edit", [
    _set(["tcb", "sgxtcbcomponents", 5, "svn"], -1),
    _set(["tcb", "sgxtcbcomponents", 5, "svn"], True),
    _set(["tcb", "sgxtcbcomponents", 5, "svn"], "3"),
    _set(["tcb", "sgxtcbcomponents", 5], {"value": 3}),
    _set(["tcb", "sgxtcbcomponents"], [{"svn": 1}] * 15),
    _set(["tcb", "sgxtcbcomponents"], {"svn": 1}),
    _set(["tcb", "sgxtcbcomponents"], _DELETE),
    _set(["tcb", "pcesvn"], -2),
    _set(["tcb", "pcesvn"], 1.5),
    _set(["tcb", "pcesvn"], _DELETE),
    _set(["tcbStatus"], 7),
    _set(["tcbStatus"], _DELETE),
    _set(["tcbDate"], "yesterday"),
    _set(["tcbDate"], None),
    _set(["advisoryIDs"], "INTEL-SA-00001"),
    _set(["advisoryIDs"], ["INTEL-SA-00001", 5]),
    _set(["tcb"], []),
])
def test_a_defect_in_any_level_is_named(edit: Callable[[dict[str, Any]], None]) -> None:
    obj = _sgx()
    assert len(TcbInfo.from_body(json.dumps(obj), SIG).tcb_levels) == 3
    edit(obj)
    with pytest.raises(FormatError) as ei:
        TcbInfo.from_body(json.dumps(obj), SIG)
    assert ei.value.field is not None and ei.value.field.startswith("tcbInfo.tcbLevels[2]")


def test_tdx_levels_need_tdx_components() -> None:
    obj = _sgx()
    obj["id"] = "TDX"
    obj["tdxModule"] = {"mrsigner": "00" * 48, "attributes": "00" * 8, "attributesMask": "ff" * 8}
    for lv in obj["tcbLevels"]:
        lv["tcb"]["tdxtcbcomponents"] = [{"svn": 2} for _ in range(16)]
    info = TcbInfo.from_body(json.dumps(obj), SIG)
    assert info.tcb_levels[2].tdx_components == (2,) * 16
    del obj["tcbLevels"][2]["tcb"]["tdxtcbcomponents"]
    with pytest.raises(FormatError, match="tdxtcbcomponents") as ei:
        TcbInfo.from_body(json.dumps(obj), SIG)
    assert ei.value.field == "tcbInfo.tcbLevels[2].tdxtcbcomponents"


@pytest.mark.parametrize("key, value, field", [
    ("isvsvn", -1, "isvsvn"), ("isvsvn", "3", "isvsvn"), ("tcbStatus", None, "tcbStatus"),
    ("advisoryIDs", [1], ""),
])
def test_a_defect_in_a_module_level_is_named(key: str, value: Any, field: str) -> None:
    obj = _sgx()
    obj["id"] = "TDX"
    obj["tdxModule"] = {"mrsigner": "00" * 48, "attributes": "00" * 8, "attributesMask": "ff" * 8}
    for lv in obj["tcbLevels"]:
        lv["tcb"]["tdxtcbcomponents"] = [{"svn": 2} for _ in range(16)]
    module_levels = [{"tcb": {"isvsvn": n}, "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": "UpToDate"}
                     for n in (5, 3)]
    obj["tdxModuleIdentities"] = [{"id": "TDX_01", "mrsigner": "00" * 48, "attributes": "00" * 8,
                                   "attributesMask": "ff" * 8, "tcbLevels": module_levels}]
    assert [lv.isvsvn for lv in TcbInfo.from_body(json.dumps(obj), SIG).tdx_module_identities[0].tcb_levels] == [5, 3]
    target = module_levels[1]["tcb"] if key == "isvsvn" else module_levels[1]
    target[key] = value
    with pytest.raises(FormatError) as ei:
        TcbInfo.from_body(json.dumps(obj), SIG)
    assert ei.value.field is not None and ei.value.field.startswith("tcbInfo.tdxModuleIdentities[0].tcbLevels[1]")
    assert ei.value.field.endswith(field)


# ---- property: on any level, valid or defective, the one-pass reader never accepts what the careful one
# refuses, and when both accept they read the same values ----


_JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=False, width=16),
                       st.text(max_size=6), st.just([]), st.just({}))
_GOOD_DATES = ["2024-03-13T00:00:00Z", "2024-03-13T00:00:00.5Z", "2024-03-13t00:00:00z", "2024-03-13T00:00:00+01:00",
               "2024-02-29T23:59:59Z"]
_BAD_DATES = ["2024-03-13", "2024-03-13T00:00:00", "20240313T000000Z", "2024-02-30T00:00:00Z", "2024-13-01T00:00:00Z",
              "2024-03-13T24:00:00Z", "2024-03-13T00:00:00ZZ", "2024-03-13 00:00:00Z",
              "\u0662\u0660\u0662\u0664-03-13T00:00:00Z",
              "", "yesterday"]
_DATES = st.one_of(st.sampled_from(_GOOD_DATES + _BAD_DATES), _JSON_LEAF)
_SVN = st.one_of(st.integers(0, 255), _JSON_LEAF)


@st.composite
def _levels(draw: st.DrawFn, tdx: bool) -> list[Any]:
    """Well-formed levels, then (most of the time) one defect or one odd but valid value somewhere."""
    def comps() -> list[Any]:
        return [{"svn": draw(st.integers(0, 255))} for _ in range(16)]

    levels: list[Any] = []
    for _ in range(draw(st.integers(1, 3))):
        tcb: dict[str, Any] = {"sgxtcbcomponents": comps(), "pcesvn": draw(st.integers(0, 20))}
        if tdx:
            tcb["tdxtcbcomponents"] = comps()
        lv: dict[str, Any] = {"tcb": tcb, "tcbDate": draw(st.sampled_from(_GOOD_DATES)), "tcbStatus": "UpToDate"}
        if draw(st.booleans()):
            lv["advisoryIDs"] = draw(st.lists(st.text(max_size=4), max_size=2))
        levels.append(lv)
    if draw(st.integers(0, 4)) == 0:
        return levels  # untouched
    i = draw(st.integers(0, len(levels) - 1))
    lv = levels[i]
    where = draw(st.sampled_from(["svn", "comp", "comps", "ncomps", "pcesvn", "tdx", "date", "status", "adv",
                                  "adv-item", "delete", "delete-tcb-key", "level"]))
    comps_key = "tdxtcbcomponents" if tdx and where == "tdx" else "sgxtcbcomponents"
    if where in ("svn", "tdx"):
        lv["tcb"][comps_key][draw(st.integers(0, 15))]["svn"] = draw(_SVN)
    elif where == "comp":
        lv["tcb"]["sgxtcbcomponents"][draw(st.integers(0, 15))] = draw(_JSON_LEAF)
    elif where == "comps":
        lv["tcb"]["sgxtcbcomponents"] = draw(_JSON_LEAF)
    elif where == "ncomps":
        lv["tcb"]["sgxtcbcomponents"] = lv["tcb"]["sgxtcbcomponents"][:draw(st.sampled_from([0, 15]))]
    elif where == "pcesvn":
        lv["tcb"]["pcesvn"] = draw(_SVN)
    elif where == "date":
        lv["tcbDate"] = draw(_DATES)
    elif where == "status":
        lv["tcbStatus"] = draw(st.one_of(st.text(max_size=5), _JSON_LEAF))
    elif where == "adv":
        lv["advisoryIDs"] = draw(_JSON_LEAF)
    elif where == "adv-item":
        lv["advisoryIDs"] = ["INTEL-SA-1", draw(_JSON_LEAF)]
    elif where == "delete":
        del lv[draw(st.sampled_from(sorted(lv)))]
    elif where == "delete-tcb-key":
        del lv["tcb"][draw(st.sampled_from(sorted(lv["tcb"])))]
    else:
        levels[i] = draw(_JSON_LEAF)
    return levels


def _careful(levels: list[Any], tee: str) -> tuple[Any, ...] | None:
    try:
        return tuple(_level(lv, 3, tee, i) for i, lv in enumerate(levels))
    except FormatError:
        return None


@settings(max_examples=250, deadline=None, derandomize=True)
@given(st.sampled_from(["SGX", "TDX"]).flatmap(lambda tee: st.tuples(st.just(tee), _levels(tee == "TDX"))))
def test_fast_reader_never_accepts_what_the_careful_one_refuses(case: tuple[str, list[Any]]) -> None:
    tee, levels = case
    fast = _levels_fast(levels, 3, tee)
    careful = _careful(levels, tee)
    if careful is None:
        assert fast is None
    elif fast is not None:
        assert fast == careful


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.fixed_dictionaries({"tcb": st.one_of(st.fixed_dictionaries({"isvsvn": _SVN}), _JSON_LEAF),
                              "tcbDate": _DATES, "tcbStatus": st.one_of(st.just("UpToDate"), _JSON_LEAF)},
                             optional={"advisoryIDs": st.one_of(st.lists(st.text(max_size=3), max_size=2),
                                                                _JSON_LEAF)}))
def test_identity_level_fast_path_checks_what_the_careful_path_does(level: dict[str, Any]) -> None:
    """isv_level tries a direct read first; it must refuse exactly what the field-by-field read refuses."""
    try:
        got = isv_level(level, "w")
    except FormatError:
        got = None
    date_ok = isinstance(level.get("tcbDate"), str) and _valid_date(level["tcbDate"])
    tcb = level.get("tcb")
    svn_ok = isinstance(tcb, dict) and type(tcb.get("isvsvn")) is int and tcb["isvsvn"] >= 0
    adv = level.get("advisoryIDs", [])
    adv_ok = isinstance(adv, list) and all(isinstance(a, str) for a in adv)
    assert (got is not None) == (date_ok and svn_ok and isinstance(level["tcbStatus"], str) and adv_ok)


def _valid_date(value: str) -> bool:
    from eaa.formats.signed_json import parse_time

    try:
        parse_time(value, "x")
    except FormatError:
        return False
    return True


@pytest.mark.parametrize("date", ["2024-03-13", "2024-02-30T00:00:00Z", "2024-03-13T00:00:00", "x"])
def test_tcb_date_must_be_a_real_rfc3339_time(date: str) -> None:
    obj = _sgx()
    for lv in obj["tcbLevels"]:
        lv["tcbDate"] = date
    assert _levels_fast(obj["tcbLevels"], 3, "SGX") is None
    with pytest.raises(FormatError) as ei:
        TcbInfo.from_body(json.dumps(obj), SIG)
    assert ei.value.field == "tcbInfo.tcbLevels[0].tcbDate"


def _tdx() -> dict[str, Any]:
    obj = _sgx()
    obj["id"] = "TDX"
    obj["tdxModule"] = {"mrsigner": "00" * 48, "attributes": "00" * 8, "attributesMask": "ff" * 8}
    for lv in obj["tcbLevels"]:
        lv["tcb"]["tdxtcbcomponents"] = [{"svn": 2} for _ in range(16)]
    levels = [{"tcb": {"isvsvn": n}, "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": "UpToDate"} for n in (5, 3)]
    obj["tdxModuleIdentities"] = [{"id": "TDX_01", "mrsigner": "00" * 48, "attributes": "00" * 8,
                                   "attributesMask": "ff" * 8, "tcbLevels": levels}]
    return obj


def _refused(obj: dict[str, Any], field: str) -> None:
    with pytest.raises(FormatError) as ei:
        TcbInfo.from_body(json.dumps(obj), SIG)
    assert ei.value.field is not None and ei.value.field.startswith(field), ei.value.field


@pytest.mark.parametrize("make", [_sgx, _tdx])
def test_two_equal_tcb_levels_are_refused(make: Callable[[], dict[str, Any]]) -> None:
    """QVL's TcbInfo parser: "Detected duplicated TCB levels", whatever their statuses say."""
    obj = make()
    TcbInfo.from_body(json.dumps(obj), SIG)
    obj["tcbLevels"][2]["tcb"]["pcesvn"] = obj["tcbLevels"][0]["tcb"]["pcesvn"]
    obj["tcbLevels"][2]["tcbStatus"] = "OutOfDate"
    _refused(obj, "tcbInfo.tcbLevels")


@pytest.mark.parametrize("key", ["tdxModule", "tdxModuleIdentities"])
def test_sgx_tcb_info_with_a_tdx_module_is_refused(key: str) -> None:
    obj = _sgx()
    obj[key] = _tdx()[key]
    _refused(obj, "tcbInfo.tdxModule")


def test_empty_or_ambiguous_tdx_module_identities_are_refused() -> None:
    TcbInfo.from_body(json.dumps(_tdx()), SIG)
    obj = _tdx()
    obj["tdxModuleIdentities"] = []
    _refused(obj, "tcbInfo.tdxModuleIdentities")
    obj = _tdx()
    obj["tdxModuleIdentities"][0]["tcbLevels"] = []
    _refused(obj, "tcbInfo.tdxModuleIdentities[0].tcbLevels")
    obj = _tdx()
    obj["tdxModuleIdentities"][0]["tcbLevels"][1]["tcb"]["isvsvn"] = 5
    _refused(obj, "tcbInfo.tdxModuleIdentities[0].tcbLevels")


@pytest.mark.parametrize("version", [2, 3])
def test_a_component_svn_above_one_byte_is_refused(version: int) -> None:
    """PCK certificates and TEE_TCB_SVN hold one byte per component; QVL would truncate 256 to 0."""
    obj = _sgx()
    if version == 2:
        del obj["id"]
        obj["version"] = 2
        for lv in obj["tcbLevels"]:
            comps = lv["tcb"].pop("sgxtcbcomponents")
            lv["tcb"].update({f"sgxtcbcomp{n:02d}svn": c["svn"] for n, c in enumerate(comps, 1)})
        TcbInfo.from_body(json.dumps(obj), SIG)
        obj["tcbLevels"][2]["tcb"]["sgxtcbcomp01svn"] = 256
    else:
        TcbInfo.from_body(json.dumps(obj), SIG)
        obj["tcbLevels"][2]["tcb"]["sgxtcbcomponents"][0]["svn"] = 256
    _refused(obj, "tcbInfo.tcbLevels[2].sgxtcbcomponents")
    obj = _tdx()
    obj["tcbLevels"][2]["tcb"]["tdxtcbcomponents"][3]["svn"] = 256
    _refused(obj, "tcbInfo.tcbLevels[2].tdxtcbcomponents")


def _identity(levels: list[int]) -> dict[str, Any]:
    return {"id": "QE", "version": 2, "issueDate": "2026-01-01T00:00:00Z", "nextUpdate": "2026-02-01T00:00:00Z",
            "tcbEvaluationDataNumber": 17, "miscselect": "00000000", "miscselectMask": "FFFFFFFF",
            "attributes": "11" + "00" * 15, "attributesMask": "FB" + "FF" * 15, "mrsigner": "AA" * 32,
            "isvprodid": 1, "tcbLevels": [{"tcb": {"isvsvn": n}, "tcbDate": "2024-03-13T00:00:00Z",
                                           "tcbStatus": "UpToDate"} for n in levels]}


@pytest.mark.parametrize("levels", [[], [8, 6, 8]])
def test_qe_identity_without_levels_or_with_two_equal_ones_is_refused(levels: list[int]) -> None:
    assert len(EnclaveIdentity.from_body(json.dumps(_identity([8, 6])), SIG).tcb_levels) == 2
    with pytest.raises(FormatError) as ei:
        EnclaveIdentity.from_body(json.dumps(_identity(levels)), SIG)
    assert ei.value.field == "enclaveIdentity.tcbLevels"


def test_a_tcb_type_other_than_zero_is_refused() -> None:
    """QVL 4.1.2.7.4: "TcbInfo TCB Type (...) is not supported. Supported types are: [0]"."""
    obj = _sgx()
    obj["tcbType"] = 1
    _refused(obj, "tcbInfo.tcbType")
