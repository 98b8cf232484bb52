"""The AMD KDS client against a local fake KDS: real VCEKs and chains from the vectors (AMD's pinned
ARKs), plus a generated test PKI for CRLs and for the ways a KDS answer can be wrong."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from _vectors import require_vectors
from eaa.collateral.errors import CollateralNotFound, CorruptCollateral
from eaa.collateral.kds import KdsClient, kds_query, load_der_certificate, vek_extensions
from eaa.errors import FormatError
from eaa.formats.snp_report import TcbVersion
from test_pccs_support import Reply, Route, fake_upstream

PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class KdsFiles:
    product: str
    vcek: bytes
    chain: bytes
    hwid: str
    tcb: TcbVersion
    crl: bytes | None = None


def vector_kds(product: str) -> KdsFiles:
    d = require_vectors()
    name = {"Milan": "milan", "Turin": "turin"}[product]
    vcek = (d / f"snp-virtee-sev/vcek_{name}.der").read_bytes()
    ext = vek_extensions(load_der_certificate(vcek, "vcek"))
    assert ext.hwid is not None
    chain = (d / f"snp-virtee-sev/cert_chain_{name}").read_bytes()
    return KdsFiles(product, vcek, chain, ext.hwid.hex(), ext.tcb(product))


def kds_routes(*files: KdsFiles) -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for f in files:
        def vcek(q: dict[str, str], f: KdsFiles = f) -> Reply:
            want = {k: str(v) for k, v in kds_query(f.tcb).items()}
            if q != want:
                return 404, b"no VCEK for that TCB", {}
            return 200, f.vcek, {"Content-Type": "application/octet-stream"}

        routes[f"/vcek/v1/{f.product}/{f.hwid}"] = vcek
        routes[f"/vcek/v1/{f.product}/cert_chain"] = lambda q, f=f: (200, f.chain, {})
        if f.crl is not None:
            routes[f"/vcek/v1/{f.product}/crl"] = lambda q, f=f: (200, f.crl, {})
    return routes


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Advanced Micro Devices")])


def _der_int(v: int) -> bytes:
    body = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")
    return bytes([0x02, len(body)]) + body


MILAN_TCB = TcbVersion.of("Milan", bl=3, tee=0, snp=8, ucode=115)


def make_test_pki(product: str = "Milan", hwid: bytes = b"\x11" * 64, tcb: TcbVersion = MILAN_TCB):  # type: ignore[no-untyped-def]
    """Builds an ARK/ASK/VCEK/CRL set shaped like AMD's (RSA-PSS chain, P-384 VCEK)."""
    ark_key = rsa.generate_private_key(65537, 2048)
    ask_key = rsa.generate_private_key(65537, 2048)

    def ca(subject: str, key, issuer: str, signer):  # type: ignore[no-untyped-def]
        return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(signer, hashes.SHA384(), rsa_padding=PSS))

    ark = ca(f"ARK-{product}", ark_key, f"ARK-{product}", ark_key)
    ask = ca(f"SEV-{product}", ask_key, f"ARK-{product}", ark_key)
    o = "1.3.6.1.4.1.3704.1"
    exts = {f"{o}.1": _der_int(0), f"{o}.2": b"\x16" + bytes([len(product) + 3]) + product.encode() + b"-B0",
            f"{o}.3.1": _der_int(tcb.bl), f"{o}.3.2": _der_int(tcb.tee), f"{o}.3.3": _der_int(tcb.snp),
            f"{o}.3.8": _der_int(tcb.ucode), f"{o}.4": hwid}
    b = (x509.CertificateBuilder().subject_name(_name("SEV-VCEK")).issuer_name(_name(f"SEV-{product}"))
         .public_key(ec.generate_private_key(ec.SECP384R1()).public_key()).serial_number(1)
         .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=2000)))
    for oid, value in exts.items():
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    vcek = b.sign(ask_key, hashes.SHA384(), rsa_padding=PSS)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ark.subject).last_update(NOW)
           .next_update(NOW + dt.timedelta(days=30)).sign(ark_key, hashes.SHA384(), rsa_padding=PSS))
    pem = serialization.Encoding.PEM
    der = serialization.Encoding.DER
    files = KdsFiles(product, vcek.public_bytes(der), ask.public_bytes(pem) + ark.public_bytes(pem), hwid.hex(), tcb,
                     crl.public_bytes(der))
    return files, ark




def _client(url: str, **kw):  # type: ignore[no-untyped-def]
    return KdsClient(url, retries=0, timeout=5, **kw)


