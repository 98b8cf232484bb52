"""SIGSTRUCT parsing: bare (Gramine .sig) and inside an SGX SDK signed enclave."""

from __future__ import annotations

import hashlib

import pytest

from eaa.errors import FormatError
from eaa.formats.sigstruct import HEADER1, HEADER2, METADATA_MAGIC, SIGSTRUCT_SIZE, SigStruct, sigstruct_from_enclave


def make_sigstruct(mrenclave: bytes = b"\x5a" * 32, modulus: bytes = bytes(range(256)) + bytes(128),
                   prod: int = 7, svn: int = 3) -> bytes:
    s = bytearray(SIGSTRUCT_SIZE)
    s[0:16] = HEADER1
    s[24:40] = HEADER2
    s[128:512] = modulus
    s[512:516] = (3).to_bytes(4, "little")
    s[944:960] = b"\xff" * 16
    s[960:992] = mrenclave
    s[1024:1026] = prod.to_bytes(2, "little")
    s[1026:1028] = svn.to_bytes(2, "little")
    return bytes(s)


def test_parse_fields() -> None:
    raw = make_sigstruct()
    s = SigStruct.parse(raw)
    assert s.mrenclave == b"\x5a" * 32
    assert s.mrsigner == hashlib.sha256(bytes(range(256)) + bytes(128)).digest()
    assert (s.isv_prod_id, s.isv_svn, s.exponent) == (7, 3, 3)
    assert not s.debug_allowed


@pytest.mark.parametrize("mutate", [lambda b: b[:-1], lambda b: b"\x00" + b[1:], lambda b: b[:30] + b"\x09" + b[31:]])
def test_rejects_non_sigstruct(mutate) -> None:
    with pytest.raises(FormatError):
        SigStruct.parse(mutate(make_sigstruct()))


def test_from_signed_enclave_metadata() -> None:
    css = make_sigstruct(mrenclave=b"\x42" * 32)
    decoy = METADATA_MAGIC + bytes(100)  # a magic without a SIGSTRUCT after it is skipped
    meta = METADATA_MAGIC + bytes(56) + css
    image = b"\x7fELF" + bytes(1000) + decoy + bytes(64) + meta + bytes(500)
    assert sigstruct_from_enclave(image).mrenclave == b"\x42" * 32
    with pytest.raises(FormatError):
        sigstruct_from_enclave(b"\x7fELF" + bytes(5000))
