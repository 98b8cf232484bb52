"""One changed byte anywhere that is signed or bound must make verification fail.

For each verifiable vector a deterministic sample of >= 200 positions (every field boundary
included) over the signed header/body, the quote signature, the attestation key, the QE report,
its signature and the QE auth data; then the collateral itself (TCB info, QE identity, CRLs),
the expiry edges and the trust anchor.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest

from _vectors import anchors, collateral, get_vector, manifest, quote_bytes, verifiable
from eaa.errors import CollateralExpired, EaaError, UntrustedRoot
from eaa.formats.quote import Quote, parse_quote
from eaa.formats.tcb_info import TcbInfo
from eaa.verify.dcap import QuoteVerifier, verify_quote


def regions(q: Quote) -> dict[str, tuple[int, int]]:
    """Byte ranges (start, end) of each signed or bound part of the quote."""
    sig_start = q.signed_length + 4
    qe = q.signature_data.qe
    raw = q.raw
    if q.header.version == 3:
        qe_report = sig_start + 128
    else:
        qe_report = sig_start + 128 + 6
    assert raw[qe_report:qe_report + 384] == qe.qe_report.raw
    qe_sig = qe_report + 384
    auth = qe_sig + 64 + 2
    return {
        "header": (0, 48),
        "body": (48, q.signed_length),
        "signature": (sig_start, sig_start + 64),
        "attestation_key": (sig_start + 64, sig_start + 128),
        "qe_report": (qe_report, qe_report + 384),
        "qe_report_signature": (qe_sig, qe_sig + 64),
        "qe_auth_data": (auth, auth + len(qe.qe_auth_data)),
    }


def positions(q: Quote, n: int = 240) -> list[int]:
    rng = random.Random(0x5EED)
    pos: set[int] = set()
    for start, end in regions(q).values():
        pos.update({start, end - 1, start + 1, end - 2} & set(range(start, end)))
    # Field boundaries inside the bodies.
    for off in (0, 16, 20, 32, 48, 64, 96, 128, 160, 192, 256, 258, 260, 262, 304, 320, 383):
        pos.add(48 + off)
        pos.add(regions(q)["qe_report"][0] + off)
    all_pos = [p for s, e in regions(q).values() for p in range(s, e)]
    while len(pos) < n:
        pos.add(rng.choice(all_pos))
    return sorted(pos)


def assert_every_mutation_fails(ver: QuoteVerifier, raw: bytes, coll, at) -> None:
    """Flip one bit at each sampled position; every changed quote must be rejected."""
    pos = positions(parse_quote(raw))
    assert len(pos) >= 200
    survivors = []
    for p in pos:
        m = bytearray(raw)
        m[p] ^= 0x01 if p % 2 else 0x80
        try:
            ver.verify(bytes(m), coll, at=at)
        except EaaError:
            continue
        survivors.append(p)
    assert not survivors, f"mutations at {survivors} still verified"


@pytest.mark.parametrize("vid", verifiable())
def test_single_byte_changes_fail(vid: str) -> None:
    v = get_vector(vid)
    raw = quote_bytes(v)
    coll, crl = collateral(v)
    ver = QuoteVerifier(anchors(v), check_crl=crl)
    at = v["verify_at"]
    ver.verify(raw, coll, at=at)  # the original verifies
    assert_every_mutation_fails(ver, raw, coll, at)


def _flip_text(text: str, index: int) -> str:
    c = text[index]
    repl = "1" if c == "0" else ("0" if c.isdigit() else ("a" if c != "a" else "b"))
    return text[:index] + repl + text[index + 1:]


@pytest.mark.parametrize("vid", verifiable())
def test_collateral_byte_changes_fail(vid: str) -> None:
    v = get_vector(vid)
    raw = quote_bytes(v)
    coll, crl = collateral(v)
    at = v["verify_at"]
    rng = random.Random(7)
    ver = QuoteVerifier(anchors(v), check_crl=crl)
    for field in ("tcb_info", "qe_identity"):
        text = getattr(coll, field)
        for i in sorted(rng.sample(range(len(text)), 12)) + [0, len(text) - 1]:
            with pytest.raises(EaaError):
                ver.verify(raw, replace(coll, **{field: _flip_text(text, i)}), at=at)
    for field in ("tcb_info_signature", "qe_identity_signature"):
        sig = bytearray(getattr(coll, field))
        sig[5] ^= 1
        with pytest.raises(EaaError):
            ver.verify(raw, replace(coll, **{field: bytes(sig)}), at=at)
    if crl:
        for field in ("root_ca_crl", "pck_crl"):
            der = getattr(coll, field)
            for i in sorted(rng.sample(range(len(der)), 10)) + [len(der) - 1]:
                m = bytearray(der)
                m[i] ^= 0x04
                with pytest.raises(EaaError):
                    ver.verify(raw, replace(coll, **{field: bytes(m)}), at=at)


@pytest.mark.parametrize("vid", verifiable())
def test_expiry_edges(vid: str) -> None:
    v = get_vector(vid)
    raw = quote_bytes(v)
    coll, crl = collateral(v)
    if v["expected"].get("collateral_expired"):  # stale already: flagged, and fatal when strict
        assert QuoteVerifier(anchors(v), check_crl=crl).verify(raw, coll, at=v["verify_at"]).collateral_expired
        with pytest.raises(CollateralExpired):
            verify_quote(raw, coll, at=v["verify_at"], trust_anchors=anchors(v), check_crl=crl, strict=True)
        return
    tcb = TcbInfo.from_body(coll.tcb_info, coll.tcb_info_signature)
    ver = QuoteVerifier(anchors(v), check_crl=crl)
    assert not ver.verify(raw, coll, at=v["verify_at"]).collateral_expired
    edges = [tcb.next_update]
    if crl:
        from cryptography import x509

        edges += [x509.load_der_x509_crl(coll.root_ca_crl).next_update_utc,
                  x509.load_der_x509_crl(coll.pck_crl).next_update_utc]
    for edge in edges:
        after = edge + timedelta(seconds=1)
        r = ver.verify(raw, coll, at=after)
        assert r.collateral_expired
        with pytest.raises(CollateralExpired):
            ver.verify(raw, coll, at=after, strict=True)


@pytest.mark.parametrize("vid", verifiable())
def test_not_yet_valid_collateral_is_reported_and_fatal_when_strict(vid: str) -> None:
    v = get_vector(vid)
    coll, crl = collateral(v)
    tcb = TcbInfo.from_body(coll.tcb_info, coll.tcb_info_signature)
    early = tcb.issue_date - timedelta(seconds=1)
    r = verify_quote(quote_bytes(v), coll, at=early, trust_anchors=anchors(v), check_crl=crl)
    assert any(s.startswith("TCB info is not valid before") for s in r.details["not_yet_valid"])
    assert r.status == v["expected"]["status"]  # as Intel's QVL: issue dates are not checked
    with pytest.raises(CollateralExpired, match="not yet valid|expired"):
        verify_quote(quote_bytes(v), coll, at=early, trust_anchors=anchors(v), check_crl=crl, strict=True)


def test_other_root_fails_unless_passed() -> None:
    sample = get_vector("intel-qvl-sample/sgx_v3_synthetic_test_root")
    coll, _ = collateral(sample)
    with pytest.raises(UntrustedRoot):
        verify_quote(quote_bytes(sample), coll, at=sample["verify_at"])
    r = verify_quote(quote_bytes(sample), coll, at=sample["verify_at"], trust_anchors=anchors(sample))
    assert r.status == "UpToDate"


@pytest.fixture(scope="module")
def sim_platform(tmp_path_factory: pytest.TempPathFactory):
    from eaa.sim import init_platform

    return init_platform(tmp_path_factory.mktemp("sim-mut"), seed=b"\x07" * 32)


@pytest.mark.parametrize("tee", ["sgx", "tdx"])
def test_single_byte_changes_fail_on_simulated_quotes(sim_platform, tee: str) -> None:
    raw = sim_platform.make_quote(tee, b"mutation")
    coll = sim_platform.collateral(tee)
    ver = QuoteVerifier([sim_platform.anchor()])
    at = sim_platform.collateral_expires - timedelta(days=1)
    assert ver.verify(raw, coll, at=at).status == "UpToDate"
    assert_every_mutation_fails(ver, raw, coll, at)


def test_real_vector_never_verifies_against_the_simulated_root(sim_platform) -> None:
    v = get_vector("dcap-qvl/sgx_v3")
    coll, _ = collateral(v)
    with pytest.raises(UntrustedRoot):
        verify_quote(quote_bytes(v), coll, at=v["verify_at"], trust_anchors=[sim_platform.anchor()])


def _with_pck_chain() -> list[str]:
    """Verifiable vectors whose quote carries its PCK chain (certification data 5, or 6 nesting 5)."""
    ids = {v["id"] for v in manifest() if v.get("quote_info", {}).get("cd") in ("5", "6->5")}
    return [vid for vid in verifiable() if vid in ids] or ["<none>"]


@pytest.mark.parametrize("vid", _with_pck_chain())
def test_pck_chain_text_changes_fail_or_change_nothing(vid: str) -> None:
    """The PEM chain inside the quote is not signed as text, only as the certificates it decodes to: a
    changed byte there must either fail verification or leave every decoded certificate as it was (or
    only drop the chain's copy of the root, which the trust anchor stands in for)."""
    import binascii

    from eaa.formats.quote import CERT_PCK_CHAIN
    from eaa.pki.chain import pem_bodies

    v = get_vector(vid)
    raw = quote_bytes(v)
    cd = parse_quote(raw).certification_data
    assert cd.cert_type == CERT_PCK_CHAIN
    coll, crl = collateral(v)
    at = v["verify_at"]
    ver = QuoteVerifier(anchors(v), check_crl=crl)
    original = ver.verify(raw, coll, at=at)
    ders = [binascii.a2b_base64(b) for b in pem_bodies(cd.data)]
    start = raw.index(cd.data)
    rng = random.Random(0xC0DE)
    sample = sorted({start, start + len(cd.data) - 1, *rng.sample(range(start, start + len(cd.data)), 150)})
    for p in sample:
        m = bytearray(raw)
        m[p] ^= 0x01 if p % 2 else 0x20
        try:
            result = ver.verify(bytes(m), coll, at=at)
        except EaaError:
            continue
        mutated = parse_quote(bytes(m)).certification_data.data
        try:
            now = [binascii.a2b_base64(b) for b in pem_bodies(mutated)]
        except binascii.Error:
            now = []
        assert now in (ders, ders[:-1]) and result == original, f"a change at {p} verified with other certificates"


@pytest.mark.parametrize("vid", verifiable())
def test_collateral_changes_are_typed_failures(vid: str) -> None:
    """Changed bytes in the issuer chains (as text) and the CRLs (as DER) fail with a typed error, or, for
    text that decodes to the same certificates, change nothing; never anything else."""
    v = get_vector(vid)
    raw = quote_bytes(v)
    coll, crl = collateral(v)
    at = v["verify_at"]
    ver = QuoteVerifier(anchors(v), check_crl=crl)
    original = ver.verify(raw, coll, at=at)
    rng = random.Random(0xC011)
    for field in ("tcb_info_issuer_chain", "pck_crl_issuer_chain", "root_ca_crl", "pck_crl"):
        value = getattr(coll, field)
        if not value or (field.endswith("crl") and not crl):
            continue  # vectors whose source ships no CRLs are verified without them
        data = value.encode() if isinstance(value, str) else bytes(value)
        for p in sorted(set(rng.sample(range(len(data)), min(len(data), 120))) | {0, len(data) - 1}):
            m = bytearray(data)
            m[p] ^= 0x01 if p % 2 else 0x20
            changed = bytes(m).decode("latin-1") if isinstance(value, str) else bytes(m)
            try:
                result = ver.verify(raw, replace(coll, **{field: changed}), at=at)
            except EaaError:
                continue
            assert isinstance(value, str) and result == original, f"{field}: a change at {p} still verified"
