"""Quotes and reports as tools write them: binary, hex with any whitespace (``xxd -p``), base64 (Azure's
and GCP's tools), or ``-`` for standard input; a text file that is none of these says so (issue 12)."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from _vectors import require_vectors
from eaa.cli.common import decode_evidence
from eaa.errors import FormatError

BIN = Path(sys.executable).parent


def xxd_p(data: bytes) -> bytes:
    """What ``xxd -p`` writes: 30 bytes (60 hex digits) a line."""
    h = data.hex()
    return "".join(h[i:i + 60] + "\n" for i in range(0, len(h), 60)).encode()


def b64_wrapped(data: bytes) -> bytes:
    """What ``base64`` writes: 76 characters a line."""
    return base64.encodebytes(data)


ENCODINGS: dict[str, Callable[[bytes], bytes]] = {
    "binary": lambda d: d,
    "hex": lambda d: d.hex().encode(),
    "hex-0x-crlf": lambda d: b"0x" + d.hex().upper().encode() + b"\r\n",
    "xxd -p": xxd_p,
    "hex-spaced": lambda d: b" ".join(d.hex()[i:i + 2].encode() for i in range(0, 2 * len(d), 2)),
    "base64": lambda d: base64.b64encode(d),
    "base64-wrapped": b64_wrapped,
    "base64-url-unpadded": lambda d: base64.urlsafe_b64encode(d).rstrip(b"="),
}


@pytest.mark.parametrize("name", ENCODINGS)
def test_decode_round_trip(name: str) -> None:
    for data in (bytes(range(256)) * 3, b"\x03\x00\x02\x00" + bytes(60) + b"\xff\xfe"):
        assert decode_evidence(ENCODINGS[name](data), "quote") == data


@pytest.mark.parametrize("text", [b"this is a note, not a quote\n", b"hello world", b"0xZZ", b"0x123",
                                  b"{\"quote\": 1}\n", b"   \n\t", b"-----BEGIN CERTIFICATE-----\nMIIB\n"])
def test_text_that_is_no_encoding_says_so(text: bytes) -> None:
    with pytest.raises(FormatError, match="(neither hex nor base64|is empty)") as e:
        decode_evidence(text, "quote")
    assert text.strip().decode() not in str(e.value) or not text.strip()  # the content is not echoed


def _verify_quote(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(BIN / "eaa"), "verify-quote", *args], input=stdin, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def sgx_vector() -> tuple[bytes, list[str]]:
    d = require_vectors() / "dcap-qvl"
    return (d / "sgx_quote").read_bytes(), ["--collateral", str(d / "sgx_quote_collateral.json"),
                                           "--at", "1752919277"]


@pytest.mark.parametrize("name", ["xxd -p", "base64-wrapped", "hex-0x-crlf"])
def test_verify_quote_reads_every_encoding(name: str, sgx_vector: tuple[bytes, list[str]], tmp_path: Path) -> None:
    raw, args = sgx_vector
    f = tmp_path / "quote.txt"
    f.write_bytes(ENCODINGS[name](raw))
    r = _verify_quote([str(f), *args])
    assert r.returncode == 0, r.stderr
    assert b"TCB status ConfigurationAndSWHardeningNeeded" in r.stdout


@pytest.mark.parametrize("name", ["binary", "base64"])
def test_verify_quote_reads_standard_input(name: str, sgx_vector: tuple[bytes, list[str]]) -> None:
    raw, args = sgx_vector
    r = _verify_quote(["-", *args], stdin=ENCODINGS[name](raw))
    assert r.returncode == 0, r.stderr
    assert b"Quote verified: SGX" in r.stdout


def test_verify_quote_text_file_is_not_a_quote_version(sgx_vector: tuple[bytes, list[str]], tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("0 is not the quote you are looking for\n")
    r = _verify_quote([str(f), *sgx_vector[1]])
    assert r.returncode == 3
    err = r.stderr.decode()
    assert "neither hex nor base64" in err and "version" not in err and "looking for" not in err
    assert err.count("\n") == 1


def test_verify_snp_reads_base64_from_stdin() -> None:
    d = require_vectors() / "snp-go-sev-guest"
    report = (d / "attestation.bin").read_bytes()
    r = subprocess.run([str(BIN / "eaa"), "verify-snp", "-", "--vek", str(d / "vcek.testcer"), "--chain",
                        str(d / "ask_ark_milan.pem"), "--at", "2025-06-01T00:00:00Z", "--product", "Milan",
                        "--no-crl"],  # the vectors come without AMD's CRL
                       input=b64_wrapped(report), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert b"SEV-SNP report verified" in r.stdout
