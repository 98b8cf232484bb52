"""Parsers given random, truncated or corrupted input raise only the typed format error."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _vectors import get_vector, quote_bytes, require_vectors
from eaa.collateral.bundle import Collateral
from eaa.errors import EaaError, FormatError
from eaa.formats.enclave_identity import EnclaveIdentity
from eaa.formats.pck_extensions import parse_sgx_extension
from eaa.formats.quote import parse_quote
from eaa.formats.tcb_info import TcbInfo

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_format_error(fn, data) -> None:
    try:
        fn(data)
    except FormatError as e:
        assert str(e)
    # any other exception propagates and fails the test


@SETTINGS
@given(st.binary(max_size=6000))
def test_random_bytes_quote(data: bytes) -> None:
    _only_format_error(parse_quote, data)


@SETTINGS
@given(st.binary(min_size=48, max_size=64).map(lambda b: b"\x03\x00\x02\x00" + b[4:]))
def test_plausible_header_quote(data: bytes) -> None:
    _only_format_error(parse_quote, data)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_sgx_extension(data: bytes) -> None:
    _only_format_error(parse_sgx_extension, data)


@SETTINGS
@given(st.text(max_size=400))
def test_random_text_tcb_info(text: str) -> None:
    _only_format_error(TcbInfo.from_response, text)
    _only_format_error(EnclaveIdentity.from_response, text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@SETTINGS
@given(json_values)
def test_random_json_tcb_info(value) -> None:
    text = json.dumps({"tcbInfo": value, "signature": "00" * 64})
    _only_format_error(TcbInfo.from_response, text)
    text = json.dumps({"enclaveIdentity": value, "signature": "00" * 64})
    _only_format_error(EnclaveIdentity.from_response, text)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_collateral_json(data: bytes) -> None:
    try:
        Collateral.from_qvl_json(data)
    except EaaError:
        pass


@pytest.mark.parametrize("vid", ["dcap-qvl/sgx_v3", "dcap-qvl/tdx_v4", "dcap-qvl/tdx_v5_td15ex"])
def test_every_truncation_of_real_quote(vid: str) -> None:
    raw = quote_bytes(get_vector(vid))
    q = parse_quote(raw)
    end = len(raw) - q.trailing
    for n in range(end):
        with pytest.raises(FormatError):
            parse_quote(raw[:n])


@pytest.mark.parametrize("vid", ["dcap-qvl/sgx_v3", "dcap-qvl/tdx_v4"])
def test_corrupted_real_quote_parses_or_format_error(vid: str) -> None:
    raw = quote_bytes(get_vector(vid))
    for i in range(0, len(raw), 7):
        m = bytearray(raw)
        m[i] ^= 0xFF
        _only_format_error(parse_quote, bytes(m))


def test_truncated_tcb_info_json() -> None:
    d = require_vectors()
    text = (d / "oasis-core/tcb_info_v3_fmspc_00606A000000.json").read_text()
    TcbInfo.from_response(text)
    for n in range(0, len(text) - 1, 13):
        with pytest.raises(FormatError):
            TcbInfo.from_response(text[:n])


def test_duplicate_keys_rejected() -> None:
    d = require_vectors()
    text = (d / "oasis-core/qe_identity_v2.json").read_text()
    dup = text.replace('{"enclaveIdentity":{', '{"enclaveIdentity":{"isvprodid":7,', 1)
    with pytest.raises(FormatError, match="duplicate"):
        EnclaveIdentity.from_response(dup)


def test_format_error_names_field_and_offset() -> None:
    raw = quote_bytes(get_vector("dcap-qvl/sgx_v3"))
    with pytest.raises(FormatError) as ei:
        parse_quote(raw[:100])
    assert ei.value.field == "body" and ei.value.offset == 48
    bad = bytearray(raw)
    bad[0] = 9
    with pytest.raises(FormatError) as ei:
        parse_quote(bytes(bad))
    assert ei.value.field == "version" and ei.value.offset == 0


def _tdx_tcb_info_obj() -> dict:
    d = require_vectors()
    text = (d / "go-tdx-guest/sample_tcbInfo_response").read_text()
    return json.loads(text)["tcbInfo"]


@SETTINGS
@given(st.sampled_from(["tdxModuleIdentities", "tdxModule", "tcbLevels", "fmspc", "issueDate", "version", "id"]),
       json_values)
def test_real_tdx_tcb_info_with_one_field_replaced(field: str, value) -> None:
    obj = _tdx_tcb_info_obj()
    obj[field] = value
    _only_format_error(TcbInfo.from_response, json.dumps({"tcbInfo": obj, "signature": "00" * 64}))


@SETTINGS
@given(st.sampled_from(["tcbLevels", "miscselect", "attributes", "mrsigner", "isvprodid", "nextUpdate", "id"]),
       json_values)
def test_real_qe_identity_with_one_field_replaced(field: str, value) -> None:
    obj = json.loads((require_vectors() / "oasis-core/qe_identity_v2.json").read_text())["enclaveIdentity"]
    obj[field] = value
    _only_format_error(EnclaveIdentity.from_response, json.dumps({"enclaveIdentity": obj, "signature": "00" * 64}))
