"""SEV-SNP report verification: every verifiable vector, byte mutations, and each check made to fail.

Real vectors chain to AMD's pinned ARKs; the generated PKI (tests/test_snp_support.py) covers what no real
vector can: broken links, wrong algorithms, tampered extensions, masked chips, Turin reports, CRLs.
"""

from __future__ import annotations

import datetime as dt
import random
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from eaa.errors import (
    CertificateChainError,
    CollateralExpired,
    EaaError,
    FormatError,
    IdentityMismatch,
    InvalidSignature,
    UntrustedRoot,
)
from eaa.formats.snp_report import TcbVersion
from eaa.pki.amd import check_vek_chain
from eaa.pki.trust import TrustAnchor
from eaa.verify.snp import verify_snp_report
from test_snp_support import (
    NOW,
    PSS,
    VekSpec,
    build_report,
    ca_cert,
    der,
    make_pki,
    pem,
    read_report,
    rsa_key,
    vector_pairs,
    vector_path,
)

AT = NOW  # 2025-06-01: every vector certificate is valid then (the trustee VLEK expires 2025-12-10)
PAIRS = vector_pairs()
MILAN_TCB = TcbVersion("Milan", bl=3, tee=0, snp=8, ucode=115)
CHIP = bytes(range(64))


def _ids(pairs: list) -> list[str]:  # type: ignore[type-arg]
    return [f"{folder}/{p['report']}" for folder, p in pairs] or ["<no vectors>"]


def _pair_files(folder: str, p: dict) -> tuple[bytes, bytes, bytes]:  # type: ignore[type-arg]
    chain_folder, _, chain_name = p["ask_ark_chain"].rpartition("/")
    chain_dir = chain_folder.removeprefix("../") if chain_folder else folder
    return (read_report(folder, p["report"]), vector_path(folder, p["vcek"]).read_bytes(),
            vector_path(chain_dir, chain_name).read_bytes())


# ---------------- real vectors ----------------

