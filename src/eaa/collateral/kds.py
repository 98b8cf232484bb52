"""AMD Key Distribution Service client: VCEK certificates, VCEK/VLEK certificate chains and CRLs.

An SEV-SNP report is signed by a VCEK derived for one chip and one reported TCB, so verifiers need
the VCEK for exactly that (chip, TCB) pair, plus the ASK (or ASVK for VLEKs) and ARK above it. AMD's
KDS rate-limits, which is why these are cached (here, and by eaa-pccs for a whole fleet). Every
answer is checked before it is kept: the ARK must be one of AMD's pinned roots (or a root the
caller passes, for tests), the chain must verify (RSASSA-PSS), and a VCEK must carry the hwID and
TCB that were asked for (shared/docs/tee-interfaces.md §2).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ..checks import Check
from ..errors import EaaError, FormatError
from ..formats.snp_report import TURIN, TcbVersion
from ..formats.snp_vek import vek_extensions
from ..formats.x509_errors import PARSE_ERRORS
from ..pki.amd import AMD_ARK_SHA256, common_name, pss_verify, require_ca
from ..pki.chain import check_crl, typed_certificate_errors
from ..records import record
from .cache import Cached, MemoryCache
from .errors import CorruptCollateral
from .http import HttpGetter, HttpResponse
from .pcs import status_error

KDS_URL = "https://kdsintf.amd.com"
PRODUCTS = ("Milan", "Genoa", "Turin")
KEY_TYPES = ("vcek", "vlek")
HOUR = 3600.0
T = TypeVar("T")



def check_product(product: str) -> str:
    """The product line as KDS spells it (``Milan``); anything else is a caller error."""
    for p in PRODUCTS:
        if product.lower() == p.lower():
            return p
    raise FormatError(f"unknown SEV-SNP product {product!r} (choose {', '.join(PRODUCTS)})", field="product")


def hwid_size(product: str) -> int:
    """Turin chips are identified by the first 8 bytes of CHIP_ID, earlier products by all 64."""
    return 8 if check_product(product) == "Turin" else 64


def check_hwid(product: str, hwid: str | bytes) -> str:
    """Lower-case hex of the hwID, the size the product uses (a full 64-byte Turin chip_id is cut to 8)."""
    try:
        raw = bytes.fromhex(hwid) if isinstance(hwid, str) else bytes(hwid)
    except ValueError:
        raise FormatError("hwid is not hex", field="hwid") from None
    size = hwid_size(product)
    if size == 8 and len(raw) == 64:
        raw = raw[:8]
    if len(raw) != size:
        raise FormatError(f"{product} hwid must be {size} bytes, got {len(raw)}", field="hwid")
    return raw.hex()


def kds_query(tcb: TcbVersion) -> dict[str, str]:
    """KDS query parameters naming the VCEK of ``tcb``, in the order AMD documents them."""
    q: dict[str, str] = {}
    if tcb.product == TURIN:
        q["fmcSPL"] = str(tcb.fmc or 0)
    q.update(blSPL=str(tcb.bl), teeSPL=str(tcb.tee), snpSPL=str(tcb.snp), ucodeSPL=str(tcb.ucode))
    return q


# ---- chain checks ----

def load_der_certificate(der: bytes, what: str) -> x509.Certificate:
    """Parse a DER certificate; VEKs have serial number 0, which cryptography only warns about."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return x509.load_der_x509_certificate(der)
        except PARSE_ERRORS:
            raise CorruptCollateral(f"{what} is not a DER certificate") from None


def _amd_pki(what: str, fn: Callable[[], T]) -> T:
    """Run one of eaa.pki.amd's checks (the verifier's own) and report its failure as corrupt collateral."""
    try:
        return fn()
    except CorruptCollateral:
        raise
    except EaaError as e:
        raise CorruptCollateral(f"{what}: {e}", check=e.check) from None


