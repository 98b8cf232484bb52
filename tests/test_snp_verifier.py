"""The registered ``sev_snp`` verifier: options, report-data binding and every collateral source
(explicit certificates, the host's cert table, files, callables, AMD KDS through a fake transport)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from eaa.collateral.kds import KdsClient
from eaa.errors import (
    CertificateChainError,
    CollateralExpired,
    CollateralMissing,
    ConfigError,
    FormatError,
    IdentityMismatch,
    InvalidSignature,
    UntrustedRoot,
)
from eaa.formats.snp_certs import ARK_GUID, ASK_GUID, VCEK_GUID, VLEK_GUID, parse_cert_table
from eaa.formats.snp_report import TcbVersion
from eaa.pki.trust import intel_root
from eaa.verify.registry import verifiers
from eaa.verify.snp_collateral import SnpCollateral
from eaa.verify.snp_verifier import SevSnpVerifier
from eaa.verify.verifier import ReportDataMismatch
from test_snp_support import NOW, VekSpec, build_report, der, make_pki, pem, read_report, vector_path

AT = NOW


def _select(**kw):  # type: ignore[no-untyped-def]
    """No network, and (unless a test is about it) no revocation: tests/test_snp_revocation.py covers CRLs."""
    kw.setdefault("kds", False)
    kw.setdefault("check_crl", False)
    return verifiers.select("sev_snp", **kw)


def _verify(v, report: bytes, collateral=None, rd_hash: bytes | None = None):  # type: ignore[no-untyped-def]
    return v.verify_evidence(report, evidence_type="sev_snp", report_data_hash=rd_hash, collateral=collateral, at=AT)


def cert_table(entries: list[tuple[uuid.UUID, bytes]]) -> bytes:
    """The GHCB certificate table layout: {GUID, u32 offset, u32 length}..., an all-zero entry, then the data."""
    head = 24 * (len(entries) + 1)
    out, data = b"", b""
    for guid, blob in entries:
        out += guid.bytes + (head + len(data)).to_bytes(4, "little") + len(blob).to_bytes(4, "little")
        data += blob
    return out + bytes(24) + data


@pytest.fixture(scope="module")
def pki():  # type: ignore[no-untyped-def]
    return make_pki("Milan")


@pytest.fixture(scope="module")
def signed(pki):  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP384R1())
    cert, _ = pki.vek(VekSpec(key=key))
    return cert, key, build_report(key, report_data=b"\xab" * 32 + bytes(32))


def test_registered_with_its_priority_and_refuses_other_options(pki, signed) -> None:  # type: ignore[no-untyped-def]
    entry = next(e for e in verifiers.ordered() if e.name == "sev_snp")
    assert entry.priority == 42
    cert, _, report = signed
    with pytest.raises(ConfigError, match="unknown verifier option something_else"):
        _select(amd_anchors=[pki.ark], something_else=1)
    with pytest.raises(ConfigError, match="verifier sev_snp does not take cache_size"):
        _select(amd_anchors=[pki.ark], cache_size=0)
    v = _select(amd_anchors=[pki.ark], collateral_source=SnpCollateral.of(vek=der(cert), chain=pki.chain),
                strict=False)
    assert isinstance(v, SevSnpVerifier) and v.evidence_types == ("sev_snp",)
    res = _verify(v, report, rd_hash=b"\xab" * 32)
    assert res.status == "UpToDate" and res.details["collateral_source"] == "explicit"
    assert res.details["revocation"].startswith("not checked: disabled")
    with pytest.raises(ReportDataMismatch):
        _verify(v, report, rd_hash=b"\xac" * 32)
    with pytest.raises(FormatError):
        _verify(v, b"x")
    with pytest.raises(ConfigError):
        v.verify_evidence(report, evidence_type="sev_snp", report_data_hash=None, collateral=None, at=None)
    with pytest.raises(ConfigError):
        _select(kds=3.5)


def test_per_call_collateral_and_anchor_options(pki, signed) -> None:  # type: ignore[no-untyped-def]
    cert, _, report = signed
    c = SnpCollateral.of(vek=pem(cert), chain=pki.chain)
    assert _verify(_select(amd_anchors=[pki.ark]), report, c).status == "UpToDate"
    # ARK-named certificates among trust_anchors are AMD anchors; the Intel root is ignored
    assert _verify(_select(trust_anchors=[intel_root(), pki.ark]), report, c).status == "UpToDate"
    with pytest.raises(UntrustedRoot, match="pinned"):
        _verify(_select(trust_anchors=[intel_root()]), report, c)
    # a strict verifier fails on expired certificates
    expired, _ = pki.vek(VekSpec(key=signed[1], not_after=AT))
    late = SnpCollateral.of(vek=expired, chain=pki.chain)
    assert _verify(_select(amd_anchors=[pki.ark]), report, late).collateral_expired
    with pytest.raises(CollateralExpired, match="expired"):
        _verify(_select(amd_anchors=[pki.ark], strict=True), report, late)


def test_real_vector_through_the_registry() -> None:
    report = read_report("snp-trustee", "test-vlek-report.bin")
    c = SnpCollateral.of(vek=vector_path("snp-trustee", "test-vlek.der").read_bytes(),
                         chain=vector_path("snp-go-sev-guest", "ask_ark_milan_vlek.pem").read_bytes())
    res = _verify(_select(trust_anchors=[intel_root()]), report, c, rd_hash=bytes.fromhex("819770b7e6ea6df8"))
    assert res.details["signer"] == "VLEK" and res.details["root"] == "AMD ARK-Milan (pinned)"
    v2 = read_report("snp-go-sev-guest", "attestation.bin")
    c2 = SnpCollateral.of(vek=vector_path("snp-go-sev-guest", "vcek.testcer").read_bytes(),
                          chain=vector_path("snp-go-sev-guest", "ask_ark_milan.pem").read_bytes())
    with pytest.raises(IdentityMismatch):
        _verify(_select(product="Genoa"), v2, c2)
    assert _verify(_select(product="Milan"), v2, c2).details["product_source"] == "given"


def test_cert_table_source(pki, signed) -> None:  # type: ignore[no-untyped-def]
    cert, key, report = signed
    table = parse_cert_table(cert_table([(VCEK_GUID, der(cert)), (ASK_GUID, der(pki.ask)), (ARK_GUID, der(pki.ark))]))
    res = _verify(_select(amd_anchors=[pki.ark], collateral_source=table), report)
    assert res.details["collateral_source"] == "cert table"
    # a VLEK table: the VLEK is picked for a VLEK-signed report
    vlek, _ = pki.vek(VekSpec(key=key, kind="VLEK", hwid=None, product_name="Milan"))
    vlek_report = build_report(key, signer_info=1 << 2)
    table2 = parse_cert_table(cert_table([(VLEK_GUID, der(vlek)), (ASK_GUID, der(pki.asvk)),
                                          (ARK_GUID, der(pki.ark))]))
    assert _verify(_select(amd_anchors=[pki.ark], collateral_source=table2), vlek_report).details["signer"] == "VLEK"
    # an empty table and no KDS: nothing to verify with
    with pytest.raises(CollateralMissing, match="no KDS"):
        _verify(_select(amd_anchors=[pki.ark], collateral_source=parse_cert_table(b"")), report)


def test_file_and_directory_sources(pki, signed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cert, key, report = signed
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem(cert, pki.ask, pki.ark))
    assert _verify(_select(amd_anchors=[pki.ark], collateral_source=bundle), report).status == "UpToDate"
    d = tmp_path / "certs"
    d.mkdir()
    other_chip, _ = pki.vek(VekSpec(key=key, hwid=b"\x07" * 64))
    other_tcb, _ = pki.vek(VekSpec(key=key, tcb=TcbVersion("Milan", 1, 0, 1, 1)))
    (d / "a-other-chip.der").write_bytes(der(other_chip))
    (d / "b-other-tcb.der").write_bytes(der(other_tcb))
    (d / "c-vcek.der").write_bytes(der(cert))
    (d / "chain.pem").write_bytes(pki.chain)
    (d / "collateral.json").write_text('{"tcbInfo": {}}')  # DCAP collateral in the same place is skipped
    res = _verify(_select(amd_anchors=[pki.ark], collateral_source=str(d)), report)
    assert res.details["collateral_source"] == f"file {d}"
    (d / "c-vcek.der").unlink()
    with pytest.raises(CollateralMissing):  # neither remaining VCEK is for this chip and TCB
        _verify(_select(amd_anchors=[pki.ark], collateral_source=d), report)


def test_callable_source(pki, signed) -> None:  # type: ignore[no-untyped-def]
    cert, _, report = signed
    seen = []

    def source(tee: str, evidence: bytes):  # type: ignore[no-untyped-def]
        seen.append((tee, evidence))
        return SnpCollateral.of(vek=cert, chain=pki.chain)

    assert _verify(_select(amd_anchors=[pki.ark], collateral_source=source), report).status == "UpToDate"
    assert seen == [("sev-snp", report)]
    with pytest.raises(CollateralMissing):  # a source for other TEEs answers with something else: ignored
        _verify(_select(amd_anchors=[pki.ark], collateral_source=lambda tee, q: object()), report)

    def quote_source(tee: str, evidence: bytes):  # type: ignore[no-untyped-def]
        raise FormatError("not a quote")

    with pytest.raises(CollateralMissing):  # ... or cannot read an SNP report at all: ignored too
        _verify(_select(amd_anchors=[pki.ark], collateral_source=quote_source), report)


# ---------------- AMD KDS (a fake one, through httpx's mock transport) ----------------

def _kds(routes: dict[str, bytes], hits: list[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        key = request.url.path + ("?" + request.url.query.decode() if request.url.query else "")
        hits.append(key)
        if key in routes:
            return httpx.Response(200, content=routes[key])
        return httpx.Response(404, content=b"not found")

    return httpx.MockTransport(handler)


def _virtee_kds(hits: list[str]) -> KdsClient:
    vcek = vector_path("snp-virtee-sev", "vcek_milan.der").read_bytes()
    chain = vector_path("snp-virtee-sev", "cert_chain_milan").read_bytes()
    hwid = ("d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc"
            "15d7af38db757039029f0efacfd08e244324884738c72b082e2f87a44d541eb6")
    routes = {f"/vcek/v1/Milan/{hwid}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115": vcek,
              "/vcek/v1/Milan/cert_chain": chain}
    return KdsClient("https://kds.test", retries=0, transport=_kds(routes, hits))


def test_kds_fetches_the_vcek_and_chain() -> None:
    report = read_report("snp-virtee-sev", "report_milan.hex")  # v2: go-sev-guest's default product, Milan
    hits: list[str] = []
    kds = _virtee_kds(hits)
    res = _verify(_select(kds=kds), report)
    assert res.status == "UpToDate"
    assert "AMD KDS https://kds.test (VCEK, cert_chain)" in res.details["collateral_source"]
    assert res.details["product"] == "Milan"
    assert len(hits) == 2
    with pytest.raises(CollateralMissing):  # named Genoa: the KDS has no Genoa VCEK for it
        _verify(_select(kds=kds, product="Genoa"), report)
    res = _verify(_select(kds=kds, product="Milan"), report)
    assert res.details["product_source"] == "given"
    hits.clear()
    _verify(_select(collateral_source=kds, product="Milan", kds=None), report)  # a client as the source; cached
    assert hits == []


def test_kds_completes_a_partial_cert_table() -> None:
    report = read_report("snp-virtee-sev", "report_milan.hex")
    hits: list[str] = []
    vcek = vector_path("snp-virtee-sev", "vcek_milan.der").read_bytes()
    table = parse_cert_table(cert_table([(VCEK_GUID, vcek)]))
    res = _verify(_select(kds=_virtee_kds(hits), collateral_source=table), report)  # product from the VCEK
    assert res.details["collateral_source"] == "cert table + AMD KDS https://kds.test (cert_chain)"
    assert hits == ["/vcek/v1/Milan/cert_chain"]


def test_kds_cannot_supply_a_vlek_or_a_missing_vcek() -> None:
    hits: list[str] = []
    with pytest.raises(CollateralMissing, match="VLEK"):
        _verify(_select(kds=_virtee_kds(hits)), read_report("snp-trustee", "test-vlek-report.bin"))
    with pytest.raises(CollateralMissing):  # the fake KDS has no VCEK for this chip: 404
        _verify(_select(kds=_virtee_kds(hits), product="Milan"), read_report("snp-trustee", "test-report.bin"))
    with pytest.raises(CollateralMissing, match="no KDS"):
        _verify(_select(kds=False, product="Milan"), read_report("snp-trustee", "test-report.bin"))


def test_kds_supplies_a_missing_ark() -> None:
    """A cert table with the VCEK and ASK but no ARK: the pinned ARK comes from the KDS chain."""
    report = read_report("snp-virtee-sev", "report_milan.hex")
    hits: list[str] = []
    vcek = vector_path("snp-virtee-sev", "vcek_milan.der").read_bytes()
    ask = vector_path("snp-virtee-sev", "milan_ask.pem").read_bytes()
    table = SnpCollateral.of(vek=vcek, chain=ask, source="partial")
    res = _verify(_select(kds=_virtee_kds(hits), collateral_source=table), report)
    assert res.details["collateral_source"] == "partial + AMD KDS https://kds.test (cert_chain)"
    with pytest.raises(CertificateChainError, match="no ARK"):  # without a KDS the ARK is missing
        _verify(_select(collateral_source=table), report)


def test_reports_that_cannot_be_verified_fail_before_any_fetch(pki) -> None:  # type: ignore[no-untyped-def]
    key = ec.generate_private_key(ec.SECP384R1())
    hits: list[str] = []
    v = _select(kds=_virtee_kds(hits), amd_anchors=[pki.ark])
    with pytest.raises(InvalidSignature, match="not signed"):
        _verify(v, build_report(key, signer_info=7 << 2))
    with pytest.raises(IdentityMismatch, match="VMPL"):
        _verify(v, build_report(key, vmpl=0xFFFF_FFFF))
    assert hits == []
    with pytest.raises(ConfigError, match="Rome"):
        _select(product="Rome")