@pytest.mark.parametrize("pair", PAIRS or [None], ids=_ids(PAIRS))
def test_vectors_verify(pair) -> None:  # type: ignore[no-untyped-def]
    if pair is None:
        read_report("snp-go-sev-guest", "attestation.bin")  # skips (or fails under CI) without vectors
        pytest.fail("vectors present but no report pairs in the SNP manifests")
    folder, p = pair
    assert p["result"].startswith("VERIFIED")
    report, vek, chain = _pair_files(folder, p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = verify_snp_report(report, vek=vek, chain=chain, at=AT)
    assert res.tee == "sev-snp" and res.status == "UpToDate" and not res.collateral_expired and not res.simulated
    m = res.measurements
    assert m["measurement"] == p["parsed"]["measurement"]
    assert m["reported_tcb"] == p["parsed"]["reported_tcb"]
    assert res.report_data.hex() == p["parsed"]["report_data"]
    assert m["vmpl"] == p["parsed"]["vmpl"] and m["policy"] == int(p["parsed"]["policy"], 16)
    assert res.debug is bool(int(p["parsed"]["policy"], 16) & 1 << 19)
    assert res.details["signer"] == ("VLEK" if p["parsed"]["signer_info"] == "0x4" else "VCEK")
    assert res.details["root"].endswith("(pinned)")
    nb = dt.datetime.fromisoformat(p["vek_not_before"])
    na = dt.datetime.fromisoformat(p["vek_not_after"])
    assert res.earliest_expiration == na
    # the verification time decides validity: before the VEK existed or after it expired is flagged
    early = verify_snp_report(report, vek=vek, chain=chain, at=nb - dt.timedelta(seconds=1))
    assert early.details["not_yet_valid"] and not early.collateral_expired
    with pytest.raises(CollateralExpired, match="not yet valid"):
        verify_snp_report(report, vek=vek, chain=chain, at=nb - dt.timedelta(seconds=1), strict=True)
    assert "not_yet_valid" not in res.details
    late = verify_snp_report(report, vek=vek, chain=chain, at=na + dt.timedelta(days=1))
    assert late.collateral_expired
    with pytest.raises(CollateralExpired, match="expired"):
        verify_snp_report(report, vek=vek, chain=chain, at=na + dt.timedelta(days=1), strict=True)
    res.to_json()


def test_vector_details() -> None:
    report, vek, chain = _pair_files("snp-trustee", {"report": "test-vlek-report.bin", "vcek": "test-vlek.der",
                                                     "ask_ark_chain": "../snp-go-sev-guest/ask_ark_milan_vlek.pem"})
    res = verify_snp_report(report, vek=vek, chain=chain, at=AT)
    assert res.details["chip_binding"].startswith("skipped") and res.details["csp_id"].endswith("amazonaws.com")
    assert res.details["product_source"] == "report CPUID" and res.measurements["vmpl"] == 1
    # the VLEK expired on 2025-12-10 (the manifest's pinned-time note)
    assert verify_snp_report(report, vek=vek, chain=chain, at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
                             ).collateral_expired
    v2, vcek, milan = _pair_files("snp-go-sev-guest", {"report": "attestation.bin", "vcek": "vcek.testcer",
                                                       "ask_ark_chain": "ask_ark_milan.pem"})
    res = verify_snp_report(v2, vek=vcek, chain=milan, at=AT, product="Milan")
    assert res.details["product_source"] == "given" and res.details["chip_binding"].startswith("checked")
    assert res.report_data == bytes([1, 2, 3, 4, 5]) + bytes(59)
    assert res.measurements["reported_tcb_spl"] == {"bl": 2, "tee": 0, "snp": 5, "ucode": 68}
    with pytest.raises(IdentityMismatch, match="Genoa"):
        verify_snp_report(v2, vek=vcek, chain=milan, at=AT, product="Genoa")
    # the chain may come in any order, split in pieces, or as certificate objects
    certs = x509.load_pem_x509_certificates(milan)
    verify_snp_report(v2, vek=vcek, chain=[certs[1], certs[0]], at=AT)
    verify_snp_report(v2, vek=vcek, chain=[pem(certs[1]), der(certs[0])], at=AT)
    # the ARK may be left out when it is a given anchor
    verify_snp_report(v2, vek=vcek, chain=pem(certs[0]), at=AT, trust_anchors=[TrustAnchor(certs[1], "ARK")])


def test_turin_chain_vector() -> None:
    vc = check_vek_chain(vector_path("snp-virtee-sev", "vcek_turin.der").read_bytes(),
                         vector_path("snp-virtee-sev", "cert_chain_turin").read_bytes(), at=AT)
    assert vc.kind == "VCEK" and vc.root_product == "Turin" and vc.extensions.hwid is not None
    assert len(vc.extensions.hwid) == 8 and vc.extensions.tcb().fmc == 0


@pytest.mark.parametrize("name", ["test-vcek-invalid-legacy.der", "test-vcek-invalid-new.der"])
def test_invalid_vcek_vectors_fail(name: str) -> None:
    """Parse-only certificates: their signature does not verify under AMD's Milan ASK."""
    vek = vector_path("snp-trustee", name).read_bytes()
    chain = vector_path("snp-go-sev-guest", "ask_ark_milan.pem").read_bytes()
    with pytest.raises(InvalidSignature, match="VCEK"):
        check_vek_chain(vek, chain, at=AT)
    with pytest.raises(EaaError):
        verify_snp_report(read_report("snp-trustee", "test-report.bin"), vek=vek, chain=chain, at=AT)


def test_vectors_with_the_wrong_certificates_fail() -> None:
    report, vek, milan = _pair_files("snp-trustee", {"report": "test-report.bin", "vcek": "test-vcek.der",
                                                     "ask_ark_chain": "../snp-go-sev-guest/ask_ark_milan.pem"})
    genoa_chain = vector_path("snp-go-sev-guest", "ask_ark_genoa.pem").read_bytes()
    vlek_chain = vector_path("snp-go-sev-guest", "ask_ark_milan_vlek.pem").read_bytes()
    with pytest.raises(CertificateChainError, match="no ASK"):
        verify_snp_report(report, vek=vek, chain=genoa_chain, at=AT)
    with pytest.raises(CertificateChainError, match="no ASK"):
        verify_snp_report(report, vek=vek, chain=vlek_chain, at=AT)
    # another chip's VCEK (same TCB, same chain): the report signature does not verify
    other = vector_path("snp-virtee-sev", "vcek_milan.der").read_bytes()
    with pytest.raises(InvalidSignature, match="report signature"):
        verify_snp_report(report, vek=other, chain=milan, at=AT)
    # a Genoa report with Milan certificates: the signature is checked before the fields it covers
    genoa_report = read_report("snp-trustee", "snp-report-genoa.bin")
    with pytest.raises(InvalidSignature, match="report signature"):
        verify_snp_report(genoa_report, vek=vek, chain=milan, at=AT)
    # AMD's real chain is not trusted when other anchors are given
    with pytest.raises(UntrustedRoot):
        verify_snp_report(report, vek=vek, chain=milan, at=AT, trust_anchors=[make_pki().ark])


# ---------------- mutations ----------------

# Field boundaries (first and last byte of each field) of the signed area and the signature.
_BOUNDARIES = [0x00, 0x04, 0x08, 0x10, 0x20, 0x30, 0x34, 0x38, 0x40, 0x48, 0x4C, 0x50, 0x90, 0xC0, 0xE0, 0x110,
               0x140, 0x160, 0x180, 0x188, 0x18B, 0x1A0, 0x1E0, 0x1E8, 0x1EB, 0x1EC, 0x1EF, 0x1F0, 0x1F8, 0x200,
               0x208, 0x2A0, 0x2C7, 0x2D0, 0x2E8, 0x30F, 0x318, 0x330]
MUTATION_POSITIONS = sorted({p for b in _BOUNDARIES for p in (b - 1, b) if 0 <= p < 0x4A0}
                            | set(random.Random(20250601).sample(range(0x4A0), 220)))


@pytest.mark.parametrize("source", ["snp-go-sev-guest/attestation.bin", "snp-trustee/test-vlek-report.bin"])
def test_every_one_byte_change_fails(source: str) -> None:
    assert len(MUTATION_POSITIONS) >= 200
    pair = next(p for f, p in PAIRS if f"{f}/{p['report']}" == source) if PAIRS else None
    if pair is None:
        read_report("snp-go-sev-guest", "attestation.bin")
        pytest.fail(f"{source} not in the manifests")
    folder = source.split("/")[0]
    report, vek, chain = _pair_files(folder, pair)
    verify_snp_report(report, vek=vek, chain=chain, at=AT)
    rng = random.Random(7)
    for pos in MUTATION_POSITIONS:
        d = bytearray(report)
        d[pos] ^= rng.randrange(1, 256)
        with pytest.raises((FormatError, InvalidSignature, IdentityMismatch)):
            verify_snp_report(bytes(d), vek=vek, chain=chain, at=AT)
            pytest.fail(f"a change at offset 0x{pos:x} verified")


@pytest.mark.parametrize("source", ["snp-go-sev-guest/attestation.bin", "snp-trustee/test-vlek-report.bin"])
def test_certificate_changes_are_typed_failures(source: str) -> None:
    """Changed bytes in the VEK (DER) and its chain (PEM text) fail with a typed error or, for text that
    decodes to the same certificates, change nothing; cryptography parses names and keys lazily, so this
    is where an untyped error would escape."""
    pair = next(p for f, p in PAIRS if f"{f}/{p['report']}" == source) if PAIRS else None
    if pair is None:
        read_report("snp-go-sev-guest", "attestation.bin")
        pytest.fail(f"{source} not in the manifests")
    report, vek, chain = _pair_files(source.split("/")[0], pair)
    original = verify_snp_report(report, vek=vek, chain=chain, at=AT)
    rng = random.Random(0x5E5)
    for which, data in (("vek", vek), ("chain", chain)):
        for pos in sorted(set(rng.sample(range(len(data)), min(len(data), 150))) | {0, len(data) - 1}):
            d = bytearray(data)
            d[pos] ^= 0x01 if pos % 2 else 0x20
            args = {"vek": vek, "chain": chain, which: bytes(d)}
            try:
                result = verify_snp_report(report, at=AT, **args)
            except EaaError:
                continue
            assert which == "chain" and result == original, f"{which}: a change at {pos} still verified"


# ---------------- the generated PKI: each check made to fail ----------------

@pytest.fixture(scope="module")
def pki():  # type: ignore[no-untyped-def]
    return make_pki("Milan")


def _ok(pki, spec: VekSpec | None = None, **report):  # type: ignore[no-untyped-def]
    """A matching VEK and report (the report's defaults match VekSpec's)."""
    cert, key = pki.vek(spec)
    return cert, build_report(key, **report)


def _verify(pki, cert, report, *, chain=None, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("trust_anchors", [pki.ark])
    return verify_snp_report(report, vek=der(cert), chain=pki.chain if chain is None else chain, at=AT, **kw)


def test_generated_report_verifies(pki) -> None:  # type: ignore[no-untyped-def]
    cert, report = _ok(pki)
    res = _verify(pki, cert, report)
    assert res.status == "UpToDate" and res.details["product_source"] == "report CPUID"
    assert res.details["root"] == pki.ark.subject.rfc4514_string() and not res.debug
    assert res.measurements["host_data"] == "11" * 32 and res.measurements["current_firmware"] == "1.55.1"
    assert _verify(pki, cert, report, trust_anchors=[TrustAnchor(pki.ark, "test ARK")]).details["root"] == "test ARK"
    # v2 without a product: the VEK's productName names it
    cert2, v2 = _ok(pki, version=2)
    assert _verify(pki, cert2, v2).details["product_source"] == "VEK certificate"
    # policy bit 19 is the debug flag
    cert3, dbg = _ok(pki, policy=0x30000 | 1 << 19)
    assert _verify(pki, cert3, dbg).debug


def test_ark_must_be_trusted(pki) -> None:  # type: ignore[no-untyped-def]
    cert, report = _ok(pki)
    with pytest.raises(UntrustedRoot, match="pinned"):
        _verify(pki, cert, report, trust_anchors=None)  # default: only AMD's pinned ARKs
    other = ca_cert("ARK-Milan", rsa_key(5), "ARK-Milan", rsa_key(5))
    with pytest.raises(UntrustedRoot, match="trust anchors"):
        _verify(pki, cert, report, trust_anchors=[other])
    # the ARK left out, and no trusted ARK signed the ASK
    with pytest.raises(UntrustedRoot, match="not signed by any trusted ARK"):
        _verify(pki, cert, report, chain=pem(pki.ask), trust_anchors=[other])
    with pytest.raises(CertificateChainError, match="no ARK"):
        _verify(pki, cert, report, chain=pem(pki.ask), trust_anchors=[make_pki("Genoa").ark])
    assert _verify(pki, cert, report, chain=pem(pki.ask), trust_anchors=[other, pki.ark]).status == "UpToDate"


def test_ark_must_be_self_signed(pki) -> None:  # type: ignore[no-untyped-def]
    # an "ARK" with the ARK's key but signed by another key: trusted by fingerprint, yet not self-signed
    forged = ca_cert("ARK-Milan", pki.ark_key, "ARK-Milan", rsa_key(5))
    ask = ca_cert("SEV-Milan", pki.ask_key, "ARK-Milan", pki.ark_key)
    cert, report = _ok(pki)
    with pytest.raises(InvalidSignature, match="ARK"):
        _verify(pki, cert, report, chain=pem(ask, forged), trust_anchors=[forged])


def test_ask_must_be_signed_by_the_ark(pki) -> None:  # type: ignore[no-untyped-def]
    ask = ca_cert("SEV-Milan", pki.ask_key, "ARK-Milan", rsa_key(5))
    cert, report = _ok(pki)
    with pytest.raises(InvalidSignature, match="ASK"):
        _verify(pki, cert, report, chain=pem(ask, pki.ark))
    not_ca = ca_cert("SEV-Milan", pki.ask_key, "ARK-Milan", pki.ark_key, ca=False)
    with pytest.raises(CertificateChainError, match="not a CA"):
        _verify(pki, cert, report, chain=pem(not_ca, pki.ark))
    with pytest.raises(CertificateChainError, match="no ASK"):
        _verify(pki, cert, report, chain=pem(pki.ark))
    bad_name = ca_cert("SEV-Genoa", pki.ask_key, "ARK-Milan", pki.ark_key)
    key = ec.generate_private_key(ec.SECP384R1())
    cert2, _ = vek_from(bad_name, pki.ask_key, VekSpec(key=key))
    with pytest.raises(CertificateChainError, match="names"):
        _verify(pki, cert2, build_report(key), chain=pem(bad_name, pki.ark))


def vek_from(issuer_cert, signer, spec):  # type: ignore[no-untyped-def]
    from test_snp_support import vek_cert

    cn = issuer_cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    return vek_cert(spec, cn, signer)


def test_vek_must_be_signed_by_the_ask_with_pss_sha384_salt48(pki) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP384R1())
    report = build_report(key)
    other_ask_key = rsa_key(6)
    forged, _ = vek_from(pki.ask, other_ask_key, VekSpec(key=key))
    with pytest.raises(InvalidSignature, match="VCEK"):
        _verify(pki, forged, report)
    pkcs1, _ = pki.vek(VekSpec(key=key, pad=padding.PKCS1v15()))
    with pytest.raises(CertificateChainError, match="RSASSA-PSS"):
        _verify(pki, pkcs1, report)
    salt32, _ = pki.vek(VekSpec(key=key, pad=padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=32)))
    with pytest.raises(InvalidSignature):
        _verify(pki, salt32, report)
    good, _ = pki.vek(VekSpec(key=key))
    _verify(pki, good, report)


