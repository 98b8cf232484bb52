"""Only the right certificate may sign each piece of collateral (eaa.pki.roles).

The attack: a platform whose TCB is out of date (its PCK key extracted), TCB info edited so that every
level says UpToDate and signed with a key the attacker holds, that key's chain passed as the TCB info
issuer chain. Every signature verifies up to the trusted root; only roles, shapes and names stop it.
Each forgery is refused with its check identifier through the Python API, ``eaa verify-quote`` and
``eaa-pccs import``; the genuine collateral still verifies.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from _checks import fails
from eaa import errors
from eaa.checks import Check
from eaa.cli.eaa import main as eaa_main
from eaa.cli.pccs_server import main as pccs_main
from eaa.collateral.bundle import Collateral
from eaa.collateral.validate import (
    validate_enclave_identity,
    validate_pck_certificate,
    validate_pck_crl,
    validate_root_ca_crl,
    validate_tcb_info,
)
from eaa.pki.names import pki_names
from eaa.pki.roles import TCB_INFO, check_role_chain
from eaa.pki.trust import TrustAnchor, intel_root
from eaa.services.pccs.records import signed_response
from eaa.sim import pki
from eaa.sim.platform import SimPlatform, init_platform
from eaa.verify.dcap import QuoteVerifier

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
AT = NOW + timedelta(days=1)


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    """An out-of-date platform: the kind whose keys an attacker can extract."""
    return init_platform(tmp_path_factory.mktemp("sim"), now=NOW, seed=b"\x07" * 32, tcb="outofdate")


def pem(*certs: x509.Certificate) -> str:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs).decode()


def named(p: SimPlatform, cn: str) -> x509.Name:
    return pki.name(cn, p.params.platform_id)


def all_up_to_date(body: str) -> str:
    obj = json.loads(body)
    for level in obj["tcbLevels"]:
        level["tcbStatus"] = "UpToDate"
    return json.dumps(obj, separators=(",", ":"))


def forged(p: SimPlatform, key: ec.EllipticCurvePrivateKey, chain: str, what: str) -> Collateral:
    """The platform's SGX collateral with ``what`` ("tcb" or "qe") re-signed by ``key`` under ``chain``."""
    c = p.collateral("sgx")
    if what == "tcb":
        body = all_up_to_date(c.tcb_info)
        return replace(c, tcb_info=body, tcb_info_signature=pki.sign_raw(key, body.encode()),
                       tcb_info_issuer_chain=chain)
    body = all_up_to_date(c.qe_identity)
    return replace(c, qe_identity=body, qe_identity_signature=pki.sign_raw(key, body.encode()),
                   qe_identity_issuer_chain=chain)


def fake_tcb_signing(p: SimPlatform) -> x509.Certificate:
    """A certificate named as the TCB Signing certificate, issued by the PCK CA (whose key the attacker has)."""
    return pki.make_leaf(named(p, pki.TCB_SIGNING_CN), p._key("pck"), p.pck_ca_certificate, p._key("pck_ca"), 77, NOW)


def forgeries(p: SimPlatform) -> list[tuple[str, ec.EllipticCurvePrivateKey, str]]:
    """(name, signing key, issuer chain) of each forgery an attacker with a platform's keys can make."""
    fake = fake_tcb_signing(p)
    return [
        ("pck-leaf", p._key("pck"), p.pck_chain_pem.decode()),
        ("pck-ca", p._key("pck_ca"), pem(p.pck_ca_certificate, p.root_certificate)),
        ("tcb-named-under-pck-ca", p._key("pck"), pem(fake, p.pck_ca_certificate, p.root_certificate)),
        ("tcb-named-under-pck-ca-short", p._key("pck"), pem(fake, p.root_certificate)),
    ]


EXPECTED = {  # forgery -> the check that refuses it (for TCB info; QE identity has its own)
    "pck-leaf": "CHAIN_SHAPE",
    "pck-ca": "SIGNER",
    "tcb-named-under-pck-ca": "CHAIN_SHAPE",
    "tcb-named-under-pck-ca-short": "CHAIN",  # the fake does not verify under the root
}
FORGERIES = [(name, what) for name in EXPECTED for what in ("tcb", "qe")]


def expected_check(name: str, what: str) -> Check:
    return Check(("TCB_INFO_" if what == "tcb" else "QE_IDENTITY_") + EXPECTED[name])


