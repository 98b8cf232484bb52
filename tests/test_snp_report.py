"""Parsing SEV-SNP reports and VEK certificate extensions: every vector, every rejection, and random input."""

from __future__ import annotations

import json
import warnings

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eaa.errors import FormatError
from eaa.formats.snp_report import (
    GENOA,
    MILAN,
    REPORT_SIZE,
    SIGNED_SIZE,
    TURIN,
    SnpReport,
    TcbVersion,
    decode_report_text,
    normalize_product,
    product_from_cpuid,
)
from eaa.formats.snp_vek import load_certificates, load_vek_certificate, parse_vek_extensions, vek_extensions, vek_kind
from test_snp_support import (
    AMD_OID,
    SNP_DIRS,
    build_report,
    der_int,
    ia5,
    read_report,
    snp_manifest,
    vector_pairs,
    vector_path,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = ec.generate_private_key(ec.SECP384R1())
PAIRS = vector_pairs()


def _ids(pairs: list) -> list[str]:  # type: ignore[type-arg]
    return [f"{folder}/{p['report']}" for folder, p in pairs] or ["<no vectors>"]


# ---------------- vectors ----------------

@pytest.mark.parametrize("pair", PAIRS or [None], ids=_ids(PAIRS))
def test_vector_reports_parse_as_their_manifest_says(pair) -> None:  # type: ignore[no-untyped-def]
    if pair is None:
        read_report("snp-go-sev-guest", "attestation.bin")  # skips (or fails under CI) without vectors
        pytest.fail("vectors present but no report pairs in the SNP manifests")
    folder, p = pair
    r = SnpReport.parse(read_report(folder, p["report"]))
    want = p["parsed"]
    assert r.version == want["version"]
    assert r.guest_svn == want["guest_svn"]
    assert r.policy == int(want["policy"], 16)
    assert r.vmpl == want["vmpl"]
    assert r.signer_info == int(want["signer_info"], 16)
    assert r.report_data.hex() == want["report_data"]
    assert r.measurement.hex() == want["measurement"]
    assert r.host_data.hex() == want["host_data"]
    assert r.reported_tcb == int(want["reported_tcb"], 16)
    assert r.current_tcb == int(want["current_tcb"], 16)
    assert r.launch_tcb == int(want["launch_tcb"], 16)
    assert r.chip_id.hex() == want["chip_id"]
    assert r.raw[0x188:0x18B].hex() == want["cpuid_fms_bytes_0x188"]
    assert len(r.signed_bytes) == SIGNED_SIZE and r.raw == r.signed_bytes + r.raw[SIGNED_SIZE:]
    json.dumps(r.fields())


def test_vector_products_and_tcbs() -> None:
    v2 = SnpReport.parse(read_report("snp-go-sev-guest", "attestation.bin"))
    assert v2.version == 2 and v2.product is None and v2.cpuid_fam_id is None
    t = v2.tcb("reported", MILAN)
    assert (t.bl, t.tee, t.snp, t.ucode, t.fmc) == (2, 0, 5, 0x44, None)  # go-sev-guest's KDS URL
    vlek = SnpReport.parse(read_report("snp-trustee", "test-vlek-report.bin"))
    assert vlek.product == MILAN and vlek.signing_key_name == "VLEK" and not any(vlek.chip_id)
    assert vlek.vmpl == 1 and vlek.tcb("reported", MILAN).ucode == 217
    genoa = SnpReport.parse(read_report("snp-trustee", "snp-report-genoa.bin"))
    assert genoa.product == GENOA and genoa.signing_key_name == "VCEK"
    assert genoa.tcb("reported", "genoa").as_dict() == {"bl": 10, "tee": 0, "snp": 23, "ucode": 84}


def test_hex_text_report() -> None:
    raw = vector_path("snp-virtee-sev", "report_milan.hex").read_bytes()
    assert len(decode_report_text(raw)) == REPORT_SIZE
    assert decode_report_text(raw) == decode_report_text(decode_report_text(raw))
    for bad in (b"zz" * REPORT_SIZE, b"00" * 10, b"\x00" * 5):
        with pytest.raises(FormatError):
            decode_report_text(bad)


def test_every_snp_vector_certificate_parses_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # AMD's serial-0 VEKs must not leak a deprecation warning
        for folder in SNP_DIRS:
            for f in snp_manifest(folder)["files"]:
                name = f["file"]
                data = vector_path(folder, name).read_bytes()
                if name.endswith((".bin", ".hex")):
                    continue
                certs = load_certificates(data)
                assert certs, name
                for c in certs:
                    if vek_kind(c) is not None:
                        vek_extensions(c)


def test_vek_extension_vectors() -> None:
    turin = vek_extensions(load_vek_certificate(vector_path("snp-virtee-sev", "vcek_turin.der").read_bytes()))
    assert turin.product == TURIN and turin.struct_version == 1 and turin.hwid is not None and len(turin.hwid) == 8
    t = turin.tcb()
    assert t.fmc == 0 and t.ucode == 9 and TcbVersion.decode(t.encode(), TURIN) == t
    vlek_cert = load_vek_certificate(vector_path("snp-trustee", "test-vlek.der").read_bytes())
    vlek = vek_extensions(vlek_cert)
    assert vek_kind(vlek_cert) == "VLEK" and vlek.product_name == "Milan" and vlek.hwid is None
    assert vlek.csp_id == "CN=cc-us-east-2.amazonaws.com" and vlek.spl["ucodeSPL"] == 217  # 02 02 00 d9
    genoa = vek_extensions(load_vek_certificate(vector_path("snp-trustee", "vcek-genoa.pem").read_bytes()))
    assert genoa.product == GENOA and genoa.product_name == "Genoa"
    milan = vek_extensions(load_vek_certificate(vector_path("snp-go-sev-guest", "vcek.testcer").read_bytes()))
    assert milan.product_name == "Milan-B0" and milan.tcb().encode() == 0x4405000000000002
    for name in ("test-vcek-invalid-legacy.der", "test-vcek-invalid-new.der"):  # raw vs OCTET STRING hwID
        e = vek_extensions(load_vek_certificate(vector_path("snp-trustee", name).read_bytes()))
        assert e.hwid == bytes(range(64)), name


# ---------------- TCB_VERSION and products ----------------

def test_tcb_layouts() -> None:
    raw = int.from_bytes(bytes([1, 2, 3, 4, 0, 0, 0, 9]), "little")
    turin = TcbVersion.decode(raw, TURIN)
    assert (turin.fmc, turin.bl, turin.tee, turin.snp, turin.ucode) == (1, 2, 3, 4, 9)
    milan = TcbVersion.decode(raw, MILAN)
    assert (milan.bl, milan.tee, milan.snp, milan.ucode, milan.reserved) == (1, 2, 0, 9, (3, 4, 0, 0))
    for value in (0, raw, 0xFFFF_FFFF_FFFF_FFFF, 0x4405000000000002):
        for p in (MILAN, GENOA, TURIN):
            assert TcbVersion.decode(value, p).encode() == value
    with pytest.raises(FormatError):
        TcbVersion(MILAN, 1, 1, 1, 1, fmc=1)
    with pytest.raises(FormatError):
        TcbVersion(TURIN, 1, 1, 1, 1)
    with pytest.raises(FormatError):
        TcbVersion(MILAN, 256, 1, 1, 1)
    with pytest.raises(FormatError):
        TcbVersion.decode(1 << 64, MILAN)
    assert "ucode=9" in str(milan)


def test_products() -> None:
    assert product_from_cpuid(0x19, 0x01) == MILAN
    assert product_from_cpuid(0x19, 0x11) == GENOA and product_from_cpuid(0x19, 0xA0) == GENOA
    assert product_from_cpuid(0x1A, 0x02) == TURIN and product_from_cpuid(0x1A, 0x11) == TURIN
    assert product_from_cpuid(0x19, 0x30) is None and product_from_cpuid(0x1A, 0x12) is None
    assert product_from_cpuid(0x17, 0x01) is None
    assert normalize_product("milan-B0") == MILAN and normalize_product("GENOA") == GENOA
    with pytest.raises(FormatError):
        normalize_product("Rome")


# ---------------- rejections ----------------

def _report(**kw) -> bytearray:  # type: ignore[no-untyped-def]
    return bytearray(build_report(KEY, **kw))


def _set(d: bytearray, off: int, value: int, size: int) -> bytes:
    d[off:off + size] = value.to_bytes(size, "little")
    return bytes(d)


@pytest.mark.parametrize("version", [2, 3, 4, 5])
def test_generated_versions_parse(version: int) -> None:
    r = SnpReport.parse(bytes(_report(version=version, mit=(7, 8))))
    assert r.version == version
    assert (r.launch_mit_vector, r.current_mit_vector) == ((7, 8) if version == 5 else (None, None))
    assert r.product == (None if version == 2 else MILAN)


@pytest.mark.parametrize("version", [0, 1, 6, 0x02000000])
def test_other_versions_are_rejected(version: int) -> None:
    with pytest.raises(FormatError, match="version"):
        SnpReport.parse(_set(_report(), 0, version, 4))


@pytest.mark.parametrize(("version", "offset", "ok"), [
    (2, 0x188, False), (3, 0x188, True), (3, 0x18A, True), (3, 0x18B, False), (5, 0x18B, False),
    (3, 0x19F, False), (2, 0x04C, False), (3, 0x1EB, False), (3, 0x1EF, False),
    (4, 0x188, True), (4, 0x18B, False), (4, 0x1F8, False), (4, 0x29F, False),
    (3, 0x1F8, False), (5, 0x1F8, True), (5, 0x207, True), (5, 0x208, False), (3, 0x29F, False),
    (3, 0x2A0 + 48, False), (3, 0x2E8 + 71, False), (3, 0x330, False), (3, 0x49F, False),
])
def test_reserved_bytes(version: int, offset: int, ok: bool) -> None:
    d = _report(version=version)
    d[offset] = 0x01
    if ok:
        SnpReport.parse(bytes(d))
    else:
        with pytest.raises(FormatError, match=f"offset {offset}"):
            SnpReport.parse(bytes(d))


@pytest.mark.parametrize(("field", "offset", "value", "size"), [
    ("policy", 0x08, 0x10000, 8),  # bit 17 clear
    ("policy", 0x08, 0x30000 | 1 << 26, 8),
    ("policy", 0x08, 0x30000 | 1 << 63, 8),
    ("vmpl", 0x30, 4, 4),
    ("vmpl", 0x30, 0xFFFF_FFFE, 4),
    ("signature_algo", 0x34, 2, 4),
    ("signature_algo", 0x34, 0, 4),
    ("signer_info", 0x48, 1 << 5, 4),
    ("signer_info.signing_key", 0x48, 3 << 2, 4),
])
def test_bad_fields(field: str, offset: int, value: int, size: int) -> None:
    with pytest.raises(FormatError, match=f"field {field}, offset {offset}"):
        SnpReport.parse(_set(_report(), offset, value, size))


def test_sizes_and_flags() -> None:
    good = bytes(_report(policy=0x30000 | 1 << 19 | 1 << 25, signer_info=0b00110, vmpl=0xFFFF_FFFF))
    r = SnpReport.parse(good)
    assert r.debug and r.chip_id_masked and not r.author_key_en and r.signing_key_name == "VLEK"
    assert not r.requested_by_guest
    for bad in (good[:-1], good + b"\0", b""):
        with pytest.raises(FormatError, match="1184"):
            SnpReport.parse(bad)
    unsigned = SnpReport.parse(bytes(_report(signer_info=7 << 2 | 1)))
    assert unsigned.signing_key_name == "none" and unsigned.author_key_en
    with pytest.raises(ValueError):
        r.tcb("future", MILAN)


# ---------------- random input: only FormatError ----------------

def _only_format_error(fn, data) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(data)
    except FormatError as e:
        assert str(e)


GOOD = build_report(KEY)


@SETTINGS
@given(st.binary(max_size=2 * REPORT_SIZE))
def test_random_bytes(data: bytes) -> None:
    _only_format_error(SnpReport.parse, data)
    _only_format_error(decode_report_text, data)


@SETTINGS
@given(st.integers(0, REPORT_SIZE))
def test_truncated(n: int) -> None:
    _only_format_error(SnpReport.parse, GOOD[:n])


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, REPORT_SIZE - 1), st.integers(0, 255)), min_size=1, max_size=12),
       st.sampled_from([2, 3, 5]))