def test_vek_must_hold_a_p384_key(pki) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP256R1())
    cert, _ = pki.vek(VekSpec(key=key))
    _, report = _ok(pki)
    with pytest.raises(CertificateChainError, match="P-384"):
        _verify(pki, cert, report)
    ask_as_vek = ca_cert("SEV-Milan", pki.ask_key, "ARK-Milan", pki.ark_key)
    with pytest.raises(CertificateChainError, match="not a VCEK or VLEK"):
        _verify(pki, ask_as_vek, report)


def test_validity_windows(pki) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP384R1())
    report = build_report(key)
    expired, _ = pki.vek(VekSpec(key=key, not_before=AT - dt.timedelta(days=10), not_after=AT - dt.timedelta(days=1)))
    res = _verify(pki, expired, report)
    assert res.collateral_expired and res.status == "UpToDate"
    with pytest.raises(CollateralExpired):
        _verify(pki, expired, report, strict=True)
    future, _ = pki.vek(VekSpec(key=key, not_before=AT + dt.timedelta(days=1)))
    assert _verify(pki, future, report).details["not_yet_valid"] == ["VCEK is not valid before 2025-06-02T00:00:00Z"]
    with pytest.raises(CollateralExpired, match="not yet valid"):
        _verify(pki, future, report, strict=True)
    old_ask = ca_cert("SEV-Milan", pki.ask_key, "ARK-Milan", pki.ark_key, not_after=AT - dt.timedelta(seconds=1))
    good, _ = pki.vek(VekSpec(key=key))
    assert _verify(pki, good, report, chain=pem(old_ask, pki.ark)).collateral_expired


