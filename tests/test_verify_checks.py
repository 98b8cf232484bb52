"""Each verifier check, made to fail with otherwise valid, correctly signed inputs.

The simulated platform's keys let us sign collateral and certificates that are genuine in every
respect but one, so each test proves that one check (and not an earlier signature) rejects it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from _checks import fails
from eaa import errors
from eaa.checks import Check
from eaa.policy import Policy
from eaa.sim import pki
from eaa.sim import quote as simquote
from eaa.sim.platform import FMSPC, SimPlatform, init_platform
from eaa.verify.dcap import QuoteVerifier

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
AT = NOW + timedelta(days=1)


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    return init_platform(tmp_path_factory.mktemp("sim"), now=NOW, seed=b"\x01" * 32)


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    return init_platform(tmp_path_factory.mktemp("sim2"), now=NOW, seed=b"\x02" * 32)


def verifier(p: SimPlatform, **kw: object) -> QuoteVerifier:
    return QuoteVerifier([p.anchor()], **kw)  # type: ignore[arg-type]


def resign(p: SimPlatform, body: str) -> bytes:
    return pki.sign_raw(p._key("tcb_signing"), body.encode())


def edit_json(body: str, **changes: object) -> str:
    obj = json.loads(body)
    obj.update(changes)
    return json.dumps(obj, separators=(",", ":"))


def pem(c: x509.Certificate) -> bytes:
    return c.public_bytes(serialization.Encoding.PEM)


def quote_with_leaf(p: SimPlatform, leaf: x509.Certificate, tee: str = "sgx", *,
                    above: tuple[x509.Certificate, ...] = ()) -> bytes:
    """A quote whose PCK chain is ``leaf``, then ``above``, then the platform's PCK CA and root."""
    chain = b"".join(pem(c) for c in (leaf, *above, p.pck_ca_certificate)) + p.root_pem
    qe = replace(p._quoting_enclave(tee), pck_chain_pem=chain)
    body = simquote.sgx_report_body(cpu_svn=p.params.cpu_svn, misc_select=0, attributes=simquote.sgx_attributes(False),
                                    mr_enclave=b"\x01" * 32, mr_signer=p.mrsigner, isv_prod_id=0, isv_svn=0,
                                    report_data=bytes(64))
    return simquote.sgx_quote(qe, qe_id=p.params.qe_id, pce_svn=p.params.pce_svn, body=body)


def leaf(p: SimPlatform, *, cn: str = pki.PCK_CN, fmspc: bytes = FMSPC, pce_id: bytes = b"\x00\x00",
         with_ext: bool = True, issuer: x509.Certificate | None = None) -> x509.Certificate:
    """A PCK leaf with the platform's PCK key, issued by the PCK CA (or by ``issuer``, signing with the PCK key)."""
    ext = pki.sgx_extension(pki.sgx_extension_der(
        ppid=b"\x00" * 16, tcb_components=p.params.tcb_components, pce_svn=p.params.pce_svn, cpu_svn=p.params.cpu_svn,
        pce_id=pce_id, fmspc=fmspc, sgx_type=0))
    return pki.make_leaf(pki.name(cn, p.params.platform_id), p._key("pck"), issuer or p.pck_ca_certificate,
                         p._key("pck" if issuer else "pck_ca"), 4242, NOW, [ext] if with_ext else [])


def test_baseline_verifies(plat: SimPlatform) -> None:
    r = verifier(plat).verify(plat.make_sgx_quote(b"x"), plat.collateral("sgx"), at=AT)
    assert r.status == "UpToDate" and r.simulated
    assert quote_with_leaf(plat, leaf(plat))  # the helper itself builds a verifiable quote
    verifier(plat).verify(quote_with_leaf(plat, leaf(plat)), plat.collateral("sgx"), at=AT)


def test_pck_leaf_must_be_a_pck_certificate(plat: SimPlatform) -> None:
    with fails(Check.PCK_LEAF_SUBJECT, errors.CertificateChainError):
        verifier(plat).verify(quote_with_leaf(plat, leaf(plat, cn="Some Leaf")), plat.collateral("sgx"), at=AT)


def test_pck_leaf_needs_sgx_extension(plat: SimPlatform) -> None:
    with fails(Check.PCK_LEAF_SUBJECT, errors.CertificateChainError):
        verifier(plat).verify(quote_with_leaf(plat, leaf(plat, with_ext=False)), plat.collateral("sgx"), at=AT)


