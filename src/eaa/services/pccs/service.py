"""The PCCS logic, independent of HTTP: parameter checks, cache lookups, LAZY fills, imports.

Modes (as Intel's PCCS): LAZY serves from the store and, on a miss or once a record's
``nextUpdate`` has passed, fetches from the upstream, validates, stores and serves; REQ fetches
Intel collateral only when a platform is registered (POST /platforms) and otherwise serves only
what it holds (AMD KDS data, which has no registration, is fetched on demand); OFFLINE never
contacts anything and serves only what was imported. When the upstream is down a LAZY service still
serves every record it holds (stale ones included: refusing them would turn an upstream outage into
a verification outage; verifiers flag expired collateral themselves) and fails only for data it
never had. Upstream data that fails validation is never stored. What a client then gets on Intel's
routes is Intel's status (errors.py): 404 when the upstream answered anything but usable collateral
(404, 5xx, invalid data), 504 when it could not be reached.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import field, replace
from urllib.parse import parse_qs

from cryptography import x509

from ...collateral.cache import Cached, MemoryCache
from ...collateral.errors import (
    CollateralNotFound,
    CorruptCollateral,
    UpstreamRejected,
    UpstreamServerError,
    UpstreamUnavailable,
)
from ...collateral.kds import KdsChain, check_hwid, check_product, kds_query, validate_cert_chain
from ...errors import EaaError, FormatError, TransportError, VerificationError
from ...formats.snp_report import TcbVersion
from ...pki.trust import TrustAnchor, default_anchors
from ...records import record
from .appraisal import AppraisalPolicy, fmspc_param
from .errors import (
    BadRequest,
    IntegrityError,
    NotFound,
    PlatformUnknown,
    ServiceError,
    StorageUnavailable,
    UpstreamBadData,
    UpstreamDown,
    UpstreamFailed,
)
from .metrics import Metrics
from .platforms import (
    STATE_CACHED,
    STATE_NOT_AVAILABLE,
    STATE_PENDING,
    Registration,
    check_hex,
    listing,
    platforms_source,
)
from .records import (
    APPRAISAL,
    IDENTITY,
    KDS_CHAIN,
    KDS_CRL,
    KDS_VEK,
    PCK_CERT,
    PCK_CRL,
    PLATFORM,
    ROOT_CRL,
    TCB,
    Record,
    identity_key,
    kds_key,
    pck_cert_key,
    platform_key,
    tcb_key,
    validate_record,
    vek_key,
)
from .refresh import RefreshSummary, fmspc_list, refresh_cache, refresh_type
from .store import Store
from .upstream import Upstream

log = logging.getLogger("eaa.pccs")

QEID_MAX_SIZE = 260  # hex characters, as Intel's PCCS
ENC_PPID_SIZES = (512, 768)  # RSA-2048 / RSA-3072 encrypted PPID, hex
DEFAULT_MIN_REFRESH = 600.0
DEFAULT_NEGATIVE_TTL = 60.0
_LOCK_STRIPES = 64


class Mode(enum.Enum):
    LAZY = "lazy"
    REQ = "req"
    OFFLINE = "offline"


@record
class Registered:
    """What a registration did: the platform's state (cached, pending), why it is pending, which REQ-mode
    collateral could not be fetched, and the error Intel's PCCS would answer the registration with."""

    state: str
    error: str = ""
    missing: list[str] = field(default_factory=list)
    failure: ServiceError | None = None


@record
class Answer:
    """A record to serve and how the cache produced it (``EAA-Cache-Status``)."""

    record: Record
    cache: str  # "hit", "miss" (fetched now) or "stale" (expired, upstream unavailable)


# ---- request parameter checks (every failure is a 400 with a message naming the parameter) ----

def need(value: str | None, name: str) -> str:
    if value is None or value == "":
        raise BadRequest(f"missing query parameter {name!r}")
    return value


def hex_param(value: str | None, name: str, digits: int | tuple[int, ...] | None = None,
              max_digits: int | None = None) -> str:
    v = need(value, name)
    sizes = (digits,) if isinstance(digits, int) else digits
    if sizes is not None and len(v) not in sizes:
        raise BadRequest(f"{name} must be {' or '.join(map(str, sizes))} hex digits, got {len(v)}")
    checked = check_hex(v, name, max_size=max_digits)
    assert checked is not None  # not optional: check_hex raised otherwise
    return checked


