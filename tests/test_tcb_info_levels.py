"""TCB info levels: the one-pass reader agrees with the field-by-field one, and any defect in any level
is reported by name."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from eaa.collateral.bundle import Collateral
from eaa.errors import FormatError
from eaa.formats.tcb_info import TcbInfo, _level, _levels_fast

from _vectors import manifest, require_vectors

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
            "tcbLevels": [json.loads(json.dumps(level)) for _ in range(3)]}


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