def test_pck_chain_issuer_must_be_a_ca(plat: SimPlatform) -> None:
    """A certificate issued by the PCK leaf (not a CA) is refused even though every signature verifies."""
    pck = leaf(plat)
    quote = quote_with_leaf(plat, leaf(plat, issuer=pck), above=(pck,))
    with fails(Check.PCK_CHAIN, errors.CertificateChainError):
        verifier(plat).verify(quote, plat.collateral("sgx"), at=AT)


def test_fmspc_mismatch(plat: SimPlatform) -> None:
    with fails(Check.FMSPC, errors.IdentityMismatch):
        verifier(plat).verify(quote_with_leaf(plat, leaf(plat, fmspc=b"\x11" * 6)), plat.collateral("sgx"), at=AT)


def test_pce_id_mismatch(plat: SimPlatform) -> None:
    with fails(Check.PCE_ID, errors.IdentityMismatch):
        verifier(plat).verify(quote_with_leaf(plat, leaf(plat, pce_id=b"\x01\x00")), plat.collateral("sgx"), at=AT)


def test_tcb_info_for_other_tee(plat: SimPlatform) -> None:
    tdx = plat.collateral("tdx")
    coll = replace(plat.collateral("sgx"), tcb_info=tdx.tcb_info, tcb_info_signature=tdx.tcb_info_signature)
    with fails(Check.TCB_INFO_TEE, errors.CollateralInvalid):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), coll, at=AT)


def test_qe_identity_for_other_tee(plat: SimPlatform) -> None:
    tdx = plat.collateral("tdx")
    coll = replace(plat.collateral("sgx"), qe_identity=tdx.qe_identity, qe_identity_signature=tdx.qe_identity_signature)
    with fails(Check.QE_IDENTITY_ID, errors.CollateralInvalid):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), coll, at=AT)


@pytest.mark.parametrize("field,value,check", [
    ("mrsigner", "ab" * 32, Check.QE_MRSIGNER),
    ("isvprodid", 99, Check.QE_ISVPRODID),
    ("miscselect", "01000000", Check.QE_MISCSELECT),
    ("attributes", "ff" * 16, Check.QE_ATTRIBUTES),
])
def test_qe_identity_mismatch(plat: SimPlatform, field: str, value: object, check: Check) -> None:
    c = plat.collateral("sgx")
    body = edit_json(c.qe_identity, **{field: value})
    coll = replace(c, qe_identity=body, qe_identity_signature=resign(plat, body))
    with fails(check, errors.IdentityMismatch):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), coll, at=AT)


def test_qe_below_every_level(plat: SimPlatform) -> None:
    c = plat.collateral("sgx")
    body = edit_json(c.qe_identity, tcbLevels=[{"tcb": {"isvsvn": 60000}, "tcbDate": "2024-01-01T00:00:00Z",
                                                "tcbStatus": "UpToDate"}])
    coll = replace(c, qe_identity=body, qe_identity_signature=resign(plat, body))
    with fails(Check.QE_TCB_LEVEL, errors.TcbNotSupported):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), coll, at=AT)


def test_unknown_status_string_in_signed_tcb_info(plat: SimPlatform) -> None:
    c = plat.collateral("sgx")
    obj = json.loads(c.tcb_info)
    obj["tcbLevels"][0]["tcbStatus"] = "Excellent"
    body = json.dumps(obj, separators=(",", ":"))
    with fails(Check.COLLATERAL_STATUS, errors.CollateralInvalid):
        verifier(plat).verify(plat.make_sgx_quote(b"x"),
                              replace(c, tcb_info=body, tcb_info_signature=resign(plat, body)), at=AT)


def test_collateral_from_another_root(plat: SimPlatform, other: SimPlatform) -> None:
    q = plat.make_sgx_quote(b"x")
    both = QuoteVerifier([plat.anchor(), other.anchor()])
    with fails(Check.SAME_ROOT, errors.CertificateChainError):
        both.verify(q, other.collateral("sgx"), at=AT)
    with fails(Check.PCK_CHAIN, errors.UntrustedRoot):
        verifier(other).verify(q, other.collateral("sgx"), at=AT)


def test_pck_crl_from_another_issuer(plat: SimPlatform) -> None:
    c = plat.collateral("sgx")
    # A CRL correctly signed by the root, presented as the PCK CRL with the root as its issuer chain.
    coll = replace(c, pck_crl=c.root_ca_crl, pck_crl_issuer_chain=plat.root_pem.decode())
    with fails(Check.PCK_CRL_CHAIN_SHAPE, errors.CertificateChainError):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), coll, at=AT)