@pytest.mark.parametrize("product", ["Milan", "Turin"])
def test_vcek_and_chain_from_vectors(product: str) -> None:
    f = vector_kds(product)
    with fake_upstream(kds_routes(f)) as kds:
        client = _client(kds.url)
        assert client.vcek(product, f.hwid, f.tcb) == f.vcek
        chain = client.cert_chain(product)
        assert chain.ark.subject.rfc4514_string().startswith(f"CN=ARK-{product}")
        assert client.vcek(product.lower(), f.hwid.upper(), f.tcb) == f.vcek  # cached, any spelling
        assert kds.hits[f"/vcek/v1/{product}/{f.hwid}"] == 1 and kds.hits[f"/vcek/v1/{product}/cert_chain"] == 1


def test_turin_query_has_fmc_and_short_hwid() -> None:
    f = vector_kds("Turin")
    assert list(kds_query(f.tcb)) == ["fmcSPL", "blSPL", "teeSPL", "snpSPL", "ucodeSPL"]
    assert len(f.hwid) == 16
    turin = TcbVersion.decode(int.from_bytes(bytes([1, 2, 3, 4, 0, 0, 0, 9]), "little"), "Turin")
    assert turin == TcbVersion.of("Turin", bl=2, tee=3, snp=4, ucode=9, fmc=1)
    assert kds_query(turin) == {"fmcSPL": "1", "blSPL": "2", "teeSPL": "3", "snpSPL": "4", "ucodeSPL": "9"}
    assert TcbVersion.decode(0x4405000000000002, "Milan") == TcbVersion.of("Milan", bl=2, tee=0, snp=5, ucode=0x44)


def test_wrong_vcek_answers_are_corrupt() -> None:
    f = vector_kds("Milan")
    other = vector_kds("Turin")
    bad = bytearray(f.vcek)
    bad[-20] ^= 1
    for routes, match in (
        (kds_routes(KdsFiles("Milan", bytes(bad), f.chain, f.hwid, f.tcb)), "signature"),
        (kds_routes(KdsFiles("Milan", f.vcek, other.chain, f.hwid, f.tcb)), "ARK"),
    ):
        with fake_upstream(routes) as kds, pytest.raises(CorruptCollateral, match=match):
            _client(kds.url).vcek("Milan", f.hwid, f.tcb)
    # a VCEK served for another chip or TCB than the one asked for
    with fake_upstream({f"/vcek/v1/Milan/{'ab' * 64}": lambda q: (200, f.vcek, {}),
                        "/vcek/v1/Milan/cert_chain": lambda q: (200, f.chain, {})}) as kds:
        with pytest.raises(CorruptCollateral, match="hwID"):
            _client(kds.url).vcek("Milan", "ab" * 64, f.tcb)
    with fake_upstream({f"/vcek/v1/Milan/{f.hwid}": lambda q: (200, f.vcek, {}),
                        "/vcek/v1/Milan/cert_chain": lambda q: (200, f.chain, {})}) as kds:
        with pytest.raises(CorruptCollateral, match="TCB"):
            _client(kds.url).vcek("Milan", f.hwid, TcbVersion.of("Milan", bl=1, tee=0, snp=1, ucode=1))


def test_generated_pki_crl_and_trusted_arks() -> None:
    files, ark = make_test_pki()
    with fake_upstream(kds_routes(files)) as kds:
        with pytest.raises(CorruptCollateral, match="not AMD's Milan ARK"):
            _client(kds.url).cert_chain("Milan")
        client = _client(kds.url, trusted_arks=[ark])
        assert client.vcek("Milan", files.hwid, files.tcb) == files.vcek
        assert client.crl("Milan") == files.crl
        with pytest.raises(CollateralNotFound):
            client.crl("Milan", "vlek")


def test_parameter_errors() -> None:
    client = _client("http://127.0.0.1:9")
    with pytest.raises(FormatError):
        client.vcek("Rome", "00" * 64, TcbVersion.of("Milan", bl=1, tee=1, snp=1, ucode=1))
    with pytest.raises(FormatError):
        client.vcek("Milan", "00" * 8, TcbVersion.of("Milan", bl=1, tee=1, snp=1, ucode=1))
    with pytest.raises(FormatError, match="Turin TCB"):
        client.vcek("Milan", "00" * 64, TcbVersion.of("Turin", bl=1, tee=1, snp=1, ucode=1, fmc=1))
    with pytest.raises(FormatError):
        TcbVersion.of("Milan", bl=256, tee=0, snp=0, ucode=0)
    with pytest.raises(FormatError):
        client.cert_chain("Milan", "vxek")


def test_vlek_extensions_from_vectors() -> None:
    d = require_vectors()
    ext = vek_extensions(load_der_certificate((d / "snp-trustee/test-vlek.der").read_bytes(), "vlek"))
    assert ext.product_name == "Milan" and ext.csp_id and ext.tcb().ucode == 217 and ext.hwid is None
    for name in ("test-vcek-invalid-legacy.der", "test-vcek-invalid-new.der"):  # raw and OCTET STRING hwID
        e = vek_extensions(load_der_certificate((d / "snp-trustee" / name).read_bytes(), name))
        assert e.hwid is not None and len(e.hwid) == 64
