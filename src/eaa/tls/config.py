"""The one configuration object of an Enclave-TLS endpoint (the Python form of ``rats_tls_conf_t``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

from ..attest.evidence import Attester
from ..errors import ConfigError
from ..pki.trust import TrustAnchor
from ..records import record
from ..verify.verifier import CollateralSource, Verifier
from .cert import CERT_FORMATS, DICE, KEY_ALGORITHMS
from .policy import PolicyLike

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_MESSAGE = 64 * 1024


@record
class TlsConfig:
    """Everything an endpoint needs; every field has a safe default.

    ``attester``/``verifier``/``tls``/``crypto`` take the rats-tls names (``None`` or ``""`` = automatic:
    the highest-priority available attester, the verifier named like the peer's evidence type, ``openssl``)
    or, for attester and verifier, an object implementing the protocol. Naming ``nullverifier`` is the
    only way to accept a peer without evidence.
    """

    attester: str | Attester | None = None
    verifier: str | Verifier | None = None
    tls: str | None = None
    crypto: str | None = None
    mutual: bool = False
    cert_format: str = DICE  # "dice" or "legacy"
    key_algorithm: str | None = None  # "ec-p256" (DICE default) or "rsa-3072" (legacy default)
    custom_claims: Mapping[str, bytes] = field(default_factory=dict)
    endorsements: bool = False  # attach the attester's collateral (DICE endorsements extension)
    policy: PolicyLike | None = None  # None: eaa.tls.policy.DEFAULT_POLICY
    trust_anchors: Sequence[TrustAnchor] | None = None  # None: the pinned Intel SGX Root CA
    trust_simulation: bool = False  # --trust-sim / EAA_TRUST_SIMULATION=1
    collateral: CollateralSource = None  # when the peer sends no endorsements
    at: datetime | int | float | None = None  # fixed verification time; None: the clock
    clock: Callable[[], datetime] | None = None  # None: the system clock (UTC)
    check_crl: bool = True
    strict: bool = False  # expired collateral is an error rather than a flag
    sim_dir: str | os.PathLike[str] | None = None
    attester_options: Mapping[str, Any] = field(default_factory=dict)  # e.g. measure_paths for sim attesters
    verifier_options: Mapping[str, Any] = field(default_factory=dict)  # e.g. product, kds for sev_snp
    timeout: float = DEFAULT_TIMEOUT  # seconds, for connect, handshake and every send/recv
    max_message: int = DEFAULT_MAX_MESSAGE  # upper bound of one recv
    verify_cache_size: int = 256
    verify_cache_ttl: float = 600.0

    def __post_init__(self) -> None:
        if self.cert_format not in CERT_FORMATS:
            raise ConfigError(f"unknown certificate format {self.cert_format!r} (use dice or legacy)")
        if self.key_algorithm is not None and self.key_algorithm not in KEY_ALGORITHMS:
            raise ConfigError(f"unknown key algorithm {self.key_algorithm!r} (use {' or '.join(KEY_ALGORITHMS)})")
        if not self.timeout or self.timeout <= 0:
            raise ConfigError("timeout must be a positive number of seconds")
        if self.max_message <= 0:
            raise ConfigError("max_message must be positive")
        claims = {}
        for k, v in dict(self.custom_claims).items():
            claims[k] = v.encode() if isinstance(v, str) else bytes(v)
        object.__setattr__(self, "custom_claims", MappingProxyType(claims))
        object.__setattr__(self, "attester_options", MappingProxyType(dict(self.attester_options)))
        object.__setattr__(self, "verifier_options", MappingProxyType(dict(self.verifier_options)))
        if self.trust_anchors is not None:
            object.__setattr__(self, "trust_anchors", tuple(self.trust_anchors))

    def replace(self, **changes: Any) -> TlsConfig:
        return replace(self, **changes)