def test_report_signature(pki) -> None:  # type: ignore[no-untyped-def]
    cert, _ = pki.vek()
    other = build_report(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(InvalidSignature, match="report signature"):
        _verify(pki, cert, other)
    unsigned = build_report(ec.generate_private_key(ec.SECP384R1()), signer_info=7 << 2)
    with pytest.raises(InvalidSignature, match="not signed"):
        _verify(pki, cert, unsigned)


def test_tcb_extensions_must_equal_reported_tcb(pki) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP384R1())
    report = build_report(key)
    for tcb in (TcbVersion("Milan", 3, 0, 8, 116), TcbVersion("Milan", 2, 0, 8, 115), TcbVersion("Milan", 3, 1, 8, 115),
                TcbVersion("Milan", 3, 0, 9, 115), TcbVersion("Milan", 3, 0, 8, 115, reserved=(0, 1, 0, 0))):
        cert, _ = pki.vek(VekSpec(key=key, tcb=tcb))
        with pytest.raises(IdentityMismatch, match="REPORTED_TCB"):
            _verify(pki, cert, report)


def test_hwid_must_equal_chip_id(pki) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP384R1())
    report = build_report(key)
    cert, _ = pki.vek(VekSpec(key=key, hwid=b"\x01" * 64))
    with pytest.raises(IdentityMismatch, match="CHIP_ID"):
        _verify(pki, cert, report)
    wrapped, _ = pki.vek(VekSpec(key=key, hwid_wrapped=True))
    assert _verify(pki, wrapped, report).details["chip_binding"].startswith("checked")
    no_hwid, _ = pki.vek(VekSpec(key=key, hwid=None))
    with pytest.raises(CertificateChainError, match="hwID"):
        _verify(pki, no_hwid, report)
    # a VCEK with a zeroed CHIP_ID but no MASK_CHIP_KEY cannot be bound
    zero = build_report(key, chip_id=bytes(64))
    with pytest.raises(IdentityMismatch, match="CHIP_ID"):
        _verify(pki, wrapped, zero)


