"""The AMD SEV-SNP ATTESTATION_REPORT (1184 bytes, little-endian), versions 2 to 5.

Layout: AMD SEV-SNP firmware ABI, as go-sev-guest ``abi/abi.go`` and virtee/sev read it
(shared/docs/tee-interfaces.md §2). The parser is strict on purpose: a report is signed by the
platform, so bytes that the firmware always writes as zero but that are not zero mean corruption or
forgery, and rejecting them early gives a precise error (field and offset) instead of a bare
"signature does not verify". Nothing here checks the signature; :mod:`eaa.verify.snp` does.

A TCB_VERSION is kept as its raw 64-bit value in the report, because its byte layout depends on
the product line (Turin moved the fields), which a version 2 report does not even state; decode it
with :meth:`TcbVersion.decode` once the product is known.

Versions: 2 is the original layout; 3 adds the CPUID family/model/stepping at 0x188; 4 (firmware
1.55.31 and later) keeps version 3's layout byte for byte (virtee/sev maps both to one variant,
go-sev-guest accepts 2..5); 5 adds LAUNCH_MIT_VECTOR and CURRENT_MIT_VECTOR at 0x1F8/0x200.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import FormatError
from ..records import record

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0  # the signature covers report[0:0x2A0]
SIGNATURE_OFFSET = 0x2A0
SIG_COMPONENT_SIZE = 72  # R and S, little-endian, zero-padded from 48 bytes (P-384)
P384_SIZE = 48

SUPPORTED_VERSIONS = (2, 3, 4, 5)
SIG_ALGO_ECDSA_P384_SHA384 = 1

MILAN = "Milan"
GENOA = "Genoa"
TURIN = "Turin"
PRODUCTS = (MILAN, GENOA, TURIN)

# POLICY bits (SNP ABI "Guest Policy").
POLICY_SMT = 1 << 16
POLICY_RESERVED_ONE = 1 << 17  # must be 1
POLICY_MIGRATE_MA = 1 << 18
POLICY_DEBUG = 1 << 19
POLICY_SINGLE_SOCKET = 1 << 20
POLICY_MBZ_MASK = ~((1 << 26) - 1) & 0xFFFF_FFFF_FFFF_FFFF  # bits 63:26

# SIGNER_INFO (offset 0x48).
SIGNER_AUTHOR_KEY_EN = 1 << 0
SIGNER_MASK_CHIP_KEY = 1 << 1
SIGNING_KEY_SHIFT = 2
SIGNING_KEY_MASK = 0x7
SIGNER_MBZ_MASK = ~0x1F & 0xFFFF_FFFF
SIGNING_KEY_VCEK = 0
SIGNING_KEY_VLEK = 1
SIGNING_KEY_NONE = 7
SIGNING_KEY_NAMES = {SIGNING_KEY_VCEK: "VCEK", SIGNING_KEY_VLEK: "VLEK", SIGNING_KEY_NONE: "none"}

# VMPL 0..3 is the guest privilege level that asked for the report; all ones marks a report that
# no guest VMPL requested (the SNP ABI's host-requested report), whose REPORT_DATA the host chose.
VMPL_MAX = 3
VMPL_NOT_GUEST = 0xFFFF_FFFF

# Byte ranges the firmware writes as zero: (start, end, name), per version.
_MBZ_COMMON = (
    (0x04C, 0x050, "reserved0"),
    (0x1EB, 0x1EC, "reserved_current_version"),
    (0x1EF, 0x1F0, "reserved_committed_version"),
    (0x2A0 + P384_SIZE, 0x2A0 + SIG_COMPONENT_SIZE, "signature.r padding"),
    (0x2E8 + P384_SIZE, 0x2E8 + SIG_COMPONENT_SIZE, "signature.s padding"),
    (0x330, 0x4A0, "signature.reserved"),
)
_MBZ_BY_VERSION = {
    2: ((0x188, 0x1A0, "reserved1"), (0x1F8, 0x2A0, "reserved2")),
    3: ((0x18B, 0x1A0, "reserved1"), (0x1F8, 0x2A0, "reserved2")),
    4: ((0x18B, 0x1A0, "reserved1"), (0x1F8, 0x2A0, "reserved2")),
    5: ((0x18B, 0x1A0, "reserved1"), (0x208, 0x2A0, "reserved2")),
}


def product_from_cpuid(family: int, model: int) -> str | None:
    """The product line a v3+ report's CPUID family/model name (trustee ``get_processor_generation``)."""
    if family == 0x19:
        if model <= 0x0F:
            return MILAN
        if 0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF:
            return GENOA
    elif family == 0x1A and model <= 0x11:
        return TURIN
    return None


