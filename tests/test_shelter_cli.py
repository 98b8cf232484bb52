"""shelter's command line: reference values from SIGSTRUCTs and enclaves, argument errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eaa.cli.shelter import main
from eaa.formats.sigstruct import METADATA_MAGIC
from eaa.policy import ReferenceValues
from test_sigstruct import make_sigstruct


def test_mrenclave_from_sigstruct_writes_reference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ss = tmp_path / "enclave.sig"
    ss.write_bytes(make_sigstruct(mrenclave=b"\x33" * 32, prod=5, svn=2))
    out = tmp_path / "ref.toml"
    assert main(["mrenclave", "--sigstruct", str(ss), "-o", str(out)]) == 0
    assert "mrenclave: " + "33" * 32 in capsys.readouterr().out
    ref = ReferenceValues.load(out)
    assert ref.values["mrenclave"] == ("33" * 32,) and ref.isv_prod_id == 5 and ref.min_isv_svn == 2


def test_mrenclave_from_signed_enclave_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    so = tmp_path / "app.signed.so"
    so.write_bytes(b"\x7fELF" + bytes(300) + METADATA_MAGIC + bytes(56) + make_sigstruct(mrenclave=b"\x44" * 32))
    out = tmp_path / "ref.json"
    assert main(["mrenclave", "--enclave", str(so), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["reference"]["mrenclave"] == "44" * 32


@pytest.mark.parametrize("argv,code", [
    (["mrenclave", "--sigstruct", "/nonexistent"], 2),
    (["remoteattestation", "--addr", "127.0.0.1:1236"], 2),
    (["remoteattestation", "--addr", "tcp://127.0.0.1:1", "--reference", "/nonexistent"], 2),
])
def test_errors_are_one_line(argv: list[str], code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_not_a_sigstruct(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "x.sig"
    f.write_bytes(bytes(1808))
    assert main(["mrenclave", "--sigstruct", str(f)]) == 3
    assert "FORMAT_ERROR" in capsys.readouterr().err


def test_unreachable_node_fails_with_reason(capsys: pytest.CaptureFixture[str]) -> None:
    from _procs import free_port

    assert main(["remoteattestation", "--addr", f"tcp://127.0.0.1:{free_port()}", "--timeout", "2",
                 "--no-reference"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Remote attestation failed with err: [TRANSPORT_ERROR]")


def test_addrs_file_errors_name_the_line_not_its_content(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "nodes.txt"
    f.write_text("# nodes\ntcp://127.0.0.1:1236\nTOKEN=s3cr3t-value\n")
    assert main(["remoteattestation", "--addrs-file", str(f), "--no-reference"]) == 2
    err = capsys.readouterr().err
    assert f"{f} line 3 is not an address" in err and "s3cr3t" not in err
