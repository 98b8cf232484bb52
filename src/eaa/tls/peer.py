"""Verifying a peer certificate: from DER bytes to a verified, policy-checked identity.

The steps, each with its own typed error:

1. parse the certificate leniently (X.509 version INTEGER 3 allowed), require it to be self-signed
   and its validity to cover the verification time;
2. find the evidence: DICE ``2.23.133.5.4.9`` (must be non-critical) or a legacy ``1.2.840.113741.1337.*``
   OID; no evidence is accepted only by a *named* ``nullverifier``;
3. DICE: decode ``tag([evidence, claims])`` (first CBOR item only), decode the claims, check that
   ``pubkey-hash`` is the hash of the certificate's own SPKI; the expected report data is
   ``SHA256(claims bytes as received)``. Legacy: the expected report data is ``SHA256(PKCS#1 key)``
   (RSA) or ``SHA256(SPKI)`` (EC);
4. pick the verifier (the named one, which must handle this evidence type, or the one named like the
   evidence type), take collateral from the endorsements extension or the configured source, verify;
5. apply the policy.

Results are cached under the exact certificate DER: a certificate seen again is not verified from
scratch, but its validity, the collateral expiry and the policy are checked again every time.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ..errors import ConfigError
from ..evidence import NULL, SEV_SNP
from ..pki.trust import TrustAnchor
from ..records import record
from ..timeutil import as_utc, utc_now
from ..verify.registry import verifier_for_evidence, verifiers
from ..verify.result import VerificationResult
from ..verify.verifier import CollateralSource, Verifier
from . import cert as certs
from .claims import decode_claims
from .dice import (
    OID_ENDORSEMENT_MANIFEST,
    OID_TAGGED_EVIDENCE,
    check_verifiable,
    decode_endorsements,
    decode_evidence,
)
from .errors import (
    CriticalExtension,
    EvidenceTypeMismatch,
    MissingEvidence,
)
from .peercert import PeerCertificate, parse_certificate
from .policy import PolicyLike, apply_policy

NONE_FORMAT = "none"


@record
class PeerIdentity:
    """What the verifying side learns about its peer."""

    result: VerificationResult
    claims: Mapping[str, bytes]  # custom claims (DICE); empty otherwise
    evidence_type: str  # "sgx_ecdsa", "tdx_ecdsa", ... or "nullattester" when there was none
    cert_format: str  # "dice", "legacy" or "none"
    verifier: str
    certificate: bytes | None  # DER, exactly as received
    evidence: bytes = b""
    collateral_from: str | None = None  # "endorsements", "configured" or None
    cached: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))

    @property
    def simulated(self) -> bool:
        return self.result.simulated


@dataclass
class _CacheEntry:
    """A verified peer identity cached under its certificate's DER, reusable only within the time window it records."""

    identity: PeerIdentity
    not_before: datetime
    not_after: datetime
    verified_at: datetime
    fresh_until: datetime