def test_crl_signed_by_wrong_key(plat: SimPlatform) -> None:
    c = plat.collateral("sgx")
    forged = pki.make_crl(plat.pck_ca_certificate, plat._key("tcb_signing"), [], 9, NOW)
    coll = replace(c, pck_crl=forged.public_bytes(serialization.Encoding.DER))
    with fails(Check.PCK_CRL_SIGNATURE, errors.InvalidSignature):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), coll, at=AT)


ECDSA_SHA256_ALG = bytes.fromhex("300a06082a8648ce3d040302")  # AlgorithmIdentifier ecdsa-with-SHA256


def _outer_algorithm_changed(der: bytes) -> bytes:
    """The same signed bytes with the unsigned signatureAlgorithm (the last one) switched to ECDSA-SHA384."""
    at = der.rindex(ECDSA_SHA256_ALG)
    assert der.count(ECDSA_SHA256_ALG) == 2 and at + len(ECDSA_SHA256_ALG) + 2 < len(der) < at + 200
    return der[:at] + ECDSA_SHA256_ALG[:-1] + b"\x03" + der[at + len(ECDSA_SHA256_ALG):]


def test_certificate_signature_algorithm_must_repeat_the_signed_one(plat: SimPlatform) -> None:
    changed = x509.load_der_x509_certificate(_outer_algorithm_changed(leaf(plat).public_bytes(
        serialization.Encoding.DER)))
    with fails(Check.PCK_CHAIN, errors.CertificateChainError):
        verifier(plat).verify(quote_with_leaf(plat, changed), plat.collateral("sgx"), at=AT)


def test_crl_signature_algorithm_must_repeat_the_signed_one(plat: SimPlatform) -> None:
    c = plat.collateral("sgx")
    assert c.pck_crl is not None
    with pytest.raises(errors.FormatError, match="Inner and outer signature algorithms do not match"):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), replace(c, pck_crl=_outer_algorithm_changed(c.pck_crl)),
                              at=AT)


def test_revoked_intermediate(plat: SimPlatform) -> None:
    c = plat.collateral("sgx")
    crl = pki.make_crl(plat.root_certificate, plat._key("root_ca"), [plat.pck_ca_certificate.serial_number], 9, NOW)
    coll = replace(c, root_ca_crl=crl.public_bytes(serialization.Encoding.DER))
    with fails(Check.CA_REVOKED, errors.CertificateChainError):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), coll, at=AT)


def test_revoked_pck_gives_revoked_status(plat: SimPlatform) -> None:
    c = plat.collateral("sgx")
    crl = pki.make_crl(plat.pck_ca_certificate, plat._key("pck_ca"), [plat.pck_certificate.serial_number], 9, NOW)
    r = verifier(plat).verify(plat.make_sgx_quote(b"x"), replace(c, pck_crl=crl.public_bytes(
        serialization.Encoding.DER)), at=AT)
    assert r.status == "Revoked"


def test_missing_crls_need_no_crl_mode(plat: SimPlatform) -> None:
    c = plat.collateral("sgx").without_crls()
    with fails(Check.CRL_MISSING, errors.CollateralMissing):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), c, at=AT)
    assert verifier(plat, check_crl=False).verify(plat.make_sgx_quote(b"x"), c, at=AT).status == "UpToDate"


def test_quote_signed_by_other_attestation_key(plat: SimPlatform, other: SimPlatform) -> None:
    q = bytearray(plat.make_sgx_quote(b"x"))
    q2 = other.make_sgx_quote(b"x")
    q[436:500] = q2[436:500]  # the other platform's quote signature over (nearly) the same bytes
    with fails(Check.QUOTE_SIGNATURE, errors.InvalidSignature):
        verifier(plat).verify(bytes(q), plat.collateral("sgx"), at=AT)


def test_not_yet_valid_certificate(plat: SimPlatform) -> None:
    r = verifier(plat).verify(plat.make_sgx_quote(b"x"), plat.collateral("sgx"), at=NOW - timedelta(days=2))
    assert any("not valid before" in s for s in r.details["not_yet_valid"])
    with pytest.raises(errors.PolicyViolation, match="not yet valid"):
        Policy().appraise(r)
    with fails(Check.COLLATERAL_NOT_YET_VALID, errors.CollateralExpired):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), plat.collateral("sgx"), at=NOW - timedelta(days=2),
                              strict=True)


