"""Building an eaa-pccs service from options, and reading import sources: shared by the CLI, tests and benchmarks.

Import sources come in the forms users already have: an eaa-pccs bundle (``eaa-pccs export``), a
QuoteCollateralV3 JSON file (dcap-qvl, the vectors), or a directory of PCS-style files (``eaa sim
collateral -o DIR``, Intel's QVL sample layout).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from ...collateral.bundle import MAX_COLLATERAL_FILE, load_collateral
from ...collateral.http import tls_verify
from ...collateral.kds import KDS_URL, KdsClient
from ...collateral.pcs import INTEL_PCS_URL, PcsClient
from ...errors import ConfigError
from ...formats.x509_errors import PARSE_ERRORS
from ...pki.trust import TrustAnchor, anchor_from_file, default_anchors
from .auth import Tokens, check_hash, check_token_text, token_hash
from .breaker import DEFAULT_COOLDOWN, DEFAULT_THRESHOLD, CircuitBreaker
from .records import Record, parse_bundle, records_from_collateral
from .service import DEFAULT_MIN_REFRESH, Mode, PccsService
from .store import open_store
from .upstream import Upstream

ENV_ADMIN_TOKEN = "EAA_PCCS_ADMIN_TOKEN"
ENV_USER_TOKEN = "EAA_PCCS_USER_TOKEN"
ENV_ADMIN_TOKEN_HASH = "EAA_PCCS_ADMIN_TOKEN_HASH"
ENV_USER_TOKEN_HASH = "EAA_PCCS_USER_TOKEN_HASH"
MAX_SECRET_FILE = 64 << 10
DEFAULT_DB = "eaa-pccs.sqlite3"


@dataclass
class ServiceOptions:
    """What :func:`build_service` needs to build an eaa-pccs service: its store, mode, upstreams and trust anchors."""

    db: str = DEFAULT_DB
    mode: Mode = Mode.LAZY
    upstream: str | None = INTEL_PCS_URL
    kds_upstream: str | None = KDS_URL
    upstream_api_key: str | None = None
    upstream_ca_file: str | None = None
    upstream_insecure: bool = False
    upstream_timeout: float = 10.0
    upstream_retries: int = 2
    upstream_retry_delay: float = 1.0
    anchors: Sequence[TrustAnchor] = field(default_factory=default_anchors)
    trusted_arks: Sequence[x509.Certificate] | None = None
    min_refresh: float = DEFAULT_MIN_REFRESH
    pool_size: int = 16
    clock: Callable[[], float] = time.time
    breaker_threshold: int = DEFAULT_THRESHOLD
    breaker_cooldown: float = DEFAULT_COOLDOWN


def build_service(opts: ServiceOptions) -> PccsService:
    store = open_store(opts.db, pool_size=opts.pool_size)
    upstream = None
    if opts.mode is not Mode.OFFLINE:
        verify = tls_verify(not opts.upstream_insecure, opts.upstream_ca_file)
        common = dict(timeout=opts.upstream_timeout, retries=opts.upstream_retries,
                      retry_delay=opts.upstream_retry_delay, verify=verify, clock=opts.clock)
        pcs = PcsClient(opts.upstream, anchors=opts.anchors, api_key=opts.upstream_api_key,
                        **common) if opts.upstream else None  # type: ignore[arg-type]
        kds = KdsClient(opts.kds_upstream, trusted_arks=opts.trusted_arks,
                        **common) if opts.kds_upstream else None  # type: ignore[arg-type]
        breakers = {name: CircuitBreaker(name, threshold=opts.breaker_threshold, cooldown=opts.breaker_cooldown)
                    for name in ("Intel PCS", "AMD KDS")}
        upstream = Upstream(pcs, kds, anchors=opts.anchors, trusted_arks=opts.trusted_arks, clock=opts.clock,
                            pcs_breaker=breakers["Intel PCS"], kds_breaker=breakers["AMD KDS"])
    return PccsService(store, mode=opts.mode, upstream=upstream, anchors=opts.anchors,
                       trusted_arks=opts.trusted_arks, clock=opts.clock, min_refresh=opts.min_refresh)


def resolve_anchors(trust_roots: Sequence[str], trust_sim: bool, sim_dir: str | None = None) -> list[TrustAnchor]:
    """Intel's root, plus roots named on the command line, plus the simulated root only when asked."""
    anchors = list(default_anchors()) + [anchor_from_file(p) for p in trust_roots]
    if trust_sim:
        from ...sim import simulation_anchor

        anchors.append(simulation_anchor(sim_dir))
    return anchors


