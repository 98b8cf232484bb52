"""Protocol messages: exact v1 bytes, v2 round trips, and typed errors for anything malformed."""

from __future__ import annotations

import json

import pytest

from eaa.errors import ConfigError, IdentityMismatch, ProtocolError
from eaa.services import protocol
from eaa.services.address import parse_address


def test_v1_bytes_match_the_original() -> None:
    assert protocol.make_request(None) == b'{"type":"GETENCLAVEINFO"}'
    reply = protocol.enclaveinfo_v1(b"\xaa" * 32, b"\xbb" * 32, b"Hello and welcome to Enclave TLS!\n")
    assert reply == (b'{"id":"123456","message":"Hello and welcome to Enclave TLS!\\n","mrenclave":"' + b"aa" * 32
                     + b'","mrsigner":"' + b"bb" * 32 + b'","msgtype":"ENCLAVEINFO","version":1}')
    assert protocol.parse_request(b'{"type":"GETENCLAVEINFO"}') == protocol.Request(1, None)


def test_v2_request_round_trip() -> None:
    nonce = bytes(range(32))
    req = protocol.parse_request(protocol.make_request(nonce))
    assert req == protocol.Request(2, nonce)


@pytest.mark.parametrize("data", [b"", b"garbage", b"[]", b'{"type":"OTHER"}', b'{"type":"GETENCLAVEINFO","version":3}',
                                  b'{"type":"GETENCLAVEINFO","version":2}',
                                  b'{"type":"GETENCLAVEINFO","version":2,"nonce":"zz"}',
                                  b'{"type":"GETENCLAVEINFO","version":2,"nonce":"' + b"0" * 62 + b'"}',
                                  b"\xff\xfe", b"[" * 100000])
def test_bad_requests(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.parse_request(data)


@pytest.mark.parametrize("nonce", ["00" * 31 + "  ", " " + "00" * 31 + "\n", "zz" * 32, "00" * 31, "00" * 33, 0, None])
def test_one_nonce_rule_on_both_legs(nonce: object) -> None:
    """shelter-to-inclavared and inclavared-to-workload requests parse a nonce alike: 32 bytes of hex, no
    blanks (bytes.fromhex would skip a blank and give a shorter nonce)."""

    with pytest.raises(ProtocolError, match="nonce"):
        protocol.parse_request(json.dumps({"type": "GETENCLAVEINFO", "version": 2, "nonce": nonce}).encode())
    with pytest.raises(ProtocolError, match="nonce"):
        protocol.parse_evidence_request(json.dumps({"version": 2, "nonce": nonce}).encode())
    good = bytes(range(32))
    assert protocol.parse_evidence_request(json.dumps({"version": 2, "nonce": good.hex()}).encode()) == good


def _evidence_obj(**kw: object) -> dict[str, object]:
    obj: dict[str, object] = {"evidence_type": "sgx_ecdsa", "evidence": "AAAA", "claims": "AAAA", "collateral": None,
                              "nonce": "00" * 32}
    obj.update(kw)
    return obj


@pytest.mark.parametrize("kw", [{"evidence_type": None}, {"evidence": "!!!"}, {"claims": 5}, {"nonce": "1"},
                                {"collateral": "x"}, {"collateral": {"tcb_info": 1}}])
def test_bad_workload_evidence(kw: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        protocol.WorkloadEvidence.from_obj(_evidence_obj(**kw))


def test_bad_enclaveinfo() -> None:
    for data in (b"{}", b'{"msgtype":"ENCLAVEINFO","version":2}',
                 b'{"msgtype":"ENCLAVEINFO","version":2,"verdict":{}}'):
        with pytest.raises(ProtocolError):
            protocol.parse_enclaveinfo_v2(data)
    with pytest.raises(ProtocolError):
        protocol.parse_enclaveinfo_v1(b'{"mrenclave":"x"}')


def test_nonce_checked_before_anything_else() -> None:
    w = protocol.WorkloadEvidence.from_obj(_evidence_obj())
    with pytest.raises(IdentityMismatch, match="another nonce"):
        w.verify(None, b"\x01" * 32, at=None)  # type: ignore[arg-type]


def test_enclaveinfo_v2_round_trip() -> None:
    w = protocol.WorkloadEvidence.from_obj(_evidence_obj(certificate="AQID"))
    data = protocol.enclaveinfo_v2(b"\x00" * 32, w, protocol.Verdict(False, "X", "why", None))
    info = protocol.parse_enclaveinfo_v2(data)
    assert info.workload == w and info.verdict.error == "why" and not info.verdict.ok
    assert json.loads(data)["msgtype"] == "ENCLAVEINFO"


@pytest.mark.parametrize("text,kind", [("127.0.0.1:1236", "tcp"), ("0.0.0.0:1", "tcp"), ("[::1]:5", "tcp"),
                                       ("tcp://127.0.0.1:1236", "tcp"), ("tcp://inclavared.eaa-system.svc:1236", "tcp"),
                                       ("tcp://localhost:1", "tcp"), ("unix:///run/x.sock", "unix"),
                                       ("/run/enclave-tls/tls.sock", "unix"), ("relative.sock", "unix")])
def test_addresses(text: str, kind: str) -> None:
    assert parse_address(text).kind == kind


@pytest.mark.parametrize("text", ["", "tcp://bad host:1", "tcp://-x:1", "tcp://:1", "tcp://1.2.3.4", "127.0.0.1:99999",
                                  "unix://"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_address(text)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=5),
                     max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_requests_raise_only_protocol_errors(data: bytes) -> None:
    try:
        protocol.parse_request(data)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(_json)
def test_random_replies_raise_only_protocol_errors(value: object) -> None:
    data = json.dumps(value).encode()
    for parse in (lambda d: protocol.WorkloadEvidence.from_workload_reply(d, None), protocol.parse_enclaveinfo_v2,
                  protocol.parse_enclaveinfo_v1, protocol.parse_request):
        try:
            parse(data)
        except ProtocolError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["evidence_type", "evidence", "claims", "collateral", "nonce", "certificate",
                                        "msgtype", "version"]), _json, max_size=8))
