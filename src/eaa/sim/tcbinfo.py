"""The simulated platform's signed collateral: TCB info (SGX and TDX, v3) and QE / TD_QE identity (v2).

The TCB levels form a strict ladder: level *k* requires SGX TCB components 1-2 (and TDX TCB component 3)
to be at least ``LEVELS[k].svn``, so a platform whose SVNs equal a level's matches that level and no
higher one, whichever ordering a verifier uses (QVL's, or dcap-qvl's lexicographic one). ``--tcb STATE``
picks the level the platform sits on (:data:`TCB_STATES`).

Signatures are ECDSA-P256-SHA256 over the exact UTF-8 bytes of the inner JSON object text, stored as
hex r||s; the text is produced once here and stored verbatim, never re-serialised.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from ..formats.signed_json import join_signed
from ..records import record
from .pki import BACKDATE, COLLATERAL_VALIDITY, sign_raw

TCB_EVALUATION_DATA_NUMBER = 17
PCE_ID = bytes.fromhex("0000")


@record
class SimTcbLevel:
    """One rung of the simulated TCB ladder: the SVNs a platform needs to reach it, its status, age and advisories."""

    status: str
    svn: int  # SGX components 1-2 and TDX component 3 (index 2) of this level
    pcesvn: int
    age_days: int  # tcbDate = creation date - age
    advisory_ids: tuple[str, ...]


# Highest first. Advisory IDs are simulated ("SIM-SA-..."), never Intel's.
LEVELS: tuple[SimTcbLevel, ...] = (
    SimTcbLevel("UpToDate", 9, 13, 30, ()),
    SimTcbLevel("SWHardeningNeeded", 8, 13, 180, ("SIM-SA-00615",)),
    SimTcbLevel("ConfigurationNeeded", 7, 13, 270, ("SIM-SA-00289",)),
    SimTcbLevel("ConfigurationAndSWHardeningNeeded", 6, 13, 360, ("SIM-SA-00289", "SIM-SA-00615")),
    SimTcbLevel("OutOfDate", 5, 11, 540, ("SIM-SA-00334", "SIM-SA-00615")),
    SimTcbLevel("OutOfDateConfigurationNeeded", 4, 11, 720, ("SIM-SA-00289", "SIM-SA-00334", "SIM-SA-00615")),
)
_BY_STATUS = {lv.status: lv for lv in LEVELS}

# --tcb STATE -> (TCB level the platform's SVNs sit on, PCK certificate revoked in the PCK CRL?)
TCB_STATES: dict[str, tuple[str, bool]] = {
    "uptodate": ("UpToDate", False),
    "swhardening": ("SWHardeningNeeded", False),
    "configuration": ("ConfigurationNeeded", False),
    "configuration-swhardening": ("ConfigurationAndSWHardeningNeeded", False),
    "outofdate": ("OutOfDate", False),
    "outofdate-configuration": ("OutOfDateConfigurationNeeded", False),
    "revoked": ("UpToDate", True),
}
# The status a verifier reports for a platform in each state.
EXPECTED_STATUS = {state: ("Revoked" if revoked else status) for state, (status, revoked) in TCB_STATES.items()}

# SGX TCB components other than 1-2 (which carry the level), with Intel's category/type labels.
_SGX_COMPONENTS: tuple[tuple[int, str | None, str | None], ...] = (
    (0, "BIOS", "Early Microcode Update"),
    (0, "OS/VMM", "SGX Late Microcode Update"),
    (2, "OS/VMM", "TXT SINIT"),
    (2, "BIOS", None),
    (3, "BIOS", None),
    (1, "BIOS", None),
    (0, None, None),
    (5, "OS/VMM", "SEAMLDR ACM"),
) + ((0, None, None),) * 8
_TDX_COMPONENTS: tuple[tuple[int, str | None, str | None], ...] = (
    (5, "OS/VMM", "TDX Module"),
    (0, "OS/VMM", "TDX Module"),
    (0, "OS/VMM", "TDX Late Microcode Update"),
) + ((0, None, None),) * 13

# The simulated TDX module: major version 1 (identity "TDX_01"), ISVSVN 5.
TDX_MODULE_MAJOR = 1
TDX_MODULE_SVN = 5
TDX_MODULE_MRSIGNER = bytes(48)
TDX_SEAM_ATTRIBUTES = bytes(8)
_MODULE_IDENTITIES = (  # (major, [(isvsvn, status, age_days, advisories)])
    (3, [(3, "UpToDate", 30, ())]),
    (1, [(4, "UpToDate", 30, ()), (2, "OutOfDate", 540, ("SIM-SA-00960",))]),
)

# Quoting enclaves (attributes/masks as Intel's QE identities).
QE_ISVPRODID = 1
QE_ISVSVN = 8
TD_QE_ISVPRODID = 2
TD_QE_ISVSVN = 4
QE_MISCSELECT = 0
QE_ATTRIBUTES = bytes.fromhex("1500000000000000e700000000000000")  # INIT|MODE64BIT|PROVISIONKEY, xfrm 0xe7
_QE_IDENTITY_ATTRIBUTES = "11000000000000000000000000000000"
_QE_IDENTITY_ATTRIBUTES_MASK = "FBFFFFFFFFFFFFFF0000000000000000"
_QE_LEVELS = {  # id -> [(isvsvn, status, age_days, advisories)]
    "QE": [(QE_ISVSVN, "UpToDate", 30, ()), (6, "OutOfDate", 540, ("SIM-SA-00615",))],
    "TD_QE": [(TD_QE_ISVSVN, "UpToDate", 30, ()), (2, "OutOfDate", 540, ("SIM-SA-00615",))],
}


def level(status: str) -> SimTcbLevel:
    return _BY_STATUS[status]


def platform_svns(state: str) -> dict[str, Any]:
    """The SVNs of a platform in ``state``: 16 SGX components, PCESVN, CPUSVN, TDX tee_tcb_svn."""
    lv = level(TCB_STATES[state][0])
    comps = [lv.svn, lv.svn] + [c[0] for c in _SGX_COMPONENTS[2:]]
    tee_tcb_svn = [TDX_MODULE_SVN, TDX_MODULE_MAJOR, lv.svn] + [0] * 13
    return {
        "tcb_components": comps,
        "pce_svn": lv.pcesvn,
        "cpu_svn": bytes(comps).hex(),
        "tee_tcb_svn": bytes(tee_tcb_svn).hex(),
    }


def _time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(now: datetime, age_days: int) -> str:
    day = (now - timedelta(days=age_days)).replace(hour=0, minute=0, second=0, microsecond=0)
    return _time(day)


def _components(table: tuple[tuple[int, str | None, str | None], ...],
                overrides: dict[int, int]) -> list[dict[str, Any]]:
    out = []
    for i, (svn, category, kind) in enumerate(table):
        c: dict[str, Any] = {"svn": overrides.get(i, svn)}
        if category:
            c["category"] = category
        if kind:
            c["type"] = kind
        out.append(c)
    return out


def _level_entry(tcb: dict[str, Any], date: str, status: str, advisories: tuple[str, ...]) -> dict[str, Any]:
    entry: dict[str, Any] = {"tcb": tcb, "tcbDate": date, "tcbStatus": status}
    if advisories:
        entry["advisoryIDs"] = list(advisories)
    return entry


def _module(mrsigner: bytes) -> dict[str, Any]:
    return {"mrsigner": mrsigner.hex().upper(), "attributes": TDX_SEAM_ATTRIBUTES.hex().upper(),
            "attributesMask": "FFFFFFFFFFFFFFFF"}


def tcb_info_body(tee: str, *, fmspc: bytes, now: datetime) -> str:
    """The exact text of the ``tcbInfo`` object (v3) for ``tee`` ("sgx" or "tdx")."""
    issue = (now - BACKDATE).replace(microsecond=0)
    tdx = tee == "tdx"
    body: dict[str, Any] = {
        "id": "TDX" if tdx else "SGX",
        "version": 3,
        "issueDate": _time(issue),
        "nextUpdate": _time(issue + COLLATERAL_VALIDITY),
        "fmspc": fmspc.hex().upper(),
        "pceId": PCE_ID.hex().upper(),
        "tcbType": 0,
        "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER,
    }
    if tdx:
        body["tdxModule"] = _module(TDX_MODULE_MRSIGNER)
        body["tdxModuleIdentities"] = [
            {"id": f"TDX_{major:02X}", **_module(TDX_MODULE_MRSIGNER),
             "tcbLevels": [_level_entry({"isvsvn": svn}, _date(now, age), status, adv)
                           for svn, status, age, adv in levels]}
            for major, levels in _MODULE_IDENTITIES
        ]
    levels = []
    for lv in LEVELS:
        tcb: dict[str, Any] = {"sgxtcbcomponents": _components(_SGX_COMPONENTS, {0: lv.svn, 1: lv.svn}),
                               "pcesvn": lv.pcesvn}
        if tdx:
            tcb["tdxtcbcomponents"] = _components(_TDX_COMPONENTS, {2: lv.svn})
        levels.append(_level_entry(tcb, _date(now, lv.age_days), lv.status, lv.advisory_ids))
    body["tcbLevels"] = levels
    return json.dumps(body, separators=(",", ":"))


def qe_identity_body(tee: str, *, mrsigner: bytes, now: datetime) -> str:
    """The exact text of the ``enclaveIdentity`` object (v2): id "QE" for SGX, "TD_QE" for TDX."""
    issue = (now - BACKDATE).replace(microsecond=0)
    ident = "TD_QE" if tee == "tdx" else "QE"
    body: dict[str, Any] = {
        "id": ident,
        "version": 2,
        "issueDate": _time(issue),
        "nextUpdate": _time(issue + COLLATERAL_VALIDITY),
        "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER,
        "miscselect": QE_MISCSELECT.to_bytes(4, "little").hex().upper(),
        "miscselectMask": "FFFFFFFF",
        "attributes": _QE_IDENTITY_ATTRIBUTES,
        "attributesMask": _QE_IDENTITY_ATTRIBUTES_MASK,
        "mrsigner": mrsigner.hex().upper(),
        "isvprodid": TD_QE_ISVPRODID if tee == "tdx" else QE_ISVPRODID,
        "tcbLevels": [_level_entry({"isvsvn": svn}, _date(now, age), status, adv)
                      for svn, status, age, adv in _QE_LEVELS[ident]],
    }
    return json.dumps(body, separators=(",", ":"))


def signed_response(key: str, body: str, signing_key: ec.EllipticCurvePrivateKey) -> str:
    """A PCS-style response ``{"<key>":<body>,"signature":"<hex r||s>"}`` signed over ``body``'s bytes."""
    signature = sign_raw(signing_key, body.encode("utf-8"))
    return join_signed(key, body, signature)
