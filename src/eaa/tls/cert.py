"""Building Enclave-TLS certificates: the DICE format (rats-tls today) and the enclave-tls 0.6 format.

DICE (default): ECDSA P-256 (RSA-3072 on request), version 3, serial 1, validity now-1h .. now+365d,
subject = issuer = ``O=Inclavare Containers, CN=RATS-TLS``; extensions basicConstraints CA:FALSE,
subjectKeyIdentifier, authorityKeyIdentifier (keyid), then the evidence extension ``2.23.133.5.4.9``
and optionally the endorsements extension ``2.23.133.5.4.2``, all non-critical. The evidence binds
the key through the claims buffer: ``report_data[0:32] = SHA256(claims)``.

Legacy (enclave-tls 0.6): RSA-3072, serial 9527, validity now .. now+10*365d, subject = issuer =
``O=Inclavare Containers, OU=Enclave Attestation Architecture, CN=Enclave TLS``, the raw quote in
``1.2.840.113741.1337.6`` (non-critical), ``report_data[0:32] = SHA256(PKCS#1 RSAPublicKey)``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ..errors import ConfigError
from ..evidence import SEV_SNP, SGX_ECDSA, SGX_LA, TDX_ECDSA

DICE = "dice"
LEGACY = "legacy"
CERT_FORMATS = (DICE, LEGACY)

EC_P256 = "ec-p256"
RSA_3072 = "rsa-3072"
KEY_ALGORITHMS = (EC_P256, RSA_3072)

DICE_SERIAL = 1
LEGACY_SERIAL = 9527

# Raw-evidence OIDs of enclave-tls 0.6 / rats-tls before DICE (Intel RA-TLS arc 1.2.840.113741.1337).
OID_LEGACY_SGX_ECDSA = "1.2.840.113741.1337.6"
OID_LEGACY_TDX_ECDSA = "1.2.840.113741.1337.8"
OID_LEGACY_SGX_LA = "1.2.840.113741.1337.14"
OID_LEGACY_SEV_SNP = "1.2.840.113741.1337.20"
OID_LEGACY_SEV = "1.2.840.113741.1337.22"
OID_LEGACY_CSV = "1.2.840.113741.1337.24"
LEGACY_OIDS = {SGX_ECDSA: OID_LEGACY_SGX_ECDSA, TDX_ECDSA: OID_LEGACY_TDX_ECDSA, SGX_LA: OID_LEGACY_SGX_LA,
               SEV_SNP: OID_LEGACY_SEV_SNP}
# Detection order of rats-tls before DICE; SEV and CSV are recognised but cannot be verified.
LEGACY_DETECTION_ORDER = (
    (OID_LEGACY_SGX_ECDSA, SGX_ECDSA), (OID_LEGACY_TDX_ECDSA, TDX_ECDSA), (OID_LEGACY_SGX_LA, SGX_LA),
    (OID_LEGACY_SEV_SNP, SEV_SNP), (OID_LEGACY_SEV, "sev"), (OID_LEGACY_CSV, "csv"),
)

DICE_SUBJECT = x509.Name([
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Inclavare Containers"),
    x509.NameAttribute(NameOID.COMMON_NAME, "RATS-TLS"),
])
LEGACY_SUBJECT = x509.Name([
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Inclavare Containers"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Enclave Attestation Architecture"),
    x509.NameAttribute(NameOID.COMMON_NAME, "Enclave TLS"),
])

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def default_key_algorithm(cert_format: str) -> str:
    return RSA_3072 if cert_format == LEGACY else EC_P256


def generate_key(algorithm: str) -> PrivateKey:
    if algorithm == EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == RSA_3072:
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ConfigError(f"unknown key algorithm {algorithm!r} (use {' or '.join(KEY_ALGORITHMS)})")


def spki_der(key: PrivateKey) -> bytes:
    # Imported here: a client that presents no certificate never needs the serialization package.
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def legacy_key_hash(key: PrivateKey) -> bytes:
    """What enclave-tls 0.6 binds into report_data: SHA256 of PKCS#1 for RSA, of the SPKI for EC (ET 0.6.4)."""
    pub = key.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return hashlib.sha256(pub.public_bytes(Encoding.DER, PublicFormat.PKCS1)).digest()
    return hashlib.sha256(spki_der(key)).digest()


def _now(now: datetime | None) -> datetime:
    now = now or datetime.now(timezone.utc)
    return now.replace(microsecond=0)


def build_dice_certificate(key: PrivateKey, *, evidence_extension: bytes | None = None,
                           endorsements_extension: bytes | None = None,
                           now: datetime | None = None) -> x509.Certificate:
    now = _now(now)
    pub = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(pub)
    builder = (
        x509.CertificateBuilder()
        .subject_name(DICE_SUBJECT)
        .issuer_name(DICE_SUBJECT)
        .public_key(pub)
        .serial_number(DICE_SERIAL)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier(ski.digest, None, None), critical=False)
    )
    if evidence_extension is not None:
        from .dice import OID_TAGGED_EVIDENCE

        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_TAGGED_EVIDENCE), evidence_extension),
            critical=False)
    if endorsements_extension is not None:
        from .dice import OID_ENDORSEMENT_MANIFEST

        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_ENDORSEMENT_MANIFEST), endorsements_extension),
            critical=False)
    return builder.sign(key, hashes.SHA256())


def build_legacy_certificate(key: PrivateKey, *, evidence_type: str | None = None, evidence: bytes = b"",
                             now: datetime | None = None) -> x509.Certificate:
    now = _now(now)
    builder = (
        x509.CertificateBuilder()
        .subject_name(LEGACY_SUBJECT)
        .issuer_name(LEGACY_SUBJECT)
        .public_key(key.public_key())
        .serial_number(LEGACY_SERIAL)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=10 * 365))
    )
    if evidence_type is not None:
        oid = LEGACY_OIDS.get(evidence_type)
        if oid is None:
            raise ConfigError(f"the legacy certificate format has no OID for {evidence_type} evidence")
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), evidence),
                                        critical=False)
    return builder.sign(key, hashes.SHA256())
