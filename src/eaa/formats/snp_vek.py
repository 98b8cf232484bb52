"""AMD's extensions in VCEK/VLEK certificates, and loading those certificates.

A versioned endorsement key (VEK) certificate binds the P-384 key that signs SNP reports to a product
line, to the TCB the key was derived for and, for a VCEK, to one chip (hwID). The verifier compares
these with the report, so they are parsed here exactly: every SPL is a DER INTEGER 0..255 (a leading
``00`` pad is legal, e.g. ``02 02 00 d9``), the hwID is either the raw 64 (Turin: 8) bytes or the same
bytes wrapped in a DER OCTET STRING (both exist in the wild), the names are IA5Strings.

OIDs are ``1.3.6.1.4.1.3704.1`` + suffix (go-sev-guest ``kds/kds.go``; shared/docs/tee-interfaces.md §2).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from ..errors import FormatError
from ..records import record
from .der import TAG_INTEGER, TAG_OCTET_STRING, read_tlv
from .pem import PEM_BEGIN
from .snp_report import TURIN, TcbVersion, normalize_product
from .x509_errors import PARSE_ERRORS

AMD_OID = "1.3.6.1.4.1.3704.1"
OID_STRUCT_VERSION = f"{AMD_OID}.1"
OID_PRODUCT_NAME = f"{AMD_OID}.2"
OID_BL_SPL = f"{AMD_OID}.3.1"
OID_TEE_SPL = f"{AMD_OID}.3.2"
OID_SNP_SPL = f"{AMD_OID}.3.3"
OID_SPL4 = f"{AMD_OID}.3.4"
OID_SPL5 = f"{AMD_OID}.3.5"
OID_SPL6 = f"{AMD_OID}.3.6"
OID_SPL7 = f"{AMD_OID}.3.7"
OID_UCODE_SPL = f"{AMD_OID}.3.8"
OID_FMC_SPL = f"{AMD_OID}.3.9"
OID_HWID = f"{AMD_OID}.4"
OID_CSP_ID = f"{AMD_OID}.5"

SPL_OIDS = {OID_BL_SPL: "blSPL", OID_TEE_SPL: "teeSPL", OID_SNP_SPL: "snpSPL", OID_SPL4: "spl4", OID_SPL5: "spl5",
            OID_SPL6: "spl6", OID_SPL7: "spl7", OID_UCODE_SPL: "ucodeSPL", OID_FMC_SPL: "fmcSPL"}
HWID_SIZES = (64, 8)  # Milan/Genoa: the whole CHIP_ID; Turin: its first 8 bytes

VCEK_CN = "SEV-VCEK"
VLEK_CN = "SEV-VLEK"
VCEK = "VCEK"
VLEK = "VLEK"

_IA5_TAGS = (0x16, 0x0C, 0x13)  # IA5String (AMD's), also UTF8String / PrintableString
_SERIAL_WARNING = "Parsed a serial number which wasn't positive"


@record(slots=True)
class VekExtensions:
    """What AMD put in a VCEK/VLEK certificate, decoded."""

    struct_version: int | None
    product_name: str  # as written: "Milan-B0", "Genoa", "Turin", "Milan" (VLEK)
    spl: Mapping[str, int]  # "blSPL", "teeSPL", "snpSPL", "spl4".."spl7", "ucodeSPL", "fmcSPL" as present
    hwid: bytes | None  # VCEK only
    csp_id: str | None  # VLEK only

    @property
    def product(self) -> str:
        """The product line (``Milan``/``Genoa``/``Turin``) the product name starts with."""
        return normalize_product(self.product_name)

    def tcb(self, product: str | None = None) -> TcbVersion:
        """The TCB this key was derived for, laid out for ``product`` (default: the certificate's).

        Absent reserved SPLs count as zero; a Turin TCB needs fmcSPL.
        """
        p = normalize_product(product) if product is not None else self.product
        s = self.spl
        for name in ("blSPL", "teeSPL", "snpSPL", "ucodeSPL"):
            if name not in s:
                raise FormatError(f"VEK certificate lacks {name}", field=name)
        if p == TURIN:
            if "fmcSPL" not in s:
                raise FormatError("a Turin VEK certificate must carry fmcSPL", field="fmcSPL")
            return TcbVersion(TURIN, bl=s["blSPL"], tee=s["teeSPL"], snp=s["snpSPL"], ucode=s["ucodeSPL"],
                              fmc=s["fmcSPL"], reserved=(s.get("spl5", 0), s.get("spl6", 0), s.get("spl7", 0)))
        return TcbVersion(p, bl=s["blSPL"], tee=s["teeSPL"], snp=s["snpSPL"], ucode=s["ucodeSPL"],
                          reserved=(s.get("spl4", 0), s.get("spl5", 0), s.get("spl6", 0), s.get("spl7", 0)))


def _der_spl(raw: bytes, what: str) -> int:
    tag, value, end = read_tlv(raw, 0, what)
    if tag != TAG_INTEGER or end != len(raw) or not value:
        raise FormatError("not a DER INTEGER", field=what)
    n = int.from_bytes(value, "big", signed=True)
    if not 0 <= n <= 0xFF:
        raise FormatError(f"SPL must be 0..255, got {n}", field=what)
    return n


def _der_int(raw: bytes, what: str) -> int:
    tag, value, end = read_tlv(raw, 0, what)
    if tag != TAG_INTEGER or end != len(raw) or not value:
        raise FormatError("not a DER INTEGER", field=what)
    return int.from_bytes(value, "big", signed=True)


def _der_string(raw: bytes, what: str) -> str:
    tag, value, end = read_tlv(raw, 0, what)
    if tag not in _IA5_TAGS or end != len(raw):
        raise FormatError("not a DER IA5String", field=what)
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("string is not ASCII", field=what) from None
    if not text.isprintable():
        raise FormatError("string holds control characters", field=what)
    return text


def _hwid(raw: bytes) -> bytes:
    """Raw hwID bytes; an OCTET STRING wrapper is removed when it holds exactly a hwID-sized value."""
    if len(raw) >= 2 and raw[0] == TAG_OCTET_STRING:
        try:
            _, inner, end = read_tlv(raw, 0, "hwID")
        except FormatError:
            inner, end = b"", -1
        if end == len(raw) and len(inner) in HWID_SIZES:
            return inner
    if len(raw) not in HWID_SIZES:
        raise FormatError(f"hwID must be 64 or 8 bytes, got {len(raw)}", field="hwID")
    return bytes(raw)


def parse_vek_extensions(values: Mapping[str, bytes]) -> VekExtensions:
    """Decode AMD's extensions from ``{dotted OID: DER extension value}``; other OIDs are ignored."""
    if OID_PRODUCT_NAME not in values:
        raise FormatError("VEK certificate lacks productName", field="productName")
    name = _der_string(values[OID_PRODUCT_NAME], "productName")
    normalize_product(name)
    spl = {label: _der_spl(values[oid], label) for oid, label in SPL_OIDS.items() if oid in values}
    struct_version = _der_int(values[OID_STRUCT_VERSION], "structVersion") if OID_STRUCT_VERSION in values else None
    hwid = _hwid(values[OID_HWID]) if OID_HWID in values else None
    csp = _der_string(values[OID_CSP_ID], "cspID") if OID_CSP_ID in values else None
    return VekExtensions(struct_version, name, spl, hwid, csp)


def extension_values(cert: x509.Certificate) -> dict[str, bytes]:
    """AMD's extensions of ``cert`` as ``{dotted OID: raw DER value}``."""
    out: dict[str, bytes] = {}
    try:
        extensions = list(cert.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as e:
        raise FormatError(f"VEK certificate extensions do not parse ({e})", field="extensions") from None
    for ext in extensions:
        oid = ext.oid.dotted_string
        if oid.startswith(AMD_OID + ".") and isinstance(ext.value, x509.UnrecognizedExtension):
            out[oid] = ext.value.value
    return out


def vek_extensions(cert: x509.Certificate) -> VekExtensions:
    return parse_vek_extensions(extension_values(cert))


def vek_kind(cert: x509.Certificate) -> str | None:
    """``VCEK``/``VLEK`` from the subject common name AMD gives each kind, else None."""
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    cn = str(cns[0].value) if len(cns) == 1 else ""
    return {VCEK_CN: VCEK, VLEK_CN: VLEK}.get(cn)


def load_vek_certificate(data: bytes | str) -> x509.Certificate:
    """A VCEK/VLEK certificate from DER or PEM.

    AMD issues VEKs with serial number 0, which RFC 5280 forbids and cryptography 50 only warns about;
    that one warning is silenced here (and nowhere else), so callers running with warnings as errors
    can still read AMD's certificates.
    """
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_SERIAL_WARNING, category=CryptographyDeprecationWarning)
        try:
            if raw.lstrip().startswith(b"-----BEGIN"):
                return x509.load_pem_x509_certificate(raw)
            return x509.load_der_x509_certificate(raw)
        except PARSE_ERRORS as e:
            raise FormatError(f"VEK certificate is neither DER nor PEM ({e})", field="vek") from None


def load_certificates(data: bytes | str) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, or the one certificate of a DER blob (serial-0 tolerant)."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_SERIAL_WARNING, category=CryptographyDeprecationWarning)
        try:
            if PEM_BEGIN in raw:
                return x509.load_pem_x509_certificates(raw)
            return [x509.load_der_x509_certificate(raw)]
        except ValueError as e:
            raise FormatError(f"not a DER or PEM certificate ({e})", field="certificate") from None