def test_masked_chip_key(pki) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP384R1())
    cert, _ = pki.vek(VekSpec(key=key))
    masked = build_report(key, signer_info=0b10, chip_id=bytes(64))
    res = _verify(pki, cert, masked)
    assert res.details["chip_binding"].startswith("skipped") and "MASK_CHIP_KEY" in res.details["chip_binding"]
    with pytest.raises(IdentityMismatch, match="MASK_CHIP_KEY"):
        _verify(pki, cert, build_report(key, signer_info=0b10))


def test_signer_info_must_match_the_certificate_kind(pki) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP384R1())
    vcek, _ = pki.vek(VekSpec(key=key))
    vlek, _ = pki.vek(VekSpec(key=key, kind="VLEK", hwid=None, csp_id="CN=test-csp", product_name="Milan"))
    vlek_report = build_report(key, signer_info=1 << 2, chip_id=bytes(64))
    res = _verify(pki, vlek, vlek_report, chain=pki.vlek_chain)
    assert res.details["signer"] == "VLEK" and res.details["csp_id"] == "CN=test-csp"
    with pytest.raises(IdentityMismatch, match="VLEK"):
        _verify(pki, vcek, vlek_report)
    with pytest.raises(IdentityMismatch, match="VCEK"):
        _verify(pki, vlek, build_report(key), chain=pki.vlek_chain)
    # a VLEK issued by the ASK (not an ASVK) carries the wrong chain names
    vlek_by_ask, _ = vek_from(pki.ask, pki.ask_key, VekSpec(key=key, kind="VLEK", hwid=None, product_name="Milan"))
    with pytest.raises(CertificateChainError, match="SEV-VLEK-Milan"):
        _verify(pki, vlek_by_ask, vlek_report)