def test_corrupted(changes: list[tuple[int, int]], version: int) -> None:
    d = bytearray(GOOD)
    d[0] = version
    for off, value in changes:
        d[off] = value
    _only_format_error(SnpReport.parse, bytes(d))


_VEK_OIDS = [f"{AMD_OID}.{s}" for s in ("1", "2", "3.1", "3.2", "3.3", "3.4", "3.8", "3.9", "4", "5")]


@SETTINGS
@given(st.dictionaries(st.sampled_from(_VEK_OIDS), st.binary(max_size=80), max_size=10))
def test_random_vek_extensions(values: dict[str, bytes]) -> None:
    _only_format_error(parse_vek_extensions, values)


def test_vek_extension_rejections() -> None:
    base = {f"{AMD_OID}.2": ia5("Milan-B0"), f"{AMD_OID}.3.1": der_int(1), f"{AMD_OID}.3.2": der_int(0),
            f"{AMD_OID}.3.3": der_int(8), f"{AMD_OID}.3.8": der_int(217), f"{AMD_OID}.4": b"\x04" * 64}
    ext = parse_vek_extensions(base)
    assert ext.hwid == b"\x04" * 64 and ext.tcb().ucode == 217  # raw hwID that merely starts with 04
    assert parse_vek_extensions({**base, f"{AMD_OID}.4": b"\x04\x08" + b"\x01" * 8}).hwid == b"\x01" * 8
    for oid, value, field in (
        (f"{AMD_OID}.3.8", der_int(256), "ucodeSPL"),
        (f"{AMD_OID}.3.8", b"\x02\x01\xff", "ucodeSPL"),  # -1
        (f"{AMD_OID}.3.1", b"\x04\x01\x01", "blSPL"),
        (f"{AMD_OID}.2", ia5("Rome"), "product"),
        (f"{AMD_OID}.2", b"\x16\x02\x00\x01", "productName"),
        (f"{AMD_OID}.4", b"\x01" * 63, "hwID"),
        (f"{AMD_OID}.5", der_int(1), "cspID"),
    ):
        with pytest.raises(FormatError, match=field):
            parse_vek_extensions({**base, oid: value})
    missing = dict(base)
    del missing[f"{AMD_OID}.3.3"]
    with pytest.raises(FormatError, match="snpSPL"):
        parse_vek_extensions(missing).tcb()
    with pytest.raises(FormatError, match="fmcSPL"):
        parse_vek_extensions(base).tcb(TURIN)
    with pytest.raises(FormatError, match="productName"):
        parse_vek_extensions({})
    with pytest.raises(FormatError):
        load_vek_certificate(b"not a certificate")
    with pytest.raises(FormatError):
        load_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