def verifier(p: SimPlatform) -> QuoteVerifier:
    return QuoteVerifier([p.anchor()], cache_size=0)


def test_genuine_collateral_verifies_out_of_date(plat: SimPlatform) -> None:
    r = verifier(plat).verify(plat.make_sgx_quote(b"x"), plat.collateral("sgx"), at=AT)
    assert r.status == "OutOfDate"


@pytest.mark.parametrize("name, what", FORGERIES)
def test_forged_collateral_refused_by_the_verifier(plat: SimPlatform, name: str, what: str) -> None:
    key, chain = next((k, c) for n, k, c in forgeries(plat) if n == name)
    with fails(expected_check(name, what), errors.VerificationError):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), forged(plat, key, chain, what), at=AT)


@pytest.mark.parametrize("name, what", FORGERIES)
def test_forged_collateral_refused_by_the_collateral_validator(plat: SimPlatform, name: str, what: str) -> None:
    key, chain = next((k, c) for n, k, c in forgeries(plat) if n == name)
    c = forged(plat, key, chain, what)
    with fails(expected_check(name, what), errors.CollateralInvalid):
        if what == "tcb":
            validate_tcb_info(signed_response("tcbInfo", c.tcb_info, c.tcb_info_signature), chain, [plat.anchor()])
        else:
            validate_enclave_identity(signed_response("enclaveIdentity", c.qe_identity, c.qe_identity_signature),
                                      chain, [plat.anchor()])


@pytest.mark.parametrize("name, what", FORGERIES)
def test_forged_collateral_refused_by_eaa_verify_quote(plat: SimPlatform, name: str, what: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    key, chain = next((k, c) for n, k, c in forgeries(plat) if n == name)
    (tmp_path / "quote.bin").write_bytes(plat.make_sgx_quote(b"x"))
    (tmp_path / "root.pem").write_bytes(plat.root_pem)
    (tmp_path / "coll.json").write_text(forged(plat, key, chain, what).to_qvl_json())
    capsys.readouterr()
    rc = eaa_main(["verify-quote", str(tmp_path / "quote.bin"), "--collateral", str(tmp_path / "coll.json"),
                   "--trust-root", str(tmp_path / "root.pem"), "--at", str(int(AT.timestamp())), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 4 and out["ok"] is False
    assert out["error"]["check"] == expected_check(name, what) and out["error"]["code"] in (
        "CERTIFICATE_CHAIN_INVALID", "INVALID_SIGNATURE")
    # Without --json the check is on the one error line.
    rc = eaa_main(["verify-quote", str(tmp_path / "quote.bin"), "--collateral", str(tmp_path / "coll.json"),
                   "--trust-root", str(tmp_path / "root.pem"), "--at", str(int(AT.timestamp()))])
    err = capsys.readouterr().err
    assert rc == 4 and err.count("\n") == 1 and f"] {expected_check(name, what)}: " in err


@pytest.mark.parametrize("name, what", FORGERIES)
def test_forged_collateral_refused_by_eaa_pccs_import(plat: SimPlatform, name: str, what: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    key, chain = next((k, c) for n, k, c in forgeries(plat) if n == name)
    (tmp_path / "root.pem").write_bytes(plat.root_pem)
    db = tmp_path / "pccs.sqlite3"
    (tmp_path / "genuine.json").write_text(plat.collateral("sgx").to_qvl_json())
    assert pccs_main(["import", str(tmp_path / "genuine.json"), "--db", str(db),
                      "--trust-root", str(tmp_path / "root.pem")]) == 0
    (tmp_path / "coll.json").write_text(forged(plat, key, chain, what).to_qvl_json())
    capsys.readouterr()
    db2 = tmp_path / "forged.sqlite3"
    rc = pccs_main(["import", str(tmp_path / "coll.json"), "--db", str(db2),
                    "--trust-root", str(tmp_path / "root.pem")])
    err = capsys.readouterr().err
    assert rc != 0 and f"] {expected_check(name, what)}: " in err and err.count("\n") == 1, err
    assert pccs_main(["export", "-o", str(tmp_path / "out.json"), "--db", str(db2)]) == 0
    assert json.loads((tmp_path / "out.json").read_text()).get("records", []) == []


# ---- each role check on its own (the root key lets a test make certificates only Intel could) ----

def tcb_chain_with_signer(p: SimPlatform, signer: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Collateral:
    c = p.collateral("sgx")
    return replace(c, tcb_info_signature=pki.sign_raw(key, c.tcb_info.encode()),
                   tcb_info_issuer_chain=pem(signer, p.root_certificate))


def test_tcb_signer_must_not_be_a_ca(plat: SimPlatform) -> None:
    ca = pki.make_ca(named(plat, pki.TCB_SIGNING_CN), plat._key("tcb_signing"), plat.root_certificate,
                     plat._key("root_ca"), 78, NOW, path_length=0)
    with fails(Check.TCB_INFO_SIGNER):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), tcb_chain_with_signer(plat, ca, plat._key("tcb_signing")),
                              at=AT)


def test_tcb_signer_name_is_compared_exactly(plat: SimPlatform) -> None:
    """The right common name with another attribute around it is another name."""
    other = x509.Name([*named(plat, pki.TCB_SIGNING_CN), x509.NameAttribute(x509.NameOID.LOCALITY_NAME, "x")])
    cert = pki.make_leaf(other, plat._key("tcb_signing"), plat.root_certificate, plat._key("root_ca"), 79, NOW)
    with fails(Check.TCB_INFO_SIGNER):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), tcb_chain_with_signer(plat, cert, plat._key("tcb_signing")),
                              at=AT)


def test_tcb_chain_must_end_with_the_root(plat: SimPlatform) -> None:
    c = replace(plat.collateral("sgx"), tcb_info_issuer_chain=pem(plat.tcb_signing_certificate))
    with fails(Check.TCB_INFO_CHAIN_SHAPE):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), c, at=AT)