def test_product_consistency(pki) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP384R1())
    genoa_cert, _ = pki.vek(VekSpec(key=key, product_name="Genoa"))
    with pytest.raises(IdentityMismatch, match="Genoa"):
        _verify(pki, genoa_cert, build_report(key))
    milan_cert, _ = pki.vek(VekSpec(key=key))
    with pytest.raises(IdentityMismatch, match="CPUID names a Genoa"):
        _verify(pki, milan_cert, build_report(key, product="Genoa"), product="Milan")
    with pytest.raises(IdentityMismatch, match="Milan"):
        _verify(pki, milan_cert, build_report(key, product="Genoa"))
    with pytest.raises(IdentityMismatch, match="no known SEV-SNP product"):
        _verify(pki, milan_cert, build_report(key, cpuid=(0x17, 0x31, 0)))
    # a v3 report with unstated CPUID counts as unstated; a given product then decides
    assert _verify(pki, milan_cert, build_report(key, cpuid=(0, 0, 0)), product="milan").details["product"] == "Milan"
    # the chain's names must be the product's
    genoa = make_pki("Genoa")
    cert, _ = genoa.vek(VekSpec(key=key))
    with pytest.raises(CertificateChainError, match="names"):
        verify_snp_report(build_report(key), vek=cert, chain=genoa.chain, at=AT, trust_anchors=[genoa.ark])


def test_host_requested_report_is_rejected(pki) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP384R1())
    cert, _ = pki.vek(VekSpec(key=key))
    with pytest.raises(IdentityMismatch, match="VMPL"):
        _verify(pki, cert, build_report(key, vmpl=0xFFFF_FFFF))