def test_tdx_quote_with_sgx_collateral(plat: SimPlatform) -> None:
    with pytest.raises(errors.EaaError):
        verifier(plat).verify(plat.make_tdx_quote(b"x"), plat.collateral("sgx"), at=AT)
    r = verifier(plat).verify(plat.make_tdx_quote(b"x"), plat.collateral("tdx"), at=AT)
    assert r.tee == "tdx" and r.status == "UpToDate"


def test_tdx_module_signer_mismatch(plat: SimPlatform) -> None:
    c = plat.collateral("tdx")
    obj = json.loads(c.tcb_info)
    for ident in obj.get("tdxModuleIdentities", []):
        ident["mrsigner"] = "ab" * 48
    obj["tdxModule"]["mrsigner"] = "ab" * 48
    body = json.dumps(obj, separators=(",", ":"))
    with fails(Check.TDX_MODULE, errors.IdentityMismatch):
        verifier(plat).verify(plat.make_tdx_quote(b"x"),
                              replace(c, tcb_info=body, tcb_info_signature=resign(plat, body)), at=AT)


def test_sgx_ecdsa_verifier_checks_tdx_quotes_too(plat: SimPlatform) -> None:
    """rats-tls PR #162: a named sgx_ecdsa verifier accepts a TDX peer; tdx_ecdsa refuses SGX quotes."""
    from eaa.verify.registry import verifiers

    q = plat.make_tdx_quote(b"x")
    v = verifiers.select("sgx_ecdsa", trust_anchors=[plat.anchor()],
                         collateral_source=lambda tee, _q: plat.collateral(tee))
    assert v.verify_evidence(q, evidence_type="tdx_ecdsa", report_data_hash=None, collateral=None, at=AT).tee == "tdx"
    t = verifiers.select("tdx_ecdsa", trust_anchors=[plat.anchor()])
    with pytest.raises(errors.IdentityMismatch):
        t.verify_evidence(plat.make_sgx_quote(b"x"), evidence_type="sgx_ecdsa", report_data_hash=None,
                          collateral=plat.collateral("sgx"), at=AT)


def test_simulated_quote_without_collateral_needs_trust(plat: SimPlatform, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path) -> None:
    from eaa.verify.registry import verifiers

    monkeypatch.delenv("EAA_PCCS_URL", raising=False)
    (tmp_path / "qcnl.conf").write_text("{}")
    monkeypatch.setenv("EAA_QCNL_CONF", str(tmp_path / "qcnl.conf"))
    v = verifiers.select("sgx_ecdsa", trust_anchors=[plat.anchor()])
    with pytest.raises(errors.UntrustedRoot, match="SIMULATION"):
        v.verify_evidence(plat.make_sgx_quote(b"x"), evidence_type="sgx_ecdsa", report_data_hash=None,
                          collateral=None, at=AT)


def test_warm_verifier_rechecks_time_and_signature_every_call(plat: SimPlatform) -> None:
    """A reused verifier caches only what depends on bytes; times are checked on every call."""
    v = verifier(plat)
    q, c = plat.make_sgx_quote(b"x"), plat.collateral("sgx")
    assert not v.verify(q, c, at=AT).collateral_expired
    late = plat.collateral_expires + timedelta(days=1)
    assert v.verify(q, c, at=late).collateral_expired
    with fails(Check.COLLATERAL_EXPIRED, errors.CollateralExpired):
        v.verify(q, c, at=late, strict=True)
    with fails(Check.COLLATERAL_NOT_YET_VALID, errors.CollateralExpired):
        v.verify(q, c, at=NOW - timedelta(days=2), strict=True)
    assert v.verify(q, c, at=AT).status == "UpToDate"


def test_warm_verifier_reports_a_cached_tcb_failure_each_time(plat: SimPlatform) -> None:
    v = verifier(plat)
    q = quote_with_leaf(plat, leaf(plat, fmspc=b"\x11" * 6))
    for _ in range(3):
        with fails(Check.FMSPC, errors.IdentityMismatch):
            v.verify(q, plat.collateral("sgx"), at=AT)


def test_bad_quote_signature_is_reported_before_a_tcb_failure(plat: SimPlatform) -> None:
    """Step order holds with caching: a quote whose signature and FMSPC are both wrong fails the signature."""
    q = bytearray(quote_with_leaf(plat, leaf(plat, fmspc=b"\x11" * 6)))
    q[440] ^= 1  # inside the quote signature
    for _ in range(2):
        with fails(Check.QUOTE_SIGNATURE, errors.InvalidSignature):
            verifier(plat).verify(bytes(q), plat.collateral("sgx"), at=AT)
