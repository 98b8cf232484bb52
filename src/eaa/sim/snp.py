"""The simulated SEV-SNP platform: an ARK, ASK and VCEK shaped like AMD's, and reports they sign.

It lives beside the simulated SGX/TDX platform, in ``<sim dir>/snp/`` (created on first use, atomically,
mode 0700, files 0600), and is trusted only when a caller passes its ARK (``--trust-sim``)::

    platform.json          product, chip ID, reported TCB, firmware version, report version
    ark.key  ark.pem       "ARK-<product>", self-signed, RSA with RSASSA-PSS SHA-384 (salt 48) as AMD's
    ask.key  ask.pem       "SEV-<product>", signed by the ARK
    vcek.key vcek.pem      "SEV-VCEK", P-384, with AMD's extensions (product name, SPLs, hwID = chip ID)
    crl.der                the ARK's CRL (it lists a fictitious other ASK, so it is never trivially empty)

Every certificate subject has the common name AMD gives it (the verifier checks those names) and an
organization saying ``SIMULATION``, which is how a verifier recognises and refuses it unless told to
trust it. The RSA keys are 3072 bits (AMD's are 4096): big enough to be the real algorithm, small
enough to generate in a test. Reports are the real ATTESTATION_REPORT bytes, checked by the same
verifier as real ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import NameOID

from ..errors import ConfigError, FormatError
from ..formats.snp_report import (
    POLICY_DEBUG,
    POLICY_RESERVED_ONE,
    POLICY_SMT,
    PRODUCTS,
    REPORT_SIZE,
    SIGNED_SIZE,
    TURIN,
    TcbVersion,
    normalize_product,
)
from ..formats.snp_vek import (
    OID_BL_SPL,
    OID_FMC_SPL,
    OID_HWID,
    OID_PRODUCT_NAME,
    OID_SNP_SPL,
    OID_STRUCT_VERSION,
    OID_TEE_SPL,
    OID_UCODE_SPL,
    VCEK_CN,
)
from ..pki.trust import TrustAnchor
from ..records import record
from . import der
from .measure import tdx_measure
from .platform import PlatformExists, default_sim_dir, read_state, write_state

SUBDIR = "snp"
FORMAT_VERSION = 1
PLATFORM_FILE = "platform.json"
ORGANIZATION = "EAA SIMULATION (not a real TEE)"
RSA_BITS = 3072
PSS_SHA384 = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
CERT_VALIDITY = timedelta(days=20 * 365)
CRL_VALIDITY = timedelta(days=365)
BACKDATE = timedelta(hours=1)
DEFAULT_PRODUCT = "Milan"
DEFAULT_REPORT_VERSION = 4  # what SEV firmware 1.55.31 and later emits
FIRMWARE = (1, 55, 31)  # major, minor, build
CPUID = {"Milan": (0x19, 0x01, 0x01), "Genoa": (0x19, 0x11, 0x01), "Turin": (0x1A, 0x02, 0x00)}
PRODUCT_NAMES = {"Milan": "Milan-B0", "Genoa": "Genoa-B0", "Turin": "Turin"}
DEFAULT_TCB = {"bl": 4, "tee": 0, "snp": 22, "ucode": 213, "fmc": 1}
DEFAULT_POLICY = POLICY_RESERVED_ONE | POLICY_SMT
_NAMES = ("ark", "ask", "vcek")


def _name(cn: str, platform_id: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"SEV-SNP platform {platform_id}")])


def _tcb(product: str, spl: Mapping[str, int]) -> TcbVersion:
    return TcbVersion.of(product, bl=spl["bl"], tee=spl["tee"], snp=spl["snp"], ucode=spl["ucode"],
                         fmc=spl["fmc"] if product == TURIN else None)


def _ca(subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name, signer: rsa.RSAPrivateKey, serial: int,
        now: datetime) -> x509.Certificate:
    nb = (now - BACKDATE).replace(microsecond=0)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(serial).not_valid_before(nb).not_valid_after(nb + CERT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(signer, hashes.SHA384(), rsa_padding=PSS_SHA384))


def _vcek(product: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: rsa.RSAPrivateKey,
          chip_id: bytes, tcb: TcbVersion, platform_id: str, now: datetime) -> x509.Certificate:
    ext = {OID_STRUCT_VERSION: der.integer(1 if product == TURIN else 0),
           OID_PRODUCT_NAME: der.tlv(0x16, PRODUCT_NAMES[product].encode()),
           OID_BL_SPL: der.integer(tcb.bl), OID_TEE_SPL: der.integer(tcb.tee), OID_SNP_SPL: der.integer(tcb.snp),
           OID_UCODE_SPL: der.integer(tcb.ucode),
           OID_HWID: der.octet_string(chip_id[:8] if product == TURIN else chip_id)}
    if product == TURIN:
        ext[OID_FMC_SPL] = der.integer(tcb.fmc or 0)
    nb = (now - BACKDATE).replace(microsecond=0)
    b = (x509.CertificateBuilder().subject_name(_name(VCEK_CN, platform_id)).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(nb).not_valid_after(nb + CERT_VALIDITY))
    for oid, value in ext.items():
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return b.sign(signer, hashes.SHA384(), rsa_padding=PSS_SHA384)


def _crl(ark: x509.Certificate, key: rsa.RSAPrivateKey, revoked: Iterable[int], now: datetime) -> bytes:
    this_update = (now - BACKDATE).replace(microsecond=0)
    b = (x509.CertificateRevocationListBuilder().issuer_name(ark.subject).last_update(this_update)
         .next_update(this_update + CRL_VALIDITY).add_extension(x509.CRLNumber(1), critical=False))
    for serial in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(this_update).build())
    return b.sign(key, hashes.SHA384(), rsa_padding=PSS_SHA384).public_bytes(Encoding.DER)


def generate_snp_files(*, now: datetime, product: str = DEFAULT_PRODUCT, revoke_ask: bool = False,
                       report_version: int = DEFAULT_REPORT_VERSION) -> dict[str, bytes]:
    """Every file of a new simulated SNP platform (fresh keys; ``now`` starts every validity window).

    ``revoke_ask`` puts the platform's own ASK on its CRL, so its reports fail revocation checking.
    """
    product = normalize_product(product)
    if report_version not in (2, 3, 4, 5):
        raise ConfigError(f"the simulated SNP platform emits report versions 2 to 5, not {report_version}")
    now = now.astimezone(timezone.utc)
    platform_id = os.urandom(8).hex()
    chip_id = os.urandom(8) + bytes(56) if product == TURIN else os.urandom(64)
    tcb = _tcb(product, DEFAULT_TCB)
    ark_key = rsa.generate_private_key(65537, RSA_BITS)
    ask_key = rsa.generate_private_key(65537, RSA_BITS)
    vcek_key = ec.generate_private_key(ec.SECP384R1())
    ark_name = _name(f"ARK-{product}", platform_id)
    ark = _ca(ark_name, ark_key, ark_name, ark_key, x509.random_serial_number(), now)
    ask = _ca(_name(f"SEV-{product}", platform_id), ask_key, ark_name, ark_key, x509.random_serial_number(), now)
    vcek = _vcek(product, vcek_key, ask.subject, ask_key, chip_id, tcb, platform_id, now)
    revoked = [x509.random_serial_number()] + ([ask.serial_number] if revoke_ask else [])
    params = {"format": FORMAT_VERSION, "platform_id": platform_id, "product": product, "chip_id": chip_id.hex(),
              "tcb": f"0x{tcb.encode():016x}", "firmware": ".".join(map(str, FIRMWARE)),
              "report_version": report_version, "created": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    files = {PLATFORM_FILE: (json.dumps(params, indent=1) + "\n").encode(), "crl.der": _crl(ark, ark_key, revoked, now)}
    for n, key in (("ark", ark_key), ("ask", ask_key), ("vcek", vcek_key)):
        files[f"{n}.key"] = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    for n, cert in (("ark", ark), ("ask", ask), ("vcek", vcek)):
        files[f"{n}.pem"] = cert.public_bytes(Encoding.PEM)
    return files


def snp_dir(sim_dir: str | os.PathLike[str] | None = None) -> Path:
    return (Path(sim_dir) if sim_dir is not None else default_sim_dir()) / SUBDIR


def init_snp_platform(sim_dir: str | os.PathLike[str] | None = None, *, product: str = DEFAULT_PRODUCT,
                      force: bool = False, now: datetime | None = None, revoke_ask: bool = False,
                      report_version: int = DEFAULT_REPORT_VERSION) -> SimSnpPlatform:
    """Generate a simulated SNP platform under ``sim_dir`` (default: the simulated TEE's directory)."""
    d = snp_dir(sim_dir)
    files = generate_snp_files(now=now or datetime.now(timezone.utc), product=product, revoke_ask=revoke_ask,
                               report_version=report_version)
    write_state(d, files, force=force)
    return SimSnpPlatform.load(d)


def load_snp_platform(sim_dir: str | os.PathLike[str] | None = None, *, create: bool = True) -> SimSnpPlatform:
    """The simulated SNP platform under ``sim_dir``; generated on first use when ``create``."""
    d = snp_dir(sim_dir)
    if (d / PLATFORM_FILE).is_file():
        return SimSnpPlatform.load(d)
    if not create:
        raise ConfigError(f"no simulated SEV-SNP platform in {d} (run 'eaa sim init')")
    try:
        return init_snp_platform(sim_dir)
    except PlatformExists:
        if (d / PLATFORM_FILE).is_file():  # created concurrently by another process
            return SimSnpPlatform.load(d)
        raise ConfigError(f"{d} exists and is not a simulated SEV-SNP platform") from None


def _bytes(value: bytes | None, size: int, what: str) -> bytes:
    if value is None:
        return bytes(size)
    if len(value) != size:
        raise ConfigError(f"{what} must be {size} bytes, got {len(value)}")
    return bytes(value)


@record
class SnpGuest:
    """What the launch of a simulated guest fixed: its measurement and the launch parameters."""

    measurement: bytes
    policy: int = DEFAULT_POLICY
    guest_svn: int = 0
    vmpl: int = 0
    host_data: bytes | None = None
    family_id: bytes | None = None
    image_id: bytes | None = None
    id_key_digest: bytes | None = None
    author_key_digest: bytes | None = None


class SimSnpPlatform:
    """A loaded simulated SNP platform: its chain, its CRL, and the reports its VCEK signs."""

    def __init__(self, directory: Path, files: Mapping[str, bytes]) -> None:
        self.directory = directory
        try:
            p = json.loads(files[PLATFORM_FILE])
            if p.get("format") != FORMAT_VERSION:
                raise ValueError("format")
            self.product = normalize_product(p["product"])
            self.chip_id = bytes.fromhex(p["chip_id"])
            self.tcb = int(p["tcb"], 16)
            self.firmware = tuple(int(x) for x in p["firmware"].split("."))
            self.report_version = int(p["report_version"])
            self.keys = {n: load_pem_private_key(files[f"{n}.key"], None) for n in _NAMES}
            self.certs = {n: x509.load_pem_x509_certificate(files[f"{n}.pem"]) for n in _NAMES}
        except (KeyError, ValueError, TypeError) as e:
            raise FormatError(f"the simulated SEV-SNP platform in {directory} is damaged ({e})") from None
        if len(self.chip_id) != 64 or len(self.firmware) != 3 or self.product not in PRODUCTS:
            raise FormatError(f"the simulated SEV-SNP platform in {directory} is damaged")
        self.crl = files["crl.der"]

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> SimSnpPlatform:
        d = Path(directory)
        names = (PLATFORM_FILE, "crl.der", *(f"{n}.key" for n in _NAMES), *(f"{n}.pem" for n in _NAMES))
        return cls(d, read_state(d, names, "simulated SEV-SNP platform"))

    # ---- trust and collateral ----
    @property
    def ark(self) -> x509.Certificate:
        return self.certs["ark"]

    @property
    def ask(self) -> x509.Certificate:
        return self.certs["ask"]

    @property
    def vcek(self) -> x509.Certificate:
        return self.certs["vcek"]

    def anchor(self) -> TrustAnchor:
        return TrustAnchor(self.ark, f"EAA simulated SEV-SNP ARK-{self.product} ({self.directory})", simulated=True)

    def collateral(self) -> Any:
        """The VCEK, ASK, ARK and CRL as :class:`eaa.verify.snp_collateral.SnpCollateral`."""
        from ..verify.snp_collateral import SnpCollateral

        return SnpCollateral((self.vcek,), (self.ask, self.ark), (self.crl,), "simulated SEV-SNP platform")

    @cached_property
    def chain_pem(self) -> bytes:
        """ASK then ARK, as AMD's KDS ``cert_chain`` serves them."""
        return self.ask.public_bytes(Encoding.PEM) + self.ark.public_bytes(Encoding.PEM)

    # ---- reports ----
    def guest(self, *, measurement: bytes | None = None, measure_paths: Iterable[str | os.PathLike[str]] = (),
              debug: bool = False, **launch: Any) -> SnpGuest:
        """A guest launched with ``measurement`` (48 bytes) or the measurement of ``measure_paths``."""
        paths = list(measure_paths)
        if measurement is not None and paths:
            raise ConfigError("give either a measurement or files to measure, not both")
        m = _bytes(measurement, 48, "MEASUREMENT") if measurement is not None else tdx_measure(paths)
        policy = launch.pop("policy", DEFAULT_POLICY) | (POLICY_DEBUG if debug else 0)
        return SnpGuest(m, policy=policy, **launch)

    def report(self, report_data: bytes, guest: SnpGuest, *, version: int | None = None,
               current_tcb: int | None = None, committed_tcb: int | None = None, launch_tcb: int | None = None,
               committed_firmware: tuple[int, int, int] | None = None, platform_info: int = 1,
               signer_info: int = 0) -> bytes:
        """An ATTESTATION_REPORT over ``report_data`` (at most 64 bytes), signed by the VCEK.

        The TCB and firmware arguments exist so tests can make a platform whose values disagree.
        """
        if len(report_data) > 64:
            raise ConfigError(f"report data is {len(report_data)} bytes; at most 64 fit")
        if not 0 <= guest.vmpl <= 3:
            raise ConfigError("a guest VMPL is 0..3")
        v = self.report_version if version is None else version
        d = bytearray(REPORT_SIZE)

        def put(off: int, value: int, size: int) -> None:
            d[off:off + size] = value.to_bytes(size, "little")

        put(0x00, v, 4)
        put(0x04, guest.guest_svn, 4)
        put(0x08, guest.policy, 8)
        d[0x10:0x20] = _bytes(guest.family_id, 16, "FAMILY_ID")
        d[0x20:0x30] = _bytes(guest.image_id, 16, "IMAGE_ID")
        put(0x30, guest.vmpl, 4)
        put(0x34, 1, 4)  # ECDSA P-384 with SHA-384
        put(0x38, self.tcb if current_tcb is None else current_tcb, 8)
        put(0x40, platform_info, 8)
        put(0x48, signer_info, 4)
        d[0x50:0x90] = bytes(report_data).ljust(64, b"\x00")
        d[0x90:0xC0] = guest.measurement
        d[0xC0:0xE0] = _bytes(guest.host_data, 32, "HOST_DATA")
        d[0xE0:0x110] = _bytes(guest.id_key_digest, 48, "ID_KEY_DIGEST")
        d[0x110:0x140] = _bytes(guest.author_key_digest, 48, "AUTHOR_KEY_DIGEST")
        d[0x140:0x160] = os.urandom(32)  # REPORT_ID
        put(0x180, self.tcb, 8)  # REPORTED_TCB: what the VCEK was derived for
        if v >= 3:
            d[0x188:0x18B] = bytes(CPUID[self.product])
        d[0x1A0:0x1E0] = self.chip_id
        put(0x1E0, self.tcb if committed_tcb is None else committed_tcb, 8)
        major, minor, build = self.firmware
        d[0x1E8:0x1EB] = bytes([build, minor, major])
        cmaj, cmin, cbuild = committed_firmware or self.firmware
        d[0x1EC:0x1EF] = bytes([cbuild, cmin, cmaj])
        put(0x1F0, self.tcb if launch_tcb is None else launch_tcb, 8)
        key = self.keys["vcek"]
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(bytes(d[:SIGNED_SIZE]), ec.ECDSA(hashes.SHA384())))
        d[0x2A0:0x2E8] = r.to_bytes(72, "little")
        d[0x2E8:0x330] = s.to_bytes(72, "little")
        return bytes(d)
