"""Intel PCCS ``/refresh``: re-fetch what the cache holds, before clients find it expired.

Intel's PCCS refreshes its cache on a schedule or when an admin asks; LAZY eaa-pccs otherwise only
asks again once a record's ``nextUpdate`` has passed, so a TCB recovery published by Intel would
reach clients up to a month late. Every answer goes through the same :class:`Upstream` methods (and
so the same validation) as a LAZY fill; a record is replaced only by valid data that is not older
than what is cached, so a failing or rolled-back upstream can never make the cache worse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import EaaError
from .errors import BadRequest, RefreshUnavailable, StorageUnavailable
from .platforms import registration_from_record
from .records import (
    IDENTITY,
    PCK_CERT,
    PCK_CRL,
    PLATFORM,
    ROOT_CRL,
    TCB,
    Record,
    platform_key,
)
from .upstream import Upstream

if TYPE_CHECKING:
    from .service import PccsService

log = logging.getLogger("eaa.pccs")

TYPES = ("certs", "fmspcs")
MAX_FAILURES_LISTED = 50
FMSPC_DIGITS = 12


def refresh_type(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    v = value.lower()
    if v not in TYPES:
        raise BadRequest(f"type must be one of {', '.join(TYPES)}")
    return v


def fmspc_list(values: Iterable[str] | None) -> set[str] | None:
    """``fmspc=A&fmspc=B``, ``fmspc=A,B`` or Intel's admin tool's ``fmspc=[A, B]``; None when not given."""
    out: set[str] = set()
    for value in values or ():
        for item in value.strip().strip("[]").split(","):
            f = item.strip().strip('"')
            if not f:
                continue
            if len(f) != FMSPC_DIGITS or any(c not in "0123456789abcdefABCDEF" for c in f):
                raise BadRequest(f"fmspc must be a list of {FMSPC_DIGITS}-hex-digit FMSPCs, got {f[:40]!r}")
            out.add(f.upper())
    return out or None


@dataclass
class RefreshSummary:
    """What one ``/refresh`` did to the cached records, counted by outcome, with the failures (its JSON answer)."""

    refreshed: int = 0  # replaced by newer valid data
    unchanged: int = 0  # the upstream sent the same data (its fetch time is updated)
    kept: int = 0  # the upstream sent valid but older data: the cached record stays
    failures: list[dict[str, str]] = field(default_factory=list)

    def fail(self, rec: Record, error: str) -> None:
        self.failures.append({"kind": rec.kind, "key": rec.key, "error": error[:300]})

    def to_json(self) -> dict[str, Any]:
        return {"refreshed": self.refreshed, "unchanged": self.unchanged, "kept": self.kept,
                "failed": len(self.failures), "failures": self.failures[:MAX_FAILURES_LISTED]}


def _fetcher(up: Upstream, rec: Record, api: int, enc_ppids: dict[str, str]) -> Callable[[], Record] | None:
    """The upstream call that produced ``rec`` (None for a key this service could not have written)."""
    parts = rec.key.split("/")
    if rec.kind == TCB and len(parts) == 4 and parts[1] in ("v3", "v4"):
        tee, ver, fmspc, update = parts
        return lambda: up.tcb(tee, int(ver[1:]), fmspc, update)
    if rec.kind == IDENTITY and len(parts) == 3:
        tee, which, update = parts
        return lambda: up.identity(tee, which, 4 if tee == "tdx" else api, update)
    if rec.kind == PCK_CRL:
        return lambda: up.pck_crl(api, rec.key)
    if rec.kind == ROOT_CRL:
        return lambda: up.root_crl(api)
    if rec.kind == PCK_CERT and len(parts) == 4:
        qeid, cpusvn, pcesvn, pceid = parts
        enc = enc_ppids.get(platform_key(qeid, pceid))
        return lambda: up.pck_cert(api, qeid, cpusvn, pcesvn, pceid, enc)
    return None


def _wanted(rec: Record, kind_set: Sequence[str], fmspcs: set[str] | None) -> bool:
    if rec.kind not in kind_set:
        return False
    if fmspcs is None:
        return True
    if rec.kind == TCB:
        return rec.key.split("/")[2] in fmspcs
    if rec.kind == PCK_CERT:
        return rec.meta.get("fmspc", "").upper() in fmspcs
    return True  # CRLs and identities are not per FMSPC


def refresh_cache(service: PccsService, api: int, kind: str | None, fmspcs: set[str] | None) -> RefreshSummary:
    """Re-fetch the selected cached records (``kind``: None, "certs" or "fmspcs"); LAZY and REQ services."""
    if service.upstream is None or service.mode.value == "offline":
        raise RefreshUnavailable("refresh needs an upstream; this PCCS is OFFLINE (import newer collateral instead)")
    up: Upstream = service.upstream
    kinds = {None: (TCB, IDENTITY, PCK_CRL, ROOT_CRL), "certs": (TCB, IDENTITY, PCK_CRL, ROOT_CRL, PCK_CERT),
             "fmspcs": (TCB,)}[kind]
    try:
        records = [r for k in kinds for r in service.store.scan(k) if _wanted(r, kinds, fmspcs)]
        enc_ppids: dict[str, str] = {}
        if PCK_CERT in kinds:
            for p in service.store.scan(PLATFORM):
                try:
                    reg = registration_from_record(p)
                except EaaError:
                    continue
                if reg.enc_ppid:
                    enc_ppids[reg.key] = reg.enc_ppid
    except Exception as e:  # noqa: BLE001 - any storage failure is a 503, never a 500
        raise StorageUnavailable(f"cannot read the collateral store: {e}") from None
    summary = RefreshSummary()
    for old in records:
        fetch = _fetcher(up, old, api, enc_ppids)
        if fetch is None:
            summary.fail(old, "not a record this service can fetch")
            continue
        try:
            new = fetch()
        except (EaaError, ValueError) as e:
            service.metrics.upstream.labels(old.kind, "refresh_failed").inc()
            log.warning("refresh of %s %s failed: %s", old.kind, old.key, e)
            summary.fail(old, f"{type(e).__name__}: {e}")
            continue
        service.metrics.upstream.labels(old.kind, "ok").inc()
        if (old.next_update is not None and new.next_update is not None and new.next_update < old.next_update):
            summary.kept += 1  # valid, but older than what we serve: an upstream rollback is not followed
            continue
        try:
            service.store.put(new)
        except Exception as e:  # noqa: BLE001
            summary.fail(old, f"cannot store: {e}")
            continue
        if new.body == old.body:
            summary.unchanged += 1
        else:
            summary.refreshed += 1
    return summary
