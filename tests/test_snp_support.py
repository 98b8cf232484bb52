"""Shared SEV-SNP test material: the vectors in shared/vectors/snp-*, and a generated PKI shaped like AMD's
(ARK/ASK RSA with RSASSA-PSS SHA-384 salt 48, P-384 VEKs with AMD's extensions) that signs generated reports.

RSA-2048 keeps key generation fast; the verifier accepts it for non-pinned anchors (AMD's are RSA-4096).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from _vectors import require_vectors
from eaa.formats.snp_report import REPORT_SIZE, SIGNED_SIZE, TcbVersion, decode_report_text

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
NOW = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
AMD_OID = "1.3.6.1.4.1.3704.1"
SNP_DIRS = ("snp-go-sev-guest", "snp-trustee", "snp-virtee-sev")


# ---------------- vectors ----------------

@cache
def snp_manifest(folder: str) -> dict[str, Any]:
    return json.loads((require_vectors() / folder / "MANIFEST.json").read_text())  # type: ignore[no-any-return]


def vector_path(folder: str, name: str) -> Path:
    return (require_vectors() / folder / name).resolve()


def vector_pairs() -> list[tuple[str, dict[str, Any]]]:
    """(folder, pair) for every manifest pair that has a report, as ids usable without the vectors."""
    out = []
    for folder in SNP_DIRS:
        try:
            m = snp_manifest(folder)
        except BaseException:  # noqa: BLE001 - vectors absent: the tests using them skip (or fail under CI)
            return []
        out.extend((folder, p) for p in m["pairs"] if "report" in p)
    return out


def read_report(folder: str, name: str) -> bytes:
    return decode_report_text(vector_path(folder, name).read_bytes())


# ---------------- generated PKI ----------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Advanced Micro Devices")])


def der_int(v: int) -> bytes:
    body = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")
    return bytes([0x02, len(body)]) + body


def ia5(text: str) -> bytes:
    return bytes([0x16, len(text)]) + text.encode()


@cache
def rsa_key(i: int) -> rsa.RSAPrivateKey:
    """Module-wide RSA keys (generation is the slow part of these tests)."""
    return rsa.generate_private_key(65537, 2048)


def ca_cert(subject: str, key: rsa.RSAPrivateKey, issuer: str, signer: rsa.RSAPrivateKey, *,
            ca: bool = True, not_before: dt.datetime = NOW - dt.timedelta(days=365),
            not_after: dt.datetime = NOW + dt.timedelta(days=3650), pad: Any = PSS) -> x509.Certificate:
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_before).not_valid_after(not_after))
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    return b.sign(signer, hashes.SHA384(), rsa_padding=pad)


@dataclass
class VekSpec:
    kind: str = "VCEK"
    product_name: str = "Milan-B0"
    tcb: TcbVersion = TcbVersion("Milan", bl=3, tee=0, snp=8, ucode=115)
    hwid: bytes | None = bytes(range(64))
    hwid_wrapped: bool = False
    csp_id: str | None = None
    key: Any = None  # default: a fresh P-384 key
    not_before: dt.datetime = NOW - dt.timedelta(days=30)
    not_after: dt.datetime = NOW + dt.timedelta(days=2000)
    pad: Any = field(default_factory=lambda: PSS)
    extra: dict[str, bytes] = field(default_factory=dict)
    omit: tuple[str, ...] = ()


def vek_cert(spec: VekSpec, issuer: str, signer: rsa.RSAPrivateKey) -> tuple[x509.Certificate, Any]:
    key = spec.key or ec.generate_private_key(ec.SECP384R1())
    t = spec.tcb
    exts = {f"{AMD_OID}.1": der_int(1 if t.product == "Turin" else 0), f"{AMD_OID}.2": ia5(spec.product_name),
            f"{AMD_OID}.3.1": der_int(t.bl), f"{AMD_OID}.3.2": der_int(t.tee), f"{AMD_OID}.3.3": der_int(t.snp),
            f"{AMD_OID}.3.8": der_int(t.ucode)}
    if t.product == "Turin":
        exts[f"{AMD_OID}.3.9"] = der_int(t.fmc or 0)
        for i, v in zip((5, 6, 7), t.reserved, strict=True):
            exts[f"{AMD_OID}.3.{i}"] = der_int(v)
    else:
        for i, v in zip((4, 5, 6, 7), t.reserved, strict=True):
            exts[f"{AMD_OID}.3.{i}"] = der_int(v)
    if spec.hwid is not None:
        exts[f"{AMD_OID}.4"] = (bytes([0x04, len(spec.hwid)]) + spec.hwid) if spec.hwid_wrapped else spec.hwid
    if spec.csp_id is not None:
        exts[f"{AMD_OID}.5"] = ia5(spec.csp_id)
    exts.update(spec.extra)
    b = (x509.CertificateBuilder().subject_name(_name(f"SEV-{spec.kind}")).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(1)
         .not_valid_before(spec.not_before).not_valid_after(spec.not_after))
    for oid, value in exts.items():
        if oid not in spec.omit:
            b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return b.sign(signer, hashes.SHA384(), rsa_padding=spec.pad), key


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass
class SnpPki:
    """An ARK, an ASK and an ASVK for one product, RSA-PSS like AMD's."""

    product: str
    ark_key: rsa.RSAPrivateKey
    ask_key: rsa.RSAPrivateKey
    ark: x509.Certificate
    ask: x509.Certificate
    asvk: x509.Certificate

    @property
    def chain(self) -> bytes:
        return pem(self.ask, self.ark)

    @property
    def vlek_chain(self) -> bytes:
        return pem(self.asvk, self.ark)

    def vek(self, spec: VekSpec | None = None) -> tuple[x509.Certificate, Any]:
        spec = spec or VekSpec()
        issuer = f"SEV-VLEK-{self.product}" if spec.kind == "VLEK" else f"SEV-{self.product}"
        return vek_cert(spec, issuer, self.ask_key)