def test_turin_report() -> None:
    turin = make_pki("Turin")
    tcb = TcbVersion("Turin", bl=1, tee=2, snp=3, ucode=9, fmc=4, reserved=(0, 0, 0))
    key = ec.generate_private_key(ec.SECP384R1())
    chip = bytes(range(8)) + bytes(56)
    cert, _ = turin.vek(VekSpec(key=key, product_name="Turin", tcb=tcb, hwid=chip[:8]))
    report = build_report(key, product="Turin", reported_tcb=tcb, chip_id=chip, version=5, mit=(1, 2))
    res = verify_snp_report(report, vek=cert, chain=turin.chain, at=AT, trust_anchors=[turin.ark])
    assert res.details["product"] == "Turin"
    assert res.measurements["reported_tcb_spl"] == {"bl": 1, "tee": 2, "snp": 3, "ucode": 9, "fmc": 4}
    assert res.measurements["launch_mit_vector"] == 1 and res.measurements["current_mit_vector"] == 2
    other_fmc, _ = turin.vek(VekSpec(key=key, product_name="Turin", hwid=chip[:8],
                                     tcb=TcbVersion("Turin", 1, 2, 3, 9, fmc=5, reserved=(0, 0, 0))))
    with pytest.raises(IdentityMismatch, match="REPORTED_TCB"):
        verify_snp_report(report, vek=other_fmc, chain=turin.chain, at=AT, trust_anchors=[turin.ark])
    other_chip, _ = turin.vek(VekSpec(key=key, product_name="Turin", tcb=tcb, hwid=b"\x09" * 8))
    with pytest.raises(IdentityMismatch, match="CHIP_ID"):
        verify_snp_report(report, vek=other_chip, chain=turin.chain, at=AT, trust_anchors=[turin.ark])
    no_fmc, _ = turin.vek(VekSpec(key=key, product_name="Turin", tcb=tcb, hwid=chip[:8],
                                  omit=("1.3.6.1.4.1.3704.1.3.9",)))
    with pytest.raises(FormatError, match="fmcSPL"):
        verify_snp_report(report, vek=no_fmc, chain=turin.chain, at=AT, trust_anchors=[turin.ark])


def _crl(pki, signer, revoked=(), this_update=AT - dt.timedelta(days=1), next_update=AT + dt.timedelta(days=30)):  # type: ignore[no-untyped-def]
    b = (x509.CertificateRevocationListBuilder().issuer_name(pki.ark.subject)
         .last_update(this_update).next_update(next_update))
    for serial in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(AT - dt.timedelta(days=2)).build())
    return b.sign(signer, hashes.SHA384(), rsa_padding=PSS).public_bytes(serialization.Encoding.DER)


def test_crl(pki) -> None:  # type: ignore[no-untyped-def]
    cert, report = _ok(pki)
    res = _verify(pki, cert, report, crl=_crl(pki, pki.ark_key, revoked=[12345]))
    assert res.earliest_expiration == AT + dt.timedelta(days=30)
    with pytest.raises(CertificateChainError, match="revoked"):
        _verify(pki, cert, report, crl=_crl(pki, pki.ark_key, revoked=[pki.ask.serial_number]))
    with pytest.raises(InvalidSignature):
        _verify(pki, cert, report, crl=_crl(pki, rsa_key(5)))
    stale = _crl(pki, pki.ark_key, this_update=AT - dt.timedelta(days=60), next_update=AT - dt.timedelta(days=30))
    assert _verify(pki, cert, report, crl=stale).collateral_expired
    with pytest.raises(CollateralExpired):
        _verify(pki, cert, report, crl=stale, strict=True)
    early = _crl(pki, pki.ark_key, this_update=AT + dt.timedelta(days=1))
    assert _verify(pki, cert, report, crl=early).details["not_yet_valid"][0].startswith("AMD CRL")
    with pytest.raises(CollateralExpired, match="CRL"):
        _verify(pki, cert, report, crl=early, strict=True)


def test_one_vek_only(pki) -> None:  # type: ignore[no-untyped-def]
    cert, report = _ok(pki)
    with pytest.raises(CertificateChainError, match="one VEK"):
        verify_snp_report(report, vek=pem(cert, cert), chain=pki.chain, at=AT, trust_anchors=[pki.ark])