def update_param(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.lower()
    if v not in ("standard", "early"):
        raise BadRequest("update must be 'standard' or 'early'")
    return v


def ca_param(value: str | None) -> str:
    v = need(value, "ca").lower()
    if v not in ("processor", "platform"):
        raise BadRequest("ca must be 'processor' or 'platform'")
    return v


def encoding_param(value: str | None) -> str:
    v = (value or "pem").lower()
    if v not in ("pem", "der"):
        raise BadRequest("encoding must be 'der' or 'pem'")
    return v


def product_param(value: str) -> str:
    try:
        return check_product(value)
    except FormatError as e:
        raise BadRequest(str(e)) from None


def spl_param(value: str | None, name: str) -> int:
    v = need(value, name)
    if not v.isascii() or not v.isdigit() or len(v) > 3 or int(v) > 255:
        raise BadRequest(f"{name} must be an integer 0..255")
    return int(v)


def _tcb_digits(hexstr: str) -> tuple[int, ...]:
    return tuple(bytes.fromhex(hexstr))


class PccsService:
    def __init__(self, store: Store, *, mode: Mode = Mode.LAZY, upstream: Upstream | None = None,
                 anchors: Sequence[TrustAnchor] | None = None,
                 trusted_arks: Sequence[x509.Certificate] | None = None,
                 clock: Callable[[], float] = time.time, min_refresh: float = DEFAULT_MIN_REFRESH,
                 negative_ttl: float = DEFAULT_NEGATIVE_TTL, metrics: Metrics | None = None) -> None:
        if mode is not Mode.OFFLINE and upstream is None:
            raise ValueError(f"{mode.name} mode needs an upstream")
        self.store = store
        self.mode = mode
        self.upstream = upstream
        self.anchors = tuple(anchors) if anchors else default_anchors()
        self.trusted_arks = trusted_arks
        self.clock = clock
        self.min_refresh = min_refresh
        self.metrics = metrics or Metrics()
        self.negative_ttl = negative_ttl
        # Upstream "not found" answers, remembered briefly: a v4-then-v3 client would otherwise send every
        # request for v3-only data through to the upstream's 404.
        self._negative: MemoryCache[str] = MemoryCache(4096)
        self._stripes = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    # ---- storage, with storage failures as 503 ----
    def _get(self, kind: str, key: str) -> Record | None:
        try:
            return self.store.get(kind, key)
        except (TransportError, OSError) as e:
            raise StorageUnavailable(f"the collateral store is unavailable: {e}") from None
        except Exception as e:  # noqa: BLE001 - e.g. sqlite3.OperationalError: still a storage outage
            raise StorageUnavailable(f"the collateral store failed: {type(e).__name__}: {e}") from None

    def _put(self, record: Record) -> None:
        try:
            self.store.put(record)
        except Exception as e:  # noqa: BLE001 - a record that cannot be kept is still served
            log.error("cannot store %s %s: %s", record.kind, record.key, e)

    def fresh(self, rec: Record, now: float) -> bool:
        """Within ``nextUpdate``, or refreshed so recently that asking again would only load the upstream."""
        return rec.next_update is None or now < rec.next_update or now < rec.fetched_at + self.min_refresh

    def _fills(self, fill: bool) -> bool:
        """Whether a lookup may go to the upstream: always in LAZY mode, in REQ mode only when filling for a
        platform registration (``fill``), never when OFFLINE."""
        return self.mode is not Mode.OFFLINE and self.upstream is not None and (self.mode is Mode.LAZY or fill)

    def _lookup(self, kind: str, key: str, what: str, fetch: Callable[[], Record], api: int = 0, *,
                fill: bool = False) -> Answer:
        """A record from the store, else from the upstream when :meth:`_fills`; ``api`` scopes remembered
        upstream 404s."""
        rec = self._get(kind, key)
        fills = self._fills(fill)
        if rec is not None and (not fills or self.fresh(rec, self.clock())):
            self.metrics.cache.labels(kind, "hit").inc()
            return Answer(rec, "hit")
        if not fills:
            self.metrics.cache.labels(kind, "miss").inc()
            if self.mode is Mode.REQ:
                raise NotFound(f"no cached {what}; this PCCS is in REQ mode and fetches collateral only when a "
                               "platform is registered (POST /platforms)")
            raise NotFound(f"no cached {what}; this PCCS is OFFLINE (import the collateral with eaa-pccs import)")
        negative_key = f"{kind}\0{key}\0{api}"
        negative = self._negative.get(negative_key)
        if rec is None and negative is not None and negative.fresh(self.clock()):
            self.metrics.cache.labels(kind, "negative").inc()
            raise NotFound(negative.value)
        with self._stripes[zlib.crc32(f"{kind}\0{key}".encode()) % _LOCK_STRIPES]:
            again = self._get(kind, key)  # another request may have filled it meanwhile
            if again is not None and self.fresh(again, self.clock()):
                self.metrics.cache.labels(kind, "hit").inc()
                return Answer(again, "hit")
            rec = again or rec
            return self._fill(kind, negative_key, what, rec, fetch)

    def _fill(self, kind: str, negative_key: str, what: str, stale: Record | None,
              fetch: Callable[[], Record]) -> Answer:
        try:
            new = fetch()
        except UpstreamUnavailable as e:
            self.metrics.upstream.labels(kind, "unavailable").inc()
            if stale is not None:
                log.warning("serving stale %s: %s", what, e)
                self.metrics.cache.labels(kind, "stale").inc()
                return Answer(stale, "stale")
            failed = UpstreamFailed if isinstance(e, UpstreamServerError) else UpstreamDown
            raise failed(f"{what} is not cached and the upstream is unavailable ({e})") from None
        except CorruptCollateral as e:
            self.metrics.upstream.labels(kind, "invalid").inc()
            log.error("upstream sent invalid %s: %s", what, e)
            if stale is not None:
                self.metrics.cache.labels(kind, "stale").inc()
                return Answer(stale, "stale")
            raise UpstreamBadData(f"the upstream returned {what} that failed validation: {e}") from None
        except CollateralNotFound as e:
            self.metrics.upstream.labels(kind, "not_found").inc()
            if stale is not None:
                return Answer(stale, "stale")
            now = self.clock()
            message = f"no {what}: {e}"
            self._negative.put(negative_key, Cached(message, now, now + self.negative_ttl))
            raise NotFound(message) from None
        except UpstreamRejected as e:
            self.metrics.upstream.labels(kind, "rejected").inc()
            if stale is not None:
                return Answer(stale, "stale")
            raise UpstreamBadData(f"the upstream refused the request for {what}: {e}") from None
        except FormatError as e:  # upstream body did not even parse
            self.metrics.upstream.labels(kind, "invalid").inc()
            if stale is not None:
                return Answer(stale, "stale")
            raise UpstreamBadData(f"the upstream returned malformed {what}: {e}") from None
        self.metrics.upstream.labels(kind, "ok").inc()
        self.metrics.cache.labels(kind, "miss").inc()
        self._put(new)
        return Answer(new, "miss")

    def _up(self) -> Upstream:
        assert self.upstream is not None
        return self.upstream

    # ---- Intel API ----
    # ``fill``: fetch on a miss even in REQ mode (a platform registration is being served).
    def tcb_info(self, tee: str, api: int, fmspc: str | None, update: str | None, *, fill: bool = False) -> Answer:
        fm = hex_param(fmspc, "fmspc", 12)
        upd = update_param(update)
        try:
            return self._lookup(TCB, tcb_key(tee, api, fm, upd or "standard"),
                                f"{tee.upper()} TCB info for FMSPC {fm}", lambda: self._up().tcb(tee, api, fm, upd),
                                api, fill=fill)
        except (NotFound, UpstreamDown):
            if api != 3:
                raise
            # An API v3 client (a QCNL file naming /sgx/certification/v3/) of a cache that holds only the
            # v4 document (TCB info version 3, e.g. imported collateral): its body and signature are the
            # same shape on both APIs and QVL-style verifiers read both versions, so serve it rather than 404
            newer = self._get(TCB, tcb_key(tee, 4, fm, upd or "standard"))
            if newer is None:
                raise
            self.metrics.cache.labels(TCB, "hit").inc()
            return Answer(newer, "hit")

    def identity(self, tee: str, which: str, api: int, update: str | None, *, fill: bool = False) -> Answer:
        upd = update_param(update)
        return self._lookup(IDENTITY, identity_key(tee, which, upd or "standard"),
                            f"{tee.upper()} {which.upper()} identity",
                            lambda: self._up().identity(tee, which, api, upd), api, fill=fill)

    def pck_crl(self, api: int, ca: str | None, encoding: str | None, *, fill: bool = False) -> Answer:
        c = ca_param(ca)
        encoding_param(encoding)
        return self._lookup(PCK_CRL, c, f"PCK {c} CA CRL", lambda: self._up().pck_crl(api, c), api, fill=fill)

    def root_ca_crl(self, api: int, *, fill: bool = False) -> Answer:
        return self._lookup(ROOT_CRL, "root", "root CA CRL", lambda: self._up().root_crl(api), api, fill=fill)

    def pck_cert(self, api: int, qeid: str | None, cpusvn: str | None, pcesvn: str | None, pceid: str | None,
                 encrypted_ppid: str | None, *, fill: bool = False) -> Answer:
        q = hex_param(qeid, "qeid", max_digits=QEID_MAX_SIZE)
        cpu = hex_param(cpusvn, "cpusvn", 32)
        pce = hex_param(pcesvn, "pcesvn", 4)
        pid = hex_param(pceid, "pceid", 4)
        enc = hex_param(encrypted_ppid, "encrypted_ppid", ENC_PPID_SIZES) if encrypted_ppid is not None else None
        key = pck_cert_key(q, cpu, pce, pid)
        what = f"PCK certificate for QE ID {q}"
        rec = self._get(PCK_CERT, key)
        if rec is None:
            selected = self._select_pck_cert(q, pid, cpu, pce)
            if selected is not None:
                self.metrics.cache.labels(PCK_CERT, "hit").inc()
                return Answer(selected, "hit")
            if not self._fills(fill) and not self._platform_known(q, pid):
                self.metrics.cache.labels(PCK_CERT, "miss").inc()
                raise PlatformUnknown(f"platform with QE ID {q} and PCE ID {pid} is not in the cache "
                                      f"({self.mode.name} mode fetches nothing for unknown platforms)")
        return self._lookup(PCK_CERT, key, what, lambda: self._up().pck_cert(api, q, cpu, pce, pid, enc), api,
                            fill=fill)

    def _platform_known(self, qeid: str, pceid: str) -> bool:
        """Intel's PCCS answers 461 (platform unknown) rather than 404 when it holds nothing for the platform."""
        if self._get(PLATFORM, platform_key(qeid, pceid)) is not None:
            return True
        try:
            return any(r.key.endswith("/" + pceid) for r in self.store.scan(PCK_CERT, qeid + "/"))
        except Exception:  # noqa: BLE001 - the lookup that follows reports storage failures
            return False

    def _select_pck_cert(self, qeid: str, pceid: str, cpusvn: str, pcesvn: str) -> Record | None:
        """The best cached PCK certificate of this platform for a raw TCB it has no exact entry for.

        Like Intel's PCK certificate selection for TCB type 0 (the 16 CPUSVN bytes are the SGX TCB
        components): among the platform's certificates whose TCB is not above the raw TCB in any
        component, take the highest.
        """
        try:
            candidates = list(self.store.scan(PCK_CERT, qeid + "/"))
        except Exception:  # noqa: BLE001 - selection is an optimisation; a storage error shows up on the lookup
            return None
        raw = (*_tcb_digits(cpusvn), int.from_bytes(bytes.fromhex(pcesvn), "little"))
        best: tuple[tuple[int, ...], Record] | None = None
        for rec in candidates:
            if not rec.key.endswith("/" + pceid) or len(rec.meta.get("tcbm", "")) != 36:
                continue
            tcbm = bytes.fromhex(rec.meta["tcbm"])
            level = (*tcbm[:16], int.from_bytes(tcbm[16:], "little"))
            if all(a <= b for a, b in zip(level, raw, strict=True)) and (best is None or level > best[0]):
                best = (level, rec)
        return best[1] if best else None

    # ---- platform registration and refresh (Intel PCCS admin routes) ----
    def register_platform(self, api: int, body: object) -> Registered:
        """Store a registration and, unless OFFLINE, fetch its PCK certificate now, as Intel's PCCS does; in
        REQ mode also the rest of the collateral its quotes will need, since nothing is fetched later.

        A failed fetch leaves the platform stored as ``pending`` with the reason (registering it again
        retries, as Intel's REQ mode keeps it queued) and is the registration's ``failure``: Intel's
        PCCS answers the registration with the fetch's error (platformsRegService.js lets it propagate).
        """
        if not isinstance(body, dict):
            raise BadRequest("the registration must be a JSON object")
        reg = Registration.parse(body)
        state, error = STATE_PENDING, ""
        missing: list[str] = []
        failure: ServiceError | None = None
        if self.mode is Mode.OFFLINE:
            # Intel's checkPCKCertCacheStatus: a platform whose certificate is already cached is not queued
            # for the admin (GET /platforms?source=reg)
            if (self._get(PCK_CERT, pck_cert_key(reg.qe_id, reg.cpu_svn, reg.pce_svn, reg.pce_id)) is not None
                    or self._select_pck_cert(reg.qe_id, reg.pce_id, reg.cpu_svn, reg.pce_svn) is not None):
                state = STATE_CACHED
        else:
            try:
                pck = self.pck_cert(api, reg.qe_id, reg.cpu_svn, reg.pce_svn, reg.pce_id, reg.enc_ppid, fill=True)
                state = STATE_CACHED
                if self.mode is Mode.REQ:
                    missing, failure = self._fill_platform_collateral(api, pck.record)
            except ServiceError as e:
                error, failure = str(e), e
                log.warning("platform %s registered, PCK certificate not fetched: %s", reg.key, e)
        try:
            self.store.put(reg.to_record(state=state, now=self.clock(), error=error))
        except Exception as e:  # noqa: BLE001 - an unstored registration must not be acknowledged
            raise StorageUnavailable(f"cannot store the registration: {e}") from None
        return Registered(state, error, missing, failure)

    def _fill_platform_collateral(self, api: int, pck: Record) -> tuple[list[str], ServiceError | None]:
        """REQ mode: TCB info for the platform's FMSPC, its CA's CRL, the QE/QvE identities and the root CA
        CRL, fetched now. Returns what could not be fetched, and the first such error. TDX collateral is
        fetched too; an FMSPC that has none (an SGX-only platform) is not an error, nor is an upstream
        without a QvE identity (only QvE-based verifiers need it)."""
        fmspc, ca = pck.meta.get("fmspc", ""), pck.meta.get("ca_type", "").lower()
        wanted: list[tuple[str, Callable[[], Answer], bool]] = [
            ("SGX TCB info", lambda: self.tcb_info("sgx", api, fmspc, None, fill=True), False),
            ("PCK CRL", lambda: self.pck_crl(api, ca, None, fill=True), False),
            ("QE identity", lambda: self.identity("sgx", "qe", api, None, fill=True), False),
            ("QvE identity", lambda: self.identity("sgx", "qve", api, None, fill=True), True),
            ("root CA CRL", lambda: self.root_ca_crl(api, fill=True), False),
            ("TDX TCB info", lambda: self.tcb_info("tdx", 4, fmspc, None, fill=True), True),
            ("TD_QE identity", lambda: self.identity("tdx", "qe", 4, None, fill=True), True),
        ]
        missing: list[str] = []
        first: ServiceError | None = None
        for what, fetch, optional in wanted:
            try:
                fetch()
            except NotFound as e:
                if not optional:
                    missing.append(f"{what}: not found upstream")
                    first = first or e
            except ServiceError as e:
                missing.append(f"{what}: {e}")
                first = first or e
        if missing:
            log.warning("platform with FMSPC %s registered, collateral missing: %s", fmspc, "; ".join(missing))
        return missing, first

    def platforms(self, source: str | None = None) -> list[dict[str, object]]:
        """Intel's ``GET /platforms?source=``: ``reg`` (default) lists registered platforms whose PCK
        certificates are not cached yet and removes them from that queue, as Intel's PCCS deletes what it
        returned (so ``PccsAdminTool get`` collects each platform once); ``reg_na`` lists platforms whose
        certificates the upstream reported not available (eaa-pccs fetches one certificate per raw TCB,
        so it never has any); ``[FMSPC,...]`` lists cached platforms of those FMSPCs (``[]``: all)."""
        kind, fmspcs = platforms_source(source)
        try:
            records = list(self.store.scan(PLATFORM))
        except Exception as e:  # noqa: BLE001
            raise StorageUnavailable(f"cannot read the collateral store: {e}") from None
        out, listed = [], []
        for rec in records:
            state = rec.meta.get("state", STATE_PENDING)
            if kind == "reg" and (state != STATE_PENDING or rec.meta.get("listed")):
                continue
            if kind == "reg_na" and state != STATE_NOT_AVAILABLE:
                continue
            if kind == "cached" and (state != STATE_CACHED
                                     or (fmspcs and self._platform_fmspc(rec.key) not in fmspcs)):
                continue
            try:
                out.append(listing(rec, kind))
            except EaaError as e:  # a damaged row must not hide the others
                log.error("skipping unreadable platform record %s: %s", rec.key, e)
                continue
            if kind != "cached":
                listed.append(replace(rec, meta={**rec.meta, "listed": "1"}))
        if listed:
            try:
                self.store.put_many(listed)
            except Exception as e:  # noqa: BLE001 - not removed from the queue: they are listed again next time
                log.error("cannot mark listed platforms: %s", e)
        return out

    def _platform_fmspc(self, key: str) -> str:
        qeid, _, pceid = key.partition("/")
        try:
            for rec in self.store.scan(PCK_CERT, qeid + "/"):
                if rec.key.endswith("/" + pceid) and rec.meta.get("fmspc"):
                    return rec.meta["fmspc"].upper()
        except Exception:  # noqa: BLE001
            pass
        return ""

    def refresh(self, api: int, kind: str | None, fmspcs: Sequence[str] | None) -> RefreshSummary:
        return refresh_cache(self, api, refresh_type(kind), fmspc_list(fmspcs))

    # ---- AMD KDS ----
    def _chain(self, key_type: str, product: str) -> tuple[Answer, KdsChain]:
        # AMD data has no registration to wait for: REQ mode fetches it on demand, like LAZY.
        ans = self._lookup(KDS_CHAIN, kds_key(key_type, product), f"{product} {key_type.upper()} certificate chain",
                           lambda: self._up().kds_chain(key_type, product), fill=True)
        try:
            chain = validate_cert_chain(ans.record.body, product, key_type, self.trusted_arks)
        except CorruptCollateral as e:  # stored data is validated on the way in; this is defence in depth
            raise UpstreamBadData(f"stored {product} certificate chain does not verify: {e}") from None
        return ans, chain

    def kds_cert_chain(self, key_type: str, product: str) -> Answer:
        return self._chain(key_type, product_param(product))[0]

    def kds_crl(self, key_type: str, product: str) -> Answer:
        p = product_param(product)
        rec = self._get(KDS_CRL, kds_key(key_type, p))
        if rec is not None and (not self._fills(True) or self.fresh(rec, self.clock())):
            self.metrics.cache.labels(KDS_CRL, "hit").inc()
            return Answer(rec, "hit")
        _, chain = self._chain(key_type, p)
        return self._lookup(KDS_CRL, kds_key(key_type, p), f"{p} {key_type.upper()} CRL",
                            lambda: self._up().kds_crl(key_type, p, chain), fill=True)

    def kds_vcek(self, product: str, hwid: str, bl: str | None, tee: str | None, snp: str | None,
                 ucode: str | None, fmc: str | None) -> Answer:
        p = product_param(product)
        try:
            hw = check_hwid(p, hwid) if len(hwid) == 2 * (8 if p == "Turin" else 64) else None
        except FormatError:
            hw = None
        if hw is None:
            raise BadRequest(f"hwid must be {16 if p == 'Turin' else 128} hex digits for {p}")
        if p == "Turin":
            fmc_v: int | None = spl_param(fmc, "fmcSPL")
        elif fmc is not None:
            raise BadRequest("fmcSPL applies to Turin only")
        else:
            fmc_v = None
        tcb = TcbVersion.of(p, bl=spl_param(bl, "blSPL"), tee=spl_param(tee, "teeSPL"), snp=spl_param(snp, "snpSPL"),
                            ucode=spl_param(ucode, "ucodeSPL"), fmc=fmc_v)
        key = vek_key(p, hw, kds_query(tcb))
        rec = self._get(KDS_VEK, key)
        if rec is not None and (not self._fills(True) or self.fresh(rec, self.clock())):
            self.metrics.cache.labels(KDS_VEK, "hit").inc()
            return Answer(rec, "hit")
        _, chain = self._chain("vcek", p)
        return self._lookup(KDS_VEK, key, f"{p} VCEK for hwid {hw[:16]}…",
                            lambda: self._up().kds_vek(p, hw, tcb, chain), fill=True)

    # ---- import / export ----
    def validate_for_import(self, records: Iterable[Record]) -> list[Record]:
        """Validate every record (chains for KDS CRLs/VEKs from the batch or the store); all or nothing."""
        recs = list(records)
        chains: dict[tuple[str, str], KdsChain] = {}
        out: list[Record] = []
        now = self.clock()
        for n, rec in sorted(enumerate(recs, 1), key=lambda nr: nr[1].kind != KDS_CHAIN):  # chains first
            try:
                chain = None
                if rec.kind in (KDS_CRL, KDS_VEK):
                    key_type, product = ("vcek", rec.key.split("/")[0]) if rec.kind == KDS_VEK else rec.key.split("/")
                    product = check_product(product)
                    chain = chains.get((key_type, product))
                    if chain is None:
                        stored = self._get(KDS_CHAIN, kds_key(key_type, product))
                        if stored is not None:
                            chain = validate_cert_chain(stored.body, product, key_type, self.trusted_arks)
                checked = validate_record(rec, self.anchors, self.trusted_arks, chain)
            except VerificationError as e:  # signatures, chains, CRLs: Intel's 460
                raise IntegrityError(f"record {n} ({rec.kind}) rejected: {e}", check=e.check) from None
            except (EaaError, ValueError) as e:
                raise BadRequest(f"record {n} ({rec.kind}) rejected: {e}",
                                 check=e.check if isinstance(e, EaaError) else None) from None
            if checked.kind == KDS_CHAIN:
                key_type, product = checked.key.split("/")
                chains[(key_type, product)] = validate_cert_chain(checked.body, product, key_type, self.trusted_arks)
            out.append(Record(checked.kind, checked.key, checked.body, checked.meta, checked.next_update,
                              checked.fetched_at or now, "import"))
        return out

    def import_records(self, records: Iterable[Record], *, batch_size: int = 0,
                       progress: Callable[[int], None] | None = None) -> int:
        """Validate all, then write in transactions of about ``batch_size`` records (0: one transaction).

        A platform's registration and its PCK certificates are one unit that is never split across
        transactions (a batch grows past ``batch_size`` rather than split it), so a process killed
        between commits never leaves a registration without its certificates or the reverse.
        """
        checked = self.validate_for_import(records)
        size = batch_size if batch_size > 0 else max(1, len(checked))
        done = 0
        for batch in import_batches(checked, size):
            try:
                self.store.put_many(batch)
            except Exception as e:  # noqa: BLE001
                raise StorageUnavailable(f"cannot write to the collateral store: {e}") from None
            done += len(batch)
            self.metrics.imported.inc(len(batch))
            if progress is not None:
                progress(done)
        return done

    # ---- /crl and /appraisalpolicy ----
    def crl_by_uri(self, api: int, uri: str | None) -> Answer:
        """Intel's ``GET /crl?uri=`` (QCNL with pccs_api_version 3.1): a CRL named by its distribution
        point, which must be Intel's root CA CRL or a PCS PCK CRL URL (as Intel's PCCS requires); served
        from the same records as /rootcacrl and /pckcrl."""
        if not uri or len(uri) > MAX_CRL_URI:
            raise BadRequest(f"uri must be a CRL distribution point URL of at most {MAX_CRL_URI} characters")
        if _ROOT_CRL_URI.fullmatch(uri):
            return self.root_ca_crl(api)
        m = _PCK_CRL_URI.fullmatch(uri)
        if m is None:
            raise BadRequest("uri is not an Intel root CA CRL or PCK CRL distribution point")
        ca = parse_qs(m.group("query")).get("ca", [None])[0]
        return self.pck_crl(api, ca, None)

    def put_appraisal_policy(self, body: object) -> str:
        """Store a policy (Intel's id: its SHA-384); a new default replaces the FMSPC's default of its type."""
        pol = AppraisalPolicy.parse(body)
        now = self.clock()
        updates = [pol.to_record(now)]
        try:
            if pol.is_default:
                for rec in self.store.scan(APPRAISAL, pol.fmspc + "/"):
                    if (rec.key != updates[0].key and rec.meta.get("default") == "true"
                            and rec.meta.get("type") == str(pol.policy_type)):
                        updates.append(replace(rec, meta={**rec.meta, "default": "false"}))
            self.store.put_many(updates)
        except Exception as e:  # noqa: BLE001
            raise StorageUnavailable(f"cannot store the appraisal policy: {e}") from None
        return pol.id

    def appraisal_policies(self, fmspc: str | None) -> str:
        """The FMSPC's default policies joined with commas (Intel's body); 404 when there is none."""
        f = fmspc_param(fmspc)
        try:
            records = list(self.store.scan(APPRAISAL, f + "/"))
        except Exception as e:  # noqa: BLE001
            raise StorageUnavailable(f"cannot read the collateral store: {e}") from None
        policies = [r.body.decode("utf-8", "replace") for r in records if r.meta.get("default") == "true"]
        if not policies:
            raise NotFound(f"no default appraisal policy for FMSPC {f}")
        return ",".join(policies)

    def export_records(self) -> list[Record]:
        try:
            return list(self.store.scan())
        except Exception as e:  # noqa: BLE001
            raise StorageUnavailable(f"cannot read the collateral store: {e}") from None


MAX_CRL_URI = 2048
_ROOT_CRL_URI = re.compile(
    r"https://([a-zA-Z0-9-]*certificates\.trustedservices\.intel\.com|certprx\.adsdcsp\.com)/IntelSGXRootCA\..*")
_PCK_CRL_URI = re.compile(
    r"https://([a-zA-Z0-9-]*\.?api\.trustedservices\.intel\.com|[a-zA-Z0-9-]+\.az\.sgx(prod|np)\.adsdcsp\.com)"
    r"/sgx/certification/v[1-9][0-9]*/pckcrl\?(?P<query>.*)")


def _unit(rec: Record) -> str | None:
    """The platform a record belongs to (registration or PCK certificate), None for shared collateral."""
    if rec.kind == PLATFORM:
        return rec.key.upper()
    if rec.kind == PCK_CERT:
        parts = rec.key.split("/")
        if len(parts) == 4:
            return platform_key(parts[0], parts[3])
    return None


def import_batches(records: Sequence[Record], size: int) -> list[list[Record]]:
    """Records in batches of about ``size``, each platform's records together in one batch."""
    units: dict[str, list[Record]] = {}
    order: list[list[Record]] = []
    for rec in records:
        key = _unit(rec)
        if key is None:
            order.append([rec])
        elif key in units:
            units[key].append(rec)
        else:
            units[key] = [rec]
            order.append(units[key])
    batches: list[list[Record]] = []
    current: list[Record] = []
    for unit in order:
        if current and len(current) + len(unit) > size:
            batches.append(current)
            current = []
        current.extend(unit)
    if current:
        batches.append(current)
    return batches