@record
class KdsChain:
    """The intermediate (ASK, or ASVK for VLEKs) and AMD's root (ARK) of one product."""

    ask: x509.Certificate
    ark: x509.Certificate
    pem: bytes


@typed_certificate_errors
def validate_cert_chain(pem: bytes, product: str, key_type: str = "vcek",
                        trusted_arks: Sequence[x509.Certificate] | None = None) -> KdsChain:
    """Check a KDS ``cert_chain`` response: ASK/ASVK then ARK, the ARK pinned, each signature valid."""
    product = check_product(product)
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except PARSE_ERRORS:
        raise CorruptCollateral("KDS cert_chain is not PEM certificates") from None
    if len(certs) != 2:
        raise CorruptCollateral(f"KDS cert_chain holds {len(certs)} certificates, expected 2 (ASK, ARK)")
    ask, ark = certs
    intermediate = "ASK" if key_type == "vcek" else "ASVK"
    fp = ark.fingerprint(hashes.SHA256()).hex()
    if trusted_arks is None:
        trusted = fp == AMD_ARK_SHA256[product]
    else:
        trusted = any(fp == t.fingerprint(hashes.SHA256()).hex() for t in trusted_arks)
    if not trusted:
        raise CorruptCollateral(f"KDS cert_chain root {ark.subject.rfc4514_string()} is not AMD's {product} ARK"
                                f"{'' if trusted_arks is None else ' nor a given one'}", check=Check.SNP_ARK_TRUSTED)

    def links() -> None:  # the verifier's own link checks: CA flags, RSASSA-PSS self-signature and ASK/ASVK
        require_ca(ark, "ARK")
        require_ca(ask, intermediate)
        pss_verify(ark, ark, "ARK (self-signed)")
        pss_verify(ask, ark, intermediate, Check.SNP_ASK_SIGNATURE)

    _amd_pki("KDS cert_chain", links)
    expected = f"SEV-{product}" if key_type == "vcek" else f"SEV-VLEK-{product}"
    if common_name(ask) != expected:
        raise CorruptCollateral(f"KDS cert_chain intermediate is {ask.subject.rfc4514_string()}, "
                                f"expected CN={expected}")
    return KdsChain(ask, ark, pem)


@typed_certificate_errors
def validate_vek(der: bytes, chain: KdsChain, product: str, *, hwid: str | None = None,
                 tcb: TcbVersion | None = None) -> x509.Certificate:
    """Check a VCEK/VLEK: signed by the chain's ASK, and for the product, chip and TCB requested."""
    product = check_product(product)
    cert = load_der_certificate(der, "VEK certificate")
    _amd_pki("VEK certificate", lambda: pss_verify(cert, chain.ask, "VEK certificate", Check.SNP_VEK_SIGNATURE))
    try:
        ext = vek_extensions(cert)
        got = ext.tcb(product) if tcb is not None else None
    except EaaError as e:
        raise CorruptCollateral(f"VEK certificate: {e}") from None
    if not ext.product_name.lower().startswith(product.lower()):
        raise CorruptCollateral(f"VEK certificate is for {ext.product_name}, {product} was requested")
    if hwid is not None and (ext.hwid is None or ext.hwid.hex() != hwid.lower()):
        raise CorruptCollateral("VEK certificate hwID differs from the one requested")
    # KDS names a VCEK by these SPLs only; the reserved ones are not part of the request.
    if got is not None and tcb is not None and (got.product, got.as_dict()) != (tcb.product, tcb.as_dict()):
        raise CorruptCollateral(f"VEK certificate TCB {got} differs from the one requested {tcb}")
    return cert


@typed_certificate_errors
def validate_crl(der: bytes, chain: KdsChain) -> x509.CertificateRevocationList:
    """A KDS CRL, signed by the product's ARK (checked as the verifier checks it, :func:`eaa.pki.chain.check_crl`)."""
    _amd_pki("KDS CRL", lambda: check_crl(der, chain.ark, "KDS CRL"))
    return x509.load_der_x509_crl(der)


