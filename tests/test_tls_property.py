"""Hostile certificate contents: the Enclave-TLS decoders raise only eaa's typed errors."""

from __future__ import annotations

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from eaa.errors import EaaError
from eaa.tls.claims import decode_claims
from eaa.tls.dice import decode_endorsements, decode_evidence
from eaa.tls.peercert import parse_certificate

SETTINGS = settings(max_examples=300, deadline=None)

cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**64), max_value=2**64) | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=10) | st.binary(max_size=8), c, max_size=5),
    max_leaves=20,
)


def _typed_only(fn, data: bytes) -> None:
    try:
        fn(data)
    except EaaError as e:
        assert str(e)


@SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    for fn in (decode_claims, decode_evidence, decode_endorsements, parse_certificate):
        _typed_only(fn, data)


@SETTINGS
@given(cbor_values, st.sampled_from([60000, 60002, 0x1A7504, 1, 60001]))
def test_random_cbor(value: object, tag: int) -> None:
    for data in (cbor2.dumps(value), cbor2.dumps(cbor2.CBORTag(tag, value)),
                 cbor2.dumps(cbor2.CBORTag(tag, [value, cbor2.dumps(value)]))):
        for fn in (decode_claims, decode_evidence, decode_endorsements):
            _typed_only(fn, data)


def test_every_byte_of_an_attested_certificate_is_checked(tmp_path) -> None:
    """Flip one bit at a time across a real DICE certificate carrying simulated evidence: the peer
    verifier must reject every changed certificate with a typed error, and nothing else may escape."""
    from eaa.sim import init_platform
    from eaa.sim.attesters import SimSgxEcdsaAttester
    from eaa.tls.crypto import OpenSslCrypto
    from eaa.tls.peer import PeerVerifier

    sim = tmp_path / "sim"
    init_platform(sim)
    creds = OpenSslCrypto().create_credentials(SimSgxEcdsaAttester(sim_dir=sim), endorsements=True)
    der = creds.der
    verifier = PeerVerifier(trust_simulation=True, sim_dir=sim, cache_size=0)
    assert verifier.verify_certificate(der).result.status == "UpToDate"
    accepted = []
    for pos in range(0, len(der), max(1, len(der) // 400)):
        m = bytearray(der)
        m[pos] ^= 0x01
        try:
            verifier.verify_certificate(bytes(m))
        except EaaError:
            continue
        accepted.append(pos)
    assert not accepted, f"bit flips at {accepted} were accepted"