def test_random_evidence_objects(obj: dict[str, object]) -> None:
    try:
        protocol.WorkloadEvidence.from_obj({**_evidence_obj(), **obj})
    except ProtocolError:
        pass


# ---- every message of both legs: what its builder writes, its parser reads back ----

_nonces = st.binary(min_size=protocol.NONCE_SIZE, max_size=protocol.NONCE_SIZE)
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


@settings(max_examples=150, deadline=None)
@given(st.none() | _nonces)
def test_request_round_trip(nonce: bytes | None) -> None:
    data = protocol.make_request(nonce)
    assert protocol.request_complete(data)
    req = protocol.parse_request(data)
    assert (req.version, req.nonce) == ((1, None) if nonce is None else (2, nonce))
    assert not protocol.request_complete(data[:len(data) // 2])


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32), _text)
def test_enclaveinfo_v1_round_trip(mrenclave: bytes, mrsigner: bytes, message: str) -> None:
    obj = protocol.parse_enclaveinfo_v1(protocol.enclaveinfo_v1(mrenclave, mrsigner, message.encode()))
    assert (obj["mrenclave"], obj["mrsigner"], obj["message"]) == (mrenclave.hex(), mrsigner.hex(), message)


@settings(max_examples=150, deadline=None)
@given(_nonces, st.sampled_from(["sgx_ecdsa", "tdx_ecdsa", "sev_snp", "nullattester"]), st.binary(max_size=300),
       st.binary(max_size=100), st.none() | st.binary(min_size=1, max_size=200), st.booleans(),
       st.none() | _text, st.none() | st.dictionaries(st.text(max_size=10), st.integers(), max_size=3))
def test_enclaveinfo_v2_round_trip_any_content(nonce: bytes, etype: str, evidence: bytes, claims: bytes,
                                               cert: bytes | None, ok: bool, error: str | None,
                                               result: dict[str, int] | None) -> None:
    workload = protocol.WorkloadEvidence(etype, evidence, claims, None, cert, nonce)
    verdict = protocol.Verdict(ok, None if ok else "SOME_CODE", error, result)
    info = protocol.parse_enclaveinfo_v2(protocol.enclaveinfo_v2(nonce, workload, verdict))
    assert info.nonce == nonce and info.workload == workload and info.verdict == verdict
    assert protocol.parse_enclaveinfo_v2(protocol.enclaveinfo_v2(nonce, None, verdict)).workload is None


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=30), _text)
def test_error_round_trip(code: str, message: str) -> None:
    data = protocol.make_error(code, message)
    err = protocol.error_of(protocol.parse_json_line(data, "reply"))
    assert isinstance(err, ProtocolError) and f"[{code}]" in str(err) and message[:500] in str(err)
    assert protocol.error_of({"msgtype": "ENCLAVEINFO"}) is None


@settings(max_examples=100, deadline=None)
@given(st.none() | st.tuples(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32)),
       st.binary(max_size=100))
def test_identity_reply_round_trip(ids: tuple[bytes, bytes] | None, message: bytes) -> None:
    identity = protocol.SgxIdentity(*ids) if ids else None
    parsed = protocol.parse_identity_reply(protocol.make_identity_reply(identity, message))
    assert parsed is not None
    assert parsed == ((identity or protocol.SgxIdentity(bytes(32), bytes(32))), message)
    assert protocol.parse_identity_reply(bytes(63)) is None


@settings(max_examples=100, deadline=None)
@given(_nonces)
def test_evidence_request_round_trip(nonce: bytes) -> None:
    assert protocol.parse_evidence_request(protocol.make_evidence_request(nonce)) == nonce
    assert protocol.parse_evidence_request(b"hello from inclavared") is None
    with pytest.raises(ProtocolError):
        protocol.make_evidence_request(nonce[:-1])


@settings(max_examples=100, deadline=None)
@given(_nonces, st.sampled_from(["sgx_ecdsa", "tdx_ecdsa", "sev_snp"]), st.binary(max_size=300),
       st.binary(max_size=100), st.booleans())
def test_evidence_reply_round_trip(nonce: bytes, etype: str, data: bytes, claims: bytes, simulated: bool) -> None:
    from eaa.evidence import Evidence

    evidence = Evidence(etype, data, bytes(64), None, simulated=simulated)
    relayed = protocol.WorkloadEvidence.from_workload_reply(protocol.make_evidence_reply(nonce, evidence, claims),
                                                            b"cert")
    assert relayed == protocol.WorkloadEvidence(etype, data, claims, None, b"cert", nonce)