# ---- the client ----

def vcek_path(product: str, hwid: str) -> str:
    return f"/vcek/v1/{check_product(product)}/{hwid}"


def chain_path(product: str, key_type: str) -> str:
    return f"/{_key_type(key_type)}/v1/{check_product(product)}/cert_chain"


def crl_path(product: str, key_type: str) -> str:
    return f"/{_key_type(key_type)}/v1/{check_product(product)}/crl"


def _key_type(key_type: str) -> str:
    if key_type not in KEY_TYPES:
        raise FormatError(f"key type must be vcek or vlek, not {key_type!r}", field="key_type")
    return key_type


class KdsClient:
    """Fetches and caches (in memory) AMD KDS answers, each validated before use."""

    def __init__(self, base_url: str = KDS_URL, *, timeout: float = 10.0, retries: int = 2,
                 retry_delay: float = 1.0, verify: Any = True, trusted_arks: Sequence[x509.Certificate] | None = None,
                 clock: Callable[[], float] = time.time, max_age: float = 168 * HOUR,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.trusted_arks = tuple(trusted_arks) if trusted_arks is not None else None
        self.clock = clock
        self.max_age = max_age
        self.memory: MemoryCache[Any] = MemoryCache()
        self.http = HttpGetter(timeout=timeout, retries=retries, retry_delay=retry_delay, verify=verify,
                               transport=transport)

    def close(self) -> None:
        self.http.close()

    def fetch_raw(self, path: str, params: Mapping[str, str] | None = None) -> HttpResponse:
        return self.http.get(self.base_url + path, params)

    def _fetch_ok(self, path: str, params: Mapping[str, str] | None = None) -> bytes:
        resp = self.fetch_raw(path, params)
        if resp.status != 200:
            raise status_error(resp)
        return resp.body

    def _cached(self, key: str, make: Callable[[], tuple[Any, datetime]]) -> Any:
        now = self.clock()
        item = self.memory.get(key)
        if item is not None and item.fresh(now):
            return item.value
        value, until = make()
        self.memory.put(key, Cached(value, now, min(until.timestamp(), now + self.max_age)))
        return value

    def cert_chain(self, product: str, key_type: str = "vcek") -> KdsChain:
        path = chain_path(product, key_type)

        def make() -> tuple[KdsChain, datetime]:
            chain = validate_cert_chain(self._fetch_ok(path), product, key_type, self.trusted_arks)
            return chain, min(chain.ask.not_valid_after_utc, chain.ark.not_valid_after_utc)

        return self._cached(path, make)  # type: ignore[no-any-return]

    def vcek(self, product: str, hwid: str | bytes, tcb: TcbVersion) -> bytes:
        """The DER VCEK for one chip and reported TCB."""
        product = check_product(product)
        if tcb.product != product:
            raise FormatError(f"a {tcb.product} TCB names no {product} VCEK", field="tcb")
        hw = check_hwid(product, hwid)
        params = kds_query(tcb)
        path = vcek_path(product, hw)
        key = path + "?" + "&".join(f"{k}={v}" for k, v in params.items())

        def make() -> tuple[bytes, datetime]:
            der = self._fetch_ok(path, params)
            cert = validate_vek(der, self.cert_chain(product, "vcek"), product, hwid=hw, tcb=tcb)
            return der, cert.not_valid_after_utc

        return self._cached(key, make)  # type: ignore[no-any-return]

    def crl(self, product: str, key_type: str = "vcek") -> bytes:
        path = crl_path(product, key_type)

        def make() -> tuple[bytes, datetime]:
            der = self._fetch_ok(path)
            crl = validate_crl(der, self.cert_chain(product, key_type))
            if crl.next_update_utc is None:
                raise CorruptCollateral("KDS CRL has no nextUpdate")
            return der, crl.next_update_utc

        return self._cached(path, make)  # type: ignore[no-any-return]