def normalize_product(name: str) -> str:
    """``Milan``/``Genoa``/``Turin`` from a product name, also AMD's stepping forms (``Milan-B0``)."""
    line = name.strip().split("-", 1)[0]
    for p in PRODUCTS:
        if line.lower() == p.lower():
            return p
    raise FormatError(f"unknown SEV-SNP product {name!r} (expected one of {', '.join(PRODUCTS)})", field="product")


@record(slots=True)
class TcbVersion:
    """One TCB_VERSION decoded for a product line.

    Milan/Genoa bytes are ``[bl, tee, spl4, spl5, spl6, spl7, snp, ucode]``; Turin's are
    ``[fmc, bl, tee, snp, spl5, spl6, spl7, ucode]``. The reserved SPLs are normally zero but are kept,
    so that :meth:`encode` gives back exactly the 64-bit value that was decoded.
    """

    product: str
    bl: int
    tee: int
    snp: int
    ucode: int
    fmc: int | None = None  # Turin only
    reserved: tuple[int, ...] = (0, 0, 0, 0)  # spl4..7 (Milan/Genoa) or spl5..7 (Turin)

    def __post_init__(self) -> None:
        if self.product not in PRODUCTS:
            raise FormatError(f"unknown SEV-SNP product {self.product!r}", field="tcb.product")
        turin = self.product == TURIN
        if (self.fmc is None) == turin:
            raise FormatError("fmc SPL is present exactly for Turin", field="tcb.fmc")
        if len(self.reserved) != (3 if turin else 4):
            raise FormatError("wrong number of reserved SPLs", field="tcb.reserved")
        for name, v in (("bl", self.bl), ("tee", self.tee), ("snp", self.snp), ("ucode", self.ucode),
                        ("fmc", self.fmc), *((f"reserved[{i}]", r) for i, r in enumerate(self.reserved))):
            if v is not None and not 0 <= v <= 0xFF:
                raise FormatError(f"SPL must be 0..255, got {v}", field=f"tcb.{name}")

    @classmethod
    def of(cls, product: str, *, bl: int, tee: int, snp: int, ucode: int, fmc: int | None = None) -> TcbVersion:
        """The TCB with these SPLs and zero reserved SPLs, as AMD's KDS names a VCEK (``fmc`` for Turin only)."""
        product = normalize_product(product)
        return cls(product, bl=bl, tee=tee, snp=snp, ucode=ucode, fmc=fmc,
                   reserved=(0, 0, 0) if product == TURIN else (0, 0, 0, 0))

    @classmethod
    def decode(cls, value: int, product: str) -> TcbVersion:
        if not 0 <= value < 1 << 64:
            raise FormatError("TCB_VERSION is a 64-bit value", field="tcb")
        b = value.to_bytes(8, "little")
        if product == TURIN:
            return cls(TURIN, bl=b[1], tee=b[2], snp=b[3], ucode=b[7], fmc=b[0], reserved=(b[4], b[5], b[6]))
        return cls(product, bl=b[0], tee=b[1], snp=b[6], ucode=b[7], reserved=(b[2], b[3], b[4], b[5]))

    def encode(self) -> int:
        if self.product == TURIN:
            b = bytes([self.fmc or 0, self.bl, self.tee, self.snp, *self.reserved, self.ucode])
        else:
            b = bytes([self.bl, self.tee, *self.reserved, self.snp, self.ucode])
        return int.from_bytes(b, "little")

    def as_dict(self) -> dict[str, int]:
        d = {"bl": self.bl, "tee": self.tee, "snp": self.snp, "ucode": self.ucode}
        if self.fmc is not None:
            d["fmc"] = self.fmc
        return d

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.as_dict().items()) + f" (0x{self.encode():016x})"


