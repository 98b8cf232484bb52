"""Platform registrations (Intel PCCS ``POST /platforms``): what a platform told us about itself.

Intel's PCCS keeps a ``platforms`` table keyed by (QE ID, PCE ID) so an operator (or its admin tool)
can see which platforms exist and fetch their PCK certificates; eaa-pccs keeps the same data as one
more record kind in its store, so SQLite and PostgreSQL, export and import all carry it unchanged.
Field names and sizes are Intel's (``pccs/utils/apputil.js``, ``pccs/routes``), so Intel's
``PCKIDRetrievalTool`` and ``PccsAdminTool`` work unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...records import record
from .errors import BadRequest
from .records import PLATFORM, Record, platform_key

QE_ID_MAX = 260  # hex characters (Intel PCCS QEID_MAX_SIZE)
PCE_ID_SIZE = 4
CPU_SVN_SIZE = 32
PCE_SVN_SIZE = 4
ENC_PPID_SIZE = 768  # RSA-3072 encrypted PPID, as Intel's PCCS requires
PLATFORM_MANIFEST_MAX = 2 * 64 * 1024  # hex characters; a manifest is a few KiB, this only bounds storage

STATE_CACHED = "cached"  # its PCK certificate is in the store
STATE_PENDING = "pending"  # registered, certificate not fetched yet (OFFLINE, or the upstream failed)
STATE_NOT_AVAILABLE = "not_available"  # Intel's PLATF_REG_NOT_AVAILABLE (upstream has no certificate yet)
FMSPC_DIGITS = 12

FIELDS = ("qe_id", "pce_id", "cpu_svn", "pce_svn", "enc_ppid", "platform_manifest")


def check_hex(value: Any, name: str, *, size: int | None = None, max_size: int | None = None,
              optional: bool = False) -> str | None:
    """Intel's PCCS rejects wrong-sized or non-hex ids with 400; so do we, naming the field."""
    if value is None or value == "":
        if optional:
            return None
        raise BadRequest(f"missing field {name!r}")
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string of hex digits")
    if size is not None and len(value) != size:
        raise BadRequest(f"{name} must be {size} hex digits, got {len(value)}")
    if max_size is not None and len(value) > max_size:
        raise BadRequest(f"{name} must be at most {max_size} hex digits, got {len(value)}")
    if len(value) % 2 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise BadRequest(f"{name} must be hex (an even number of 0-9a-f digits)")
    return value.upper()


@record
class Registration:
    """A platform registration as ``POST /platforms`` sends it (Intel's field names), validated, in upper-case hex."""

    qe_id: str
    pce_id: str
    cpu_svn: str
    pce_svn: str
    enc_ppid: str | None = None
    platform_manifest: str | None = None

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> Registration:
        """Validated and canonical (upper-case hex), so one platform is one record however it is spelt."""
        qe_id = check_hex(obj.get("qe_id"), "qe_id", max_size=QE_ID_MAX)
        pce_id = check_hex(obj.get("pce_id"), "pce_id", size=PCE_ID_SIZE)
        cpu_svn = check_hex(obj.get("cpu_svn"), "cpu_svn", size=CPU_SVN_SIZE)
        pce_svn = check_hex(obj.get("pce_svn"), "pce_svn", size=PCE_SVN_SIZE)
        assert qe_id and pce_id and cpu_svn and pce_svn  # not optional: check_hex raised otherwise
        return cls(qe_id, pce_id, cpu_svn, pce_svn,
                   check_hex(obj.get("enc_ppid"), "enc_ppid", size=ENC_PPID_SIZE, optional=True),
                   check_hex(obj.get("platform_manifest"), "platform_manifest", max_size=PLATFORM_MANIFEST_MAX,
                             optional=True))

    @property
    def key(self) -> str:
        return platform_key(self.qe_id, self.pce_id)

    def to_json(self) -> dict[str, str | None]:
        return {f: getattr(self, f) for f in FIELDS}

    def to_record(self, *, state: str, now: float, error: str = "") -> Record:
        meta = {"state": state, **({"error": error[:500]} if error else {})}
        return Record(PLATFORM, self.key, json.dumps(self.to_json(), sort_keys=True).encode(), meta,
                      None, now, "registration")


def registration_from_record(rec: Record) -> Registration:
    """The registration a stored (or imported) record holds; its key must agree with its content."""
    try:
        obj = json.loads(rec.body)
    except ValueError:
        raise BadRequest("platform record is not JSON") from None
    if not isinstance(obj, dict):
        raise BadRequest("platform record is not a JSON object")
    reg = Registration.parse(obj)
    if reg.key != rec.key:
        raise BadRequest("platform record key does not match its content")
    return reg


# the columns, in order, of Intel's listings: dao/platformsRegDao.js findRegisteredPlatforms (source=reg,
# reg_na) and dao/platformsDao.js getCachedPlatformsByFmspc (source=[FMSPC,...])
REGISTERED_FIELDS = ("qe_id", "pce_id", "cpu_svn", "pce_svn", "platform_manifest", "enc_ppid")
CACHED_FIELDS = ("qe_id", "pce_id", "cpu_svn", "pce_svn", "enc_ppid", "platform_manifest")


def listing(rec: Record, kind: str = "reg") -> dict[str, Any]:
    """One entry of ``GET /platforms``: Intel's fields in the order of its query (``kind`` as
    :func:`platforms_source` gives it), absent ones as "" as Intel's PCCS stores them (PccsAdminTool
    fetch takes ``len(platform_manifest)`` and formats ``enc_ppid`` into a URL)."""
    fields = {k: v or "" for k, v in registration_from_record(rec).to_json().items()}
    return {k: fields.get(k, "") for k in (CACHED_FIELDS if kind == "cached" else REGISTERED_FIELDS)}


def platforms_source(source: str | None) -> tuple[str, set[str]]:
    """Intel's ``source`` parameter: ``reg`` (also absent or empty), ``reg_na`` or ``[FMSPC,...]``."""
    if source is None or source in ("", "reg"):
        return "reg", set()
    if source == "reg_na":
        return "reg_na", set()
    if len(source) < 2 or source[0] != "[" or source[-1] != "]":
        raise BadRequest("source must be reg, reg_na or [FMSPC,...]")
    inner = source[1:-1].strip()
    fmspcs = {check_hex(f.strip(), "source FMSPC", size=FMSPC_DIGITS) for f in inner.split(",")} if inner else set()
    return "cached", {f for f in fmspcs if f}