def quote_with_chain(p: SimPlatform, *certs: x509.Certificate) -> bytes:
    from eaa.sim import quote as simquote

    qe = replace(p._quoting_enclave("sgx"), pck_chain_pem=pem(*certs).encode())
    body = simquote.sgx_report_body(cpu_svn=p.params.cpu_svn, misc_select=0, attributes=simquote.sgx_attributes(False),
                                    mr_enclave=b"\x01" * 32, mr_signer=p.mrsigner, isv_prod_id=0, isv_svn=0,
                                    report_data=bytes(64))
    return simquote.sgx_quote(qe, qe_id=p.params.qe_id, pce_svn=p.params.pce_svn, body=body)


def pck_leaf(p: SimPlatform, issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey, *,
             subject: x509.Name | None = None, ca: bool = False) -> x509.Certificate:
    ext = p.pck_certificate.extensions.get_extension_for_oid(x509.ObjectIdentifier(pki.SGX_EXTENSION_OID)).value
    if ca:
        return (x509.CertificateBuilder().subject_name(subject or named(p, pki.PCK_CN)).issuer_name(issuer.subject)
                .public_key(p._key("pck").public_key()).serial_number(80).not_valid_before(NOW - timedelta(hours=1))
                .not_valid_after(NOW + timedelta(days=900))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(ext, critical=False).sign(issuer_key, hashes.SHA256()))
    return pki.make_leaf(subject or named(p, pki.PCK_CN), p._key("pck"), issuer, issuer_key, 81, NOW, [ext])


def pck_ca(p: SimPlatform, *, cn: str = pki.PCK_CA_CN, path_length: int | None = 0) -> x509.Certificate:
    return pki.make_ca(named(p, cn), p._key("pck_ca"), p.root_certificate, p._key("root_ca"), 82, NOW,
                       path_length=path_length)


def test_genuine_pck_chain_rebuilt_verifies(plat: SimPlatform) -> None:
    """The helpers above build a verifying quote; each test below changes one thing."""
    ca = pck_ca(plat)
    q = quote_with_chain(plat, pck_leaf(plat, ca, plat._key("pck_ca")), ca, plat.root_certificate)
    assert verifier(plat).verify(q, plat.collateral("sgx"), at=AT).status == "OutOfDate"