class PeerVerifier:
    """Verifies peer certificates for one configuration; reuse it to keep its cache warm. Thread-safe."""

    def __init__(
        self,
        *,
        verifier: str | Verifier | None = None,
        policy: PolicyLike | None = None,
        trust_anchors: Sequence[TrustAnchor] | None = None,
        trust_simulation: bool = False,
        collateral: CollateralSource = None,
        at: datetime | int | float | None = None,
        clock: Callable[[], datetime] | None = None,
        check_crl: bool = True,
        strict: bool = False,
        sim_dir: Any = None,
        cache_size: int = 256,
        cache_ttl: float = 600.0,
        verifier_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.named_verifier = verifier.name if verifier is not None and not isinstance(verifier, str) else verifier
        self._given = verifier if verifier is not None and not isinstance(verifier, str) else None
        if isinstance(verifier, str) and verifier:
            verifiers.get(verifier)  # unknown names fail now, not at the first handshake
        self.policy = policy
        # One set of options configures a verifier per evidence type a peer may present: each is given the
        # options it takes (e.g. only sev_snp its product and KDS URL); an option no verifier takes is refused
        # now. A disabled peer cache disables the verifiers' own caches too: "verify every handshake in full".
        self._options = dict(verifier_options or {})
        # The simulated platform, trusted or only recognised (its SEV-SNP reports are then refused at once).
        from ..sim.trust import TrustedSimulation, UntrustedSimulation

        simulation = TrustedSimulation(sim_dir) if trust_simulation else None
        untrusted = None if trust_simulation else UntrustedSimulation(sim_dir)
        self._options.update(trust_anchors=trust_anchors, simulation=simulation, untrusted_simulation=untrusted,
                             collateral_source=collateral, check_crl=check_crl, strict=strict,
                             **({"cache_size": 0} if cache_size <= 0 else {}))
        verifiers.check_options(self._options)
        self._at = as_utc(at) if at is not None else None
        self._clock = clock
        self._instances: dict[str, Verifier] = {}
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, _CacheEntry] = OrderedDict()
        self._cache_size = cache_size
        self._cache_ttl = timedelta(seconds=cache_ttl)

    def now(self) -> datetime:
        if self._at is not None:
            return self._at
        if self._clock is not None:
            return as_utc(self._clock())
        return utc_now()

    def verifier(self, name: str) -> Verifier:
        """The verifier called ``name``, configured as this endpoint verifies peers (one instance per name, so
        its caches serve every connection and any evidence the application verifies itself)."""
        if self._given is not None and name == self.named_verifier:
            return self._given
        with self._lock:
            inst = self._instances.get(name)
        if inst is None:
            inst = verifiers.select(name, **verifiers.options_for(name, self._options))
            with self._lock:
                inst = self._instances.setdefault(name, inst)
        return inst

    # ---- public ----
    def verify_certificate(self, der: bytes | None) -> PeerIdentity:
        """Verify a peer's certificate (``None``: the peer sent none, e.g. nulltls). Raises typed errors."""
        at = self.now()
        if der is None:
            return self._no_evidence(None, at, "the peer presented no certificate")
        der = bytes(der)
        hit = self._cached(der, at)
        if hit is not None:
            return hit
        return self._verify(der, at)

    def _cached(self, der: bytes, at: datetime) -> PeerIdentity | None:
        with self._lock:
            entry = self._cache.get(der)
            if entry is None:
                return None
            self._cache.move_to_end(der)
        if not entry.verified_at <= at <= entry.fresh_until:
            return None  # outside the window the cached verdict was valid for: verify from scratch
        # time checks on every handshake
        if at < entry.not_before or at > entry.not_after:
            return None  # let the full path raise the precise error
        apply_policy(self.policy, entry.identity.result)
        return entry.identity

    def _store(self, der: bytes, identity: PeerIdentity, cert: PeerCertificate, at: datetime) -> None:
        if self._cache_size <= 0:
            return
        fresh_until = min(cert.not_after, at + self._cache_ttl)
        exp = identity.result.earliest_expiration
        if exp is not None and not identity.result.collateral_expired:
            fresh_until = min(fresh_until, exp)
        entry = _CacheEntry(
            PeerIdentity(identity.result, identity.claims, identity.evidence_type, identity.cert_format,
                         identity.verifier, identity.certificate, identity.evidence, identity.collateral_from,
                         cached=True),
            cert.not_before, cert.not_after, at, fresh_until)
        with self._lock:
            self._cache[der] = entry
            self._cache.move_to_end(der)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _no_evidence(self, der: bytes | None, at: datetime, why: str) -> PeerIdentity:
        if self.named_verifier != "nullverifier":
            hint = " (name the verifier nullverifier to accept peers without evidence)"
            raise MissingEvidence(f"{why}{hint}")
        result = self.verifier("nullverifier").verify_evidence(
            b"", evidence_type=NULL, report_data_hash=None, collateral=None, at=at)
        apply_policy(self.policy, result)
        return PeerIdentity(result, {}, NULL, NONE_FORMAT, "nullverifier", der)

    def _verify(self, der: bytes, at: datetime) -> PeerIdentity:
        cert = parse_certificate(der)
        cert.check_self_signed()
        cert.check_validity(at)
        # unknown critical extensions are refused; ours get a precise error below
        cert.check_critical_extensions({OID_TAGGED_EVIDENCE, OID_ENDORSEMENT_MANIFEST,
                                        *(oid for oid, _ in certs.LEGACY_DETECTION_ORDER)})

        dice = cert.extension(OID_TAGGED_EVIDENCE)
        claims_map: Mapping[str, bytes] = {}
        if dice is not None:
            if dice.critical:
                raise CriticalExtension("the evidence extension 2.23.133.5.4.9 is marked critical; "
                                        "rats-tls peers refuse such certificates and so do we")
            tagged = decode_evidence(dice.value)
            claims = decode_claims(tagged.claims)
            claims.check_key(cert.spki)
            evidence_type, evidence, expected = tagged.evidence_type, tagged.evidence, claims.digest
            claims_map = claims.custom
            cert_format = certs.DICE
        else:
            legacy = [(e, t) for oid, t in certs.LEGACY_DETECTION_ORDER if (e := cert.extension(oid)) is not None]
            if not legacy:
                identity = self._no_evidence(der, at, "the peer certificate carries no evidence")
                self._store(der, identity, cert, at)
                return identity
            ext, evidence_type = legacy[0]
            if ext.critical:
                raise CriticalExtension(f"the evidence extension {ext.oid} is marked critical")
            evidence = ext.value
            # RSA: SHA256 of the PKCS#1 RSAPublicKey (enclave-tls 0.6); EC (its 0.6.4 ECC mode): of the SPKI
            is_rsa = isinstance(cert.public_key(), rsa.RSAPublicKey)
            expected = hashlib.sha256(cert.pkcs1_public_key() if is_rsa else cert.spki).digest()
            cert_format = certs.LEGACY

        name = self.named_verifier or verifier_for_evidence(evidence_type)
        check_verifiable(evidence_type, name)
        verifier = self.verifier(name)
        if name != "nullverifier" and evidence_type not in verifier.evidence_types:
            raise EvidenceTypeMismatch(f"verifier {name} does not verify {evidence_type} evidence")

        collateral = None
        collateral_from = None
        endorse = cert.extension(OID_ENDORSEMENT_MANIFEST) if cert_format == certs.DICE else None
        if endorse is not None:
            if endorse.critical:
                raise CriticalExtension("the endorsements extension 2.23.133.5.4.2 is marked critical")
            if name != "nullverifier":
                collateral = _decode_endorsements(evidence_type, endorse.value)
                collateral_from = "endorsements"
        if collateral is None and name != "nullverifier" and self._options["collateral_source"] is not None:
            collateral_from = "configured"
        result = verifier.verify_evidence(evidence, evidence_type=evidence_type, report_data_hash=expected,
                                          collateral=collateral, at=at)
        identity = PeerIdentity(result, claims_map, evidence_type, cert_format, name, der, evidence, collateral_from)
        self._store(der, identity, cert, at)
        apply_policy(self.policy, result)
        return identity


def _decode_endorsements(evidence_type: str, value: bytes) -> Any:
    """DCAP collateral for SGX/TDX quotes, the certificate table for SEV-SNP reports."""
    if evidence_type == SEV_SNP:
        from .snp_endorsements import decode_snp_endorsements

        return decode_snp_endorsements(value)
    return decode_endorsements(value).collateral


def make_peer_verifier(config: Any) -> PeerVerifier:
    """A :class:`PeerVerifier` from an :class:`eaa.tls.config.TlsConfig`."""
    if config.verifier is not None and not isinstance(config.verifier, str) and \
            not callable(getattr(config.verifier, "verify_evidence", None)):
        raise ConfigError("verifier must be a name or an object with verify_evidence()")
    return PeerVerifier(
        verifier=config.verifier or None, policy=config.policy, trust_anchors=config.trust_anchors,
        trust_simulation=config.trust_simulation, collateral=config.collateral, at=config.at, clock=config.clock,
        check_crl=config.check_crl, strict=config.strict, sim_dir=config.sim_dir,
        cache_size=config.verify_cache_size, cache_ttl=config.verify_cache_ttl,
        verifier_options=config.verifier_options)