@record(slots=True)
class SnpReport:
    """Every field of an ATTESTATION_REPORT, plus its exact bytes (signatures are over bytes)."""

    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: int
    platform_info: int
    signer_info: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: int
    cpuid_fam_id: int | None  # v3+
    cpuid_mod_id: int | None
    cpuid_step: int | None
    chip_id: bytes
    committed_tcb: int
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb: int
    launch_mit_vector: int | None  # v5
    current_mit_vector: int | None
    signature_r: bytes  # 72 bytes, little-endian
    signature_s: bytes
    raw: bytes

    # ---- derived views ----
    @property
    def signed_bytes(self) -> bytes:
        return self.raw[:SIGNED_SIZE]

    @property
    def signature_rs(self) -> tuple[int, int]:
        """(r, s) as integers, ready for ``encode_dss_signature``."""
        return int.from_bytes(self.signature_r, "little"), int.from_bytes(self.signature_s, "little")

    @property
    def debug(self) -> bool:
        return bool(self.policy & POLICY_DEBUG)

    @property
    def signing_key(self) -> int:
        """0 VCEK, 1 VLEK, 7 none (SIGNER_INFO bits 4:2)."""
        return (self.signer_info >> SIGNING_KEY_SHIFT) & SIGNING_KEY_MASK

    @property
    def signing_key_name(self) -> str:
        return SIGNING_KEY_NAMES[self.signing_key]

    @property
    def chip_id_masked(self) -> bool:
        """MASK_CHIP_KEY: the guest asked for CHIP_ID to be zeroed (and VCEK signing disabled)."""
        return bool(self.signer_info & SIGNER_MASK_CHIP_KEY)

    @property
    def author_key_en(self) -> bool:
        return bool(self.signer_info & SIGNER_AUTHOR_KEY_EN)

    @property
    def requested_by_guest(self) -> bool:
        return self.vmpl <= VMPL_MAX

    @property
    def product(self) -> str | None:
        """The product line named by the CPUID fields (v3+); None for v2 or an unknown family/model."""
        if self.cpuid_fam_id is None or self.cpuid_mod_id is None:
            return None
        return product_from_cpuid(self.cpuid_fam_id, self.cpuid_mod_id)

    def tcb(self, which: str, product: str) -> TcbVersion:
        """``reported``/``current``/``committed``/``launch`` TCB decoded for ``product``."""
        values = {"reported": self.reported_tcb, "current": self.current_tcb, "committed": self.committed_tcb,
                  "launch": self.launch_tcb}
        if which not in values:
            raise ValueError(f"no {which} TCB in an SNP report")
        return TcbVersion.decode(values[which], normalize_product(product))

    # ---- parsing ----
    @classmethod
    def parse(cls, data: bytes) -> SnpReport:
        """Parse and sanity-check; FormatError (with field and offset) for anything malformed."""
        d = bytes(data)
        if len(d) != REPORT_SIZE:
            raise FormatError(f"an SNP report is {REPORT_SIZE} bytes, got {len(d)}", field="report", offset=0)

        def u32(off: int) -> int:
            return int.from_bytes(d[off:off + 4], "little")

        def u64(off: int) -> int:
            return int.from_bytes(d[off:off + 8], "little")

        version = u32(0x00)
        if version not in SUPPORTED_VERSIONS:
            raise FormatError(f"unsupported SNP report version {version} (supported: "
                              f"{', '.join(map(str, SUPPORTED_VERSIONS))})", field="version", offset=0x00)
        for start, end, name in (*_MBZ_COMMON, *_MBZ_BY_VERSION[version]):
            if any(d[start:end]):
                first = start + next(i for i, b in enumerate(d[start:end]) if b)
                raise FormatError("reserved bytes must be zero", field=name, offset=first)
        policy = u64(0x08)
        if not policy & POLICY_RESERVED_ONE:
            raise FormatError("policy bit 17 (reserved) must be 1", field="policy", offset=0x08)
        if policy & POLICY_MBZ_MASK:
            raise FormatError("policy bits 63:26 must be zero", field="policy", offset=0x08)
        vmpl = u32(0x30)
        if vmpl > VMPL_MAX and vmpl != VMPL_NOT_GUEST:
            raise FormatError(f"VMPL must be 0..{VMPL_MAX}, got {vmpl}", field="vmpl", offset=0x30)
        sig_algo = u32(0x34)
        if sig_algo != SIG_ALGO_ECDSA_P384_SHA384:
            raise FormatError(f"signature algorithm {sig_algo} is not ECDSA P-384 with SHA-384 (1)",
                              field="signature_algo", offset=0x34)
        signer_info = u32(0x48)
        if signer_info & SIGNER_MBZ_MASK:
            raise FormatError("signer_info bits 31:5 must be zero", field="signer_info", offset=0x48)
        signing_key = (signer_info >> SIGNING_KEY_SHIFT) & SIGNING_KEY_MASK
        if signing_key not in SIGNING_KEY_NAMES:
            raise FormatError(f"signing key {signing_key} is reserved (0 VCEK, 1 VLEK, 7 none)",
                              field="signer_info.signing_key", offset=0x48)
        v3 = version >= 3
        v5 = version >= 5
        return cls(
            version=version,
            guest_svn=u32(0x04),
            policy=policy,
            family_id=d[0x10:0x20],
            image_id=d[0x20:0x30],
            vmpl=vmpl,
            signature_algo=sig_algo,
            current_tcb=u64(0x38),
            platform_info=u64(0x40),
            signer_info=signer_info,
            report_data=d[0x50:0x90],
            measurement=d[0x90:0xC0],
            host_data=d[0xC0:0xE0],
            id_key_digest=d[0xE0:0x110],
            author_key_digest=d[0x110:0x140],
            report_id=d[0x140:0x160],
            report_id_ma=d[0x160:0x180],
            reported_tcb=u64(0x180),
            cpuid_fam_id=d[0x188] if v3 else None,
            cpuid_mod_id=d[0x189] if v3 else None,
            cpuid_step=d[0x18A] if v3 else None,
            chip_id=d[0x1A0:0x1E0],
            committed_tcb=u64(0x1E0),
            current_build=d[0x1E8],
            current_minor=d[0x1E9],
            current_major=d[0x1EA],
            committed_build=d[0x1EC],
            committed_minor=d[0x1ED],
            committed_major=d[0x1EE],
            launch_tcb=u64(0x1F0),
            launch_mit_vector=u64(0x1F8) if v5 else None,
            current_mit_vector=u64(0x200) if v5 else None,
            signature_r=d[0x2A0:0x2E8],
            signature_s=d[0x2E8:0x330],
            raw=d,
        )

    def fields(self) -> dict[str, Any]:
        """A JSON-ready view of every field (bytes as hex, TCBs as 0x-prefixed 64-bit hex)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            name = f.name
            if name == "raw":
                continue
            v = getattr(self, name)
            if isinstance(v, bytes):
                out[name] = v.hex()
            elif name.endswith("_tcb") and isinstance(v, int):
                out[name] = f"0x{v:016x}"
            else:
                out[name] = v
        return out


def parse_snp_report(data: bytes) -> SnpReport:
    return SnpReport.parse(data)


def decode_report_text(data: bytes) -> bytes:
    """A report as raw bytes, also from hex text (virtee/sev ships reports as hex)."""
    raw = bytes(data)
    if len(raw) == REPORT_SIZE:
        return raw
    text = raw.strip()
    try:
        decoded = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise FormatError(f"an SNP report is {REPORT_SIZE} bytes (or their hex), got {len(raw)} bytes",
                          field="report", offset=0) from None
    if len(decoded) != REPORT_SIZE:
        raise FormatError(f"an SNP report is {REPORT_SIZE} bytes, the hex holds {len(decoded)}",
                          field="report", offset=0)
    return decoded