@pytest.mark.parametrize("case, check", [
    ("ca-path-length-1", Check.PCK_CA_CONSTRAINTS),
    ("ca-path-length-unlimited", Check.PCK_CA_CONSTRAINTS),
    ("ca-other-name", Check.PCK_CA_SUBJECT),
    ("leaf-is-a-ca", Check.PCK_LEAF_SUBJECT),
    ("leaf-names-another-issuer", Check.PCK_ISSUER_NAME),
    ("four-certificates", Check.PCK_CHAIN_SHAPE),
    ("no-root", Check.PCK_CHAIN_SHAPE),
    ("tcb-signing-as-leaf", Check.PCK_CHAIN_SHAPE),
])
def test_pck_chain_roles(plat: SimPlatform, case: str, check: Check) -> None:
    root, ca_key = plat.root_certificate, plat._key("pck_ca")
    ca = pck_ca(plat)
    chains = {
        "ca-path-length-1": lambda: (pck_leaf(plat, pck_ca(plat, path_length=1), ca_key), pck_ca(plat, path_length=1),
                                     root),
        "ca-path-length-unlimited": lambda: (pck_leaf(plat, pck_ca(plat, path_length=None), ca_key),
                                             pck_ca(plat, path_length=None), root),
        "ca-other-name": lambda: (pck_leaf(plat, pck_ca(plat, cn="EAA SIMULATION SGX Other CA"), ca_key),
                                  pck_ca(plat, cn="EAA SIMULATION SGX Other CA"), root),
        "leaf-is-a-ca": lambda: (pck_leaf(plat, ca, ca_key, ca=True), ca, root),
        "leaf-names-another-issuer": lambda: (_issued_under_other_name(plat, ca), ca, root),
        "four-certificates": lambda: (_leaf_under_sub_ca(plat, ca), _sub_ca(plat, ca), ca, root),
        "no-root": lambda: (pck_leaf(plat, ca, ca_key), ca),
        "tcb-signing-as-leaf": lambda: (plat.tcb_signing_certificate, root),
    }
    with fails(check):
        verifier(plat).verify(quote_with_chain(plat, *chains[case]()), plat.collateral("sgx"), at=AT)


def _issued_under_other_name(p: SimPlatform, ca: x509.Certificate) -> x509.Certificate:
    """Signed by the PCK CA's key, but naming the root as its issuer."""
    b = (x509.CertificateBuilder().subject_name(named(p, pki.PCK_CN)).issuer_name(p.root_certificate.subject)
         .public_key(p._key("pck").public_key()).serial_number(83).not_valid_before(NOW - timedelta(hours=1))
         .not_valid_after(NOW + timedelta(days=900))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(p.pck_certificate.extensions.get_extension_for_oid(
             x509.ObjectIdentifier(pki.SGX_EXTENSION_OID)).value, critical=False))
    return b.sign(p._key("pck_ca"), hashes.SHA256())


def _sub_ca(p: SimPlatform, ca: x509.Certificate) -> x509.Certificate:
    return pki.make_ca(named(p, "EAA SIMULATION SGX Sub CA"), p._key("tcb_signing"), ca, p._key("pck_ca"), 84, NOW,
                       path_length=None)


def _leaf_under_sub_ca(p: SimPlatform, ca: x509.Certificate) -> x509.Certificate:
    return pck_leaf(p, _sub_ca(p, ca), p._key("tcb_signing"))


def der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def test_root_ca_crl_must_be_issued_by_the_root(plat: SimPlatform) -> None:
    c = plat.collateral("sgx")
    with fails(Check.ROOT_CA_CRL_ISSUER, errors.CrlError):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), replace(c, root_ca_crl=c.pck_crl), at=AT)
    with fails(Check.ROOT_CA_CRL_ISSUER, errors.CollateralInvalid):
        validate_root_ca_crl(c.pck_crl or b"", [plat.anchor()])


def test_root_ca_crl_signed_by_another_key(plat: SimPlatform) -> None:
    c = plat.collateral("sgx")
    crl = der(pki.make_crl(plat.root_certificate, plat._key("pck_ca"), [], 5, NOW))  # root's name, PCK CA's key
    with fails(Check.ROOT_CA_CRL_SIGNATURE, errors.InvalidSignature):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), replace(c, root_ca_crl=crl), at=AT)
    with fails(Check.ROOT_CA_CRL_ISSUER, errors.CollateralInvalid):
        validate_root_ca_crl(crl, [plat.anchor()])