def load_arks(paths: Sequence[str]) -> list[x509.Certificate] | None:
    """AMD root certificates to trust instead of the pinned ones (``None``: the pinned AMD ARKs)."""
    if not paths:
        return None
    out: list[x509.Certificate] = []
    for p in paths:
        try:
            data = Path(p).read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read {p}: {e.strerror}") from None
        try:
            out.extend(x509.load_pem_x509_certificates(data))
        except PARSE_ERRORS:
            raise ConfigError(f"{p} holds no PEM certificate") from None
    return out


def read_secret_file(path: str, what: str) -> str:
    """One line of a secret file, checked to be a usable token; no message ever repeats its content."""
    try:
        p = Path(path)
        if p.stat().st_size > MAX_SECRET_FILE:
            raise ConfigError(f"{what} file {path} is too large to hold a token")
        data = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {what} file {path}: {e.strerror}") from None
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{what} file {path} does not hold a token (it is not ASCII text)") from None
    return check_token_text(text, f"{what} in {path}")


def _read_token(path: str | None, env: str, what: str) -> str | None:
    """From a file (never from the command line, where ``ps`` shows it) or the environment."""
    if path:
        return read_secret_file(path, f"{what} token")
    value = os.environ.get(env)
    return check_token_text(value, f"{what} token in ${env}") if value else None


def read_admin_token(path: str | None) -> str | None:
    """From ``path`` or ``$EAA_PCCS_ADMIN_TOKEN``."""
    return _read_token(path, ENV_ADMIN_TOKEN, "admin")


def read_user_token(path: str | None) -> str | None:
    """From ``path`` or ``$EAA_PCCS_USER_TOKEN``."""
    return _read_token(path, ENV_USER_TOKEN, "user")


def load_tokens(*, admin_file: str | None = None, user_file: str | None = None, admin_hash: str | None = None,
                user_hash: str | None = None, open_registration: bool = False) -> Tokens:
    """The server's tokens: Intel's SHA-512 hashes (``--admin-token-hash``, ``$EAA_PCCS_ADMIN_TOKEN_HASH``,
    likewise for the user token, as AdminTokenHash/UserTokenHash in Intel's config) or plaintext token
    files/variables, hashed here. Giving both forms of one token is an error."""
    def one(plain_file: str | None, env: str, hash_value: str | None, hash_env: str, what: str) -> str | None:
        hashed = hash_value or os.environ.get(hash_env) or None
        plain = _read_token(plain_file, env, what)
        if hashed and plain:
            raise ConfigError(f"give the {what} token either as a file/variable or as its SHA-512 hash, not both")
        if hashed:
            return check_hash(hashed, f"the {what} token hash")
        return token_hash(plain) if plain else None

    return Tokens(one(admin_file, ENV_ADMIN_TOKEN, admin_hash, ENV_ADMIN_TOKEN_HASH, "admin"),
                  one(user_file, ENV_USER_TOKEN, user_hash, ENV_USER_TOKEN_HASH, "user"), open_registration)


def read_import_source(path: str, *, now: float) -> list[Record]:
    """Records from a bundle, a QuoteCollateralV3 JSON file or a PCS-style collateral directory."""
    p = Path(path)
    if p.is_dir():
        return records_from_collateral(load_collateral(p), now=now)
    try:
        if p.stat().st_size > 16 * MAX_COLLATERAL_FILE:
            raise ConfigError(f"{path} is too large to import")
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    head = text.lstrip()[:4096]
    if '"format"' in head and "eaa-pccs-bundle" in head:
        return parse_bundle(text)
    return records_from_collateral(load_collateral(p), now=now)
