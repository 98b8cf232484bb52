"""Crypto wrappers (``openssl`` 25, ``nullcrypto`` 0): keys, key hashes and certificates with evidence.

``openssl`` follows ``rtls_core_generate_certificate``: generate the key, hash it, ask the attester
for evidence over that hash, and wrap everything in a self-signed certificate. ``nullcrypto``
produces nothing, so it can only be combined with ``nulltls``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from types import MappingProxyType

from cryptography import x509

from ..attest.evidence import Attester
from ..collateral.bundle import Collateral
from ..errors import ConfigError
from ..evidence import NULL, SEV_SNP, TDX_ECDSA, Evidence
from ..records import record
from ..registry import Registry
from . import cert as certs
from .claims import encode_claims
from .dice import (
    ENDORSEMENTS_VERSION_SGX,
    ENDORSEMENTS_VERSION_TDX,
    EVIDENCE_TAGS,
    encode_endorsements,
    encode_evidence,
)

log = logging.getLogger("eaa.tls")


@record
class Credentials:
    """A private key and the self-signed certificate that carries its evidence."""

    private_key: certs.PrivateKey
    certificate: x509.Certificate
    cert_format: str
    evidence: Evidence | None
    claims_buffer: bytes | None = None
    custom_claims: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "custom_claims", MappingProxyType(dict(self.custom_claims)))

    @property
    def der(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding  # only where a certificate is presented

        return self.certificate.public_bytes(Encoding.DER)

    @property
    def pem(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return self.certificate.public_bytes(Encoding.PEM)


class OpenSslCrypto:
    name = "openssl"

    def create_credentials(
        self,
        attester: Attester,
        *,
        cert_format: str = certs.DICE,
        key_algorithm: str | None = None,
        custom_claims: Mapping[str, bytes] | None = None,
        endorsements: bool = False,
        now: datetime | None = None,
    ) -> Credentials:
        if cert_format not in certs.CERT_FORMATS:
            raise ConfigError(f"unknown certificate format {cert_format!r} (use dice or legacy)")
        key = certs.generate_key(key_algorithm or certs.default_key_algorithm(cert_format))
        if cert_format == certs.LEGACY:
            return self._legacy(key, attester, custom_claims, now)
        return self._dice(key, attester, custom_claims or {}, endorsements, now)

    @staticmethod
    def _dice(key: certs.PrivateKey, attester: Attester, custom_claims: Mapping[str, bytes], endorsements: bool,
              now: datetime | None) -> Credentials:
        claims = encode_claims(certs.spki_der(key), custom_claims)
        if attester.evidence_type == NULL:
            # nullattester: no evidence extension at all (so no claims travel either), like rats-tls
            if custom_claims:
                log.warning("custom claims are not sent without evidence (nullattester)")
            cert = certs.build_dice_certificate(key, now=now)
            return Credentials(key, cert, certs.DICE, None, None, {})
        evidence = attester.collect_evidence(hashlib.sha256(claims).digest())
        tag = EVIDENCE_TAGS.get(evidence.type)
        if tag is None:
            raise ConfigError(f"no DICE evidence tag for {evidence.type} evidence")
        endorsements_ext = None
        if endorsements:
            if evidence.type == SEV_SNP and evidence.collateral is not None:
                from ..formats.snp_certs import SnpEndorsements
                from .snp_endorsements import encode_snp_endorsements

                assert isinstance(evidence.collateral, SnpEndorsements)
                endorsements_ext = encode_snp_endorsements(evidence.collateral)
            elif isinstance(evidence.collateral, Collateral):
                version = ENDORSEMENTS_VERSION_TDX if evidence.type == TDX_ECDSA else ENDORSEMENTS_VERSION_SGX
                endorsements_ext = encode_endorsements(evidence.collateral, version=version)
            else:  # rats-tls tolerates failing to collect endorsements and omits the extension
                log.warning("the attester has no endorsements for %s evidence; sending none", evidence.type)
        cert = certs.build_dice_certificate(key, evidence_extension=encode_evidence(tag, evidence.data, claims),
                                            endorsements_extension=endorsements_ext, now=now)
        return Credentials(key, cert, certs.DICE, evidence, claims, custom_claims)

    @staticmethod
    def _legacy(key: certs.PrivateKey, attester: Attester, custom_claims: Mapping[str, bytes] | None,
                now: datetime | None) -> Credentials:
        if custom_claims:
            raise ConfigError("the legacy certificate format cannot carry custom claims; use --cert-format dice")
        if attester.evidence_type == NULL:
            return Credentials(key, certs.build_legacy_certificate(key, now=now), certs.LEGACY, None)
        evidence = attester.collect_evidence(certs.legacy_key_hash(key))
        cert = certs.build_legacy_certificate(key, evidence_type=evidence.type, evidence=evidence.data, now=now)
        return Credentials(key, cert, certs.LEGACY, evidence)


class NullCrypto:
    name = "nullcrypto"

    def create_credentials(self, attester: Attester, **_: object) -> Credentials:
        raise ConfigError("crypto wrapper nullcrypto makes no keys or certificates; it only works with tls nulltls")


crypto_wrappers: Registry[OpenSslCrypto | NullCrypto] = Registry("crypto wrapper")
crypto_wrappers.register("openssl", 25, OpenSslCrypto)
crypto_wrappers.register("nullcrypto", 0, NullCrypto)
