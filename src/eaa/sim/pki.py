"""The simulated platform's PKI: root CA, PCK platform CA, PCK leaf, TCB signing certificate, CRLs.

It has Intel's shape (shared/docs/dcap-reference.md §2.1, §2.3) so the same verifier code checks it,
and Intel's names nowhere: every subject says ``SIMULATION``, which is how
:func:`eaa.pki.trust.is_simulation_certificate` recognises it. All keys are P-256.

Everything random is derived from one seed and every time from one ``now``, so a platform is a
function of ``(seed, now, tcb state)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..formats.pck_extensions import SGX_EXTENSION_OID
from . import der

# Validity: certificates for a long time, collateral (TCB info, QE identity, CRLs) for a year,
# everything from a little before the creation time so clocks a little behind still accept it.
BACKDATE = timedelta(hours=1)
CERT_VALIDITY = timedelta(days=20 * 365)
COLLATERAL_VALIDITY = timedelta(days=365)

ORGANIZATION = "EAA SIMULATION (not a real TEE)"
ROOT_CN = "EAA SIMULATION SGX Root CA"
PCK_CA_CN = "EAA SIMULATION SGX PCK Platform CA"
PCK_CN = "EAA SIMULATION SGX PCK Certificate"
TCB_SIGNING_CN = "EAA SIMULATION SGX TCB Signing"

SGX_TYPE_STANDARD = 0
SGX_TYPE_SCALABLE = 1

_P256 = ec.SECP256R1()
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def derive_bytes(seed: bytes, label: str, size: int) -> bytes:
    """``size`` (<= 64) pseudo-random bytes for ``label``, a function of the platform seed only."""
    if size > 64:
        raise ValueError("derive_bytes gives at most 64 bytes")
    return hashlib.sha512(b"eaa-sim-v1\x00" + label.encode() + b"\x00" + seed).digest()[:size]


def derive_key(seed: bytes, label: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(derive_bytes(seed, "key:" + label, 64), "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, _P256)


def derive_serial(seed: bytes, label: str) -> int:
    """A positive 127-bit certificate serial number."""
    return (int.from_bytes(derive_bytes(seed, "serial:" + label, 16), "big") >> 1) or 1


def raw_public_key(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """x || y (64 bytes), the form quotes carry keys in."""
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    n = pub.public_numbers()
    return n.x.to_bytes(32, "big") + n.y.to_bytes(32, "big")


def sign_raw(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA-P256-SHA256 as r || s (64 bytes, big-endian), the form quotes and Intel's JSON carry."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def name(common_name: str, platform_id: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"platform {platform_id}"),
    ])


def sgx_extension_der(*, ppid: bytes, tcb_components: Sequence[int], pce_svn: int, cpu_svn: bytes, pce_id: bytes,
                      fmspc: bytes, sgx_type: int, platform_instance_id: bytes | None = None,
                      configuration: dict[str, bool] | None = None) -> bytes:
    """DER of the SGX extension (OID 1.2.840.113741.1.13.1) as in Intel PCK certificates."""
    if len(tcb_components) != 16 or len(cpu_svn) != 16 or len(pce_id) != 2 or len(fmspc) != 6 or len(ppid) != 16:
        raise ValueError("SGX extension needs 16 SVNs, a 16-byte CPUSVN and PPID, a 2-byte PCE-ID, a 6-byte FMSPC")
    p = SGX_EXTENSION_OID

    def pair(suffix: str, value: bytes) -> bytes:
        return der.sequence(der.oid(f"{p}.{suffix}"), value)

    tcb = [pair(f"2.{i + 1}", der.integer(svn)) for i, svn in enumerate(tcb_components)]
    tcb.append(pair("2.17", der.integer(pce_svn)))
    tcb.append(pair("2.18", der.octet_string(cpu_svn)))
    items = [
        pair("1", der.octet_string(ppid)),
        pair("2", der.sequence(*tcb)),
        pair("3", der.octet_string(pce_id)),
        pair("4", der.octet_string(fmspc)),
        pair("5", der.enumerated(sgx_type)),
    ]
    if platform_instance_id is not None:
        items.append(pair("6", der.octet_string(platform_instance_id)))
    if configuration is not None:
        order = (("7.1", "dynamic_platform"), ("7.2", "cached_keys"), ("7.3", "smt_enabled"))
        items.append(pair("7", der.sequence(*(pair(s, der.boolean(configuration.get(k, False))) for s, k in order))))
    return der.sequence(*items)


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey,
             issuer_key: ec.EllipticCurvePrivateKey, serial: int, now: datetime) -> x509.CertificateBuilder:
    not_before = (now - BACKDATE).replace(microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + CERT_VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign, content_commitment=not cert_sign, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False,
    )


def make_ca(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
            issuer_key: ec.EllipticCurvePrivateKey, serial: int, now: datetime,
            path_length: int | None) -> x509.Certificate:
    """A CA certificate; self-signed when ``issuer`` is None."""
    b = _builder(subject, issuer.subject if issuer else subject, key, issuer_key, serial, now)
    b = b.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    b = b.add_extension(_key_usage(cert_sign=True), critical=True)
    return b.sign(issuer_key, hashes.SHA256())


def make_leaf(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate,
              issuer_key: ec.EllipticCurvePrivateKey, serial: int, now: datetime,
              extra: Sequence[x509.ExtensionType] = ()) -> x509.Certificate:
    b = _builder(subject, issuer.subject, key, issuer_key, serial, now)
    b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    b = b.add_extension(_key_usage(cert_sign=False), critical=True)
    for ext in extra:
        b = b.add_extension(ext, critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def sgx_extension(der_value: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXTENSION_OID), der_value)


def make_crl(issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey, revoked: Sequence[int],
             crl_number: int, now: datetime) -> x509.CertificateRevocationList:
    this_update = (now - BACKDATE).replace(microsecond=0)
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(this_update + COLLATERAL_VALIDITY)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    for serial in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(this_update).build())
    return b.sign(issuer_key, hashes.SHA256())