def test_pck_crl_must_be_issued_by_the_pck_ca(plat: SimPlatform) -> None:
    """A CRL the root issued (and signed), presented under the right PCK CRL issuer chain."""
    c = plat.collateral("sgx")
    crl = der(pki.make_crl(plat.root_certificate, plat._key("root_ca"), [], 6, NOW))
    with fails(Check.PCK_CRL_ISSUER, errors.CrlError):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), replace(c, pck_crl=crl), at=AT)
    with fails(Check.PCK_CRL_ISSUER, errors.CollateralInvalid):
        validate_pck_crl(crl, c.pck_crl_issuer_chain or "", [plat.anchor()])


def test_pck_crl_issuer_chain_must_be_the_pck_ca(plat: SimPlatform) -> None:
    c = plat.collateral("sgx")
    crl = der(pki.make_crl(plat.tcb_signing_certificate, plat._key("tcb_signing"), [], 7, NOW))
    chain = pem(plat.tcb_signing_certificate, plat.root_certificate)
    with fails(Check.PCK_CRL_ISSUER, errors.CertificateChainError):
        verifier(plat).verify(plat.make_sgx_quote(b"x"), replace(c, pck_crl=crl, pck_crl_issuer_chain=chain), at=AT)
    with fails(Check.PCK_CRL_ISSUER, errors.CollateralInvalid):
        validate_pck_crl(crl, chain, [plat.anchor()])


def test_pck_certificate_validator_checks_roles(plat: SimPlatform) -> None:
    good = validate_pck_certificate(pem(plat.pck_certificate), pem(plat.pck_ca_certificate, plat.root_certificate),
                                    [plat.anchor()])
    assert good.ca_type == "platform"
    other = pki.make_leaf(named(plat, "EAA SIMULATION SGX Other Certificate"), plat._key("pck"),
                          plat.pck_ca_certificate, plat._key("pck_ca"), 85, NOW)
    with fails(Check.PCK_LEAF_SUBJECT, errors.CollateralInvalid):
        validate_pck_certificate(pem(other), pem(plat.pck_ca_certificate, plat.root_certificate), [plat.anchor()])
    with fails(Check.PCK_CHAIN_SHAPE, errors.CollateralInvalid):
        validate_pck_certificate(pem(plat.tcb_signing_certificate), pem(plat.root_certificate), [plat.anchor()])


def test_role_names_derive_from_the_root(plat: SimPlatform) -> None:
    names = plat.anchor().names
    assert names is not None
    assert names.tcb_signing == plat.tcb_signing_certificate.subject.public_bytes()
    assert names.pck_leaf == plat.pck_certificate.subject.public_bytes()
    assert names.pck_cas == {plat.pck_ca_certificate.subject.public_bytes(): "platform",
                             named(plat, "EAA SIMULATION SGX PCK Processor CA").public_bytes(): "processor"}
    assert pki_names(x509.Name.from_rfc4514_string("CN=Some Anchor")) is None
    assert pki_names(x509.Name.from_rfc4514_string("CN=A Root CA+OU=two attributes")) is None


def test_root_without_role_names_accepts_nothing() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    root = pki.make_ca(x509.Name.from_rfc4514_string("CN=Some Anchor"), key, None, key, 1, NOW, path_length=1)
    leaf = pki.make_leaf(x509.Name.from_rfc4514_string("CN=Some Signer"), key, root, key, 2, NOW)
    with fails(Check.ROOT_NAMES, errors.CertificateChainError):
        check_role_chain([leaf, root], [TrustAnchor(root, "some anchor")], TCB_INFO)


def test_intel_vectors_keep_their_roles() -> None:
    """Intel's own TCB Signing, PCK CA and root certificates are what the role names expect."""
    from _vectors import require_vectors

    d = require_vectors() / "intel_certs"
    names = pki_names(intel_root().certificate.subject)
    assert names is not None
    subjects = {p.name: x509.load_pem_x509_certificate(p.read_bytes()).subject.public_bytes()
                for p in d.glob("*.pem")}
    assert subjects["Intel_SGX_TCB_Signing_2025-05-06.pem"] == names.tcb_signing
    assert subjects["Intel_SGX_TCB_Signing_2018-05-21.pem"] == names.tcb_signing
    assert names.pck_cas[subjects["Intel_SGX_PCK_Platform_CA_2018-05-21.pem"]] == "platform"
    assert names.pck_cas[subjects["Intel_SGX_PCK_Processor_CA_2018-05-21.pem"]] == "processor"