@cache
def make_pki(product: str = "Milan") -> SnpPki:
    ark_key, ask_key = rsa_key(0), rsa_key(1)
    ark = ca_cert(f"ARK-{product}", ark_key, f"ARK-{product}", ark_key)
    ask = ca_cert(f"SEV-{product}", ask_key, f"ARK-{product}", ark_key)
    asvk = ca_cert(f"SEV-VLEK-{product}", ask_key, f"ARK-{product}", ark_key)
    return SnpPki(product, ark_key, ask_key, ark, ask, asvk)



# ---------------- generated reports ----------------

CPUID = {"Milan": (0x19, 0x01, 0x01), "Genoa": (0x19, 0x11, 0x01), "Turin": (0x1A, 0x02, 0x00)}


def build_report(key: Any, *, version: int = 3, product: str = "Milan", guest_svn: int = 1,
                 policy: int = 0x30000, vmpl: int = 0, signer_info: int = 0, report_data: bytes = b"\x5a" * 64,
                 measurement: bytes = bytes(range(48)), host_data: bytes = b"\x11" * 32,
                 reported_tcb: TcbVersion | None = None, chip_id: bytes = bytes(range(64)),
                 cpuid: tuple[int, int, int] | None = None, tamper: dict[int, int] | None = None,
                 mit: tuple[int, int] = (0, 0)) -> bytes:
    """A report with the given fields signed by ``key`` (ECDSA P-384 SHA-384, r/s little-endian)."""
    tcb = (reported_tcb or TcbVersion("Milan", bl=3, tee=0, snp=8, ucode=115)).encode()
    d = bytearray(REPORT_SIZE)

    def put(off: int, value: int, size: int) -> None:
        d[off:off + size] = value.to_bytes(size, "little")

    put(0x00, version, 4)
    put(0x04, guest_svn, 4)
    put(0x08, policy, 8)
    d[0x10:0x20] = b"\xf1" * 16
    d[0x20:0x30] = b"\xf2" * 16
    put(0x30, vmpl, 4)
    put(0x34, 1, 4)
    put(0x38, tcb, 8)
    put(0x40, 1, 8)
    put(0x48, signer_info, 4)
    d[0x50:0x90] = report_data
    d[0x90:0xC0] = measurement
    d[0xC0:0xE0] = host_data
    d[0x140:0x160] = b"\x77" * 32
    put(0x180, tcb, 8)
    if version >= 3:
        d[0x188:0x18B] = bytes(cpuid or CPUID[product])
    d[0x1A0:0x1E0] = chip_id
    put(0x1E0, tcb, 8)
    d[0x1E8:0x1EB] = bytes([1, 55, 1])
    d[0x1EC:0x1EF] = bytes([1, 55, 1])
    put(0x1F0, tcb, 8)
    if version >= 5:
        put(0x1F8, mit[0], 8)
        put(0x200, mit[1], 8)
    for off, value in (tamper or {}).items():
        d[off] = value
    sig = key.sign(bytes(d[:SIGNED_SIZE]), ec.ECDSA(hashes.SHA384()))
    r, s = decode_dss_signature(sig)
    d[0x2A0:0x2E8] = r.to_bytes(72, "little")
    d[0x2E8:0x330] = s.to_bytes(72, "little")
    return bytes(d)
