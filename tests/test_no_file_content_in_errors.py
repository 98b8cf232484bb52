"""No error message quotes the file it could not use (issue 12): a key, token or note handed to the wrong
flag must not end up in a terminal, a CI log or a bug report."""

from __future__ import annotations

import importlib
import io
import os
import sys
from pathlib import Path

import pytest

from _procs import free_port
from eaa.sim import init_platform

MARK = "Zq7SECRETxx91"
CONTENTS = {
    "pem-key": (f"-----BEGIN PRIVATE KEY-----\nMIGH{MARK}AgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n"
                "-----END PRIVATE KEY-----\n"),
    "token": f"{MARK}-token-value\n",
    "toml": f'[reference]\nmrenclave = "{MARK}"\n',
    "json": f'{{"reference": {{"mrenclave": "{MARK}"}}, "policy": {{"{MARK}": 1}}}}\n',
    "json-key": f'{{"policy": {{"{MARK}": 1}}, "reference": {{"{MARK}": "00"}}}}\n',
    "statuses": f'[policy]\naccepted_statuses = ["{MARK}"]\n',
    "prose": f"password = {MARK} and more words\n",
}
P = "{port}"
# (script, args) with {f} for the file under test
CASES: list[tuple[str, list[str]]] = [
    ("eaa", ["verify-quote", "{f}"]),
    ("eaa", ["verify-quote", "-", "--collateral", "{f}"]),
    ("eaa", ["verify-quote", "-", "--trust-root", "{f}"]),
    ("eaa", ["verify-snp", "{f}", "--vek", "{f}", "--chain", "{f}"]),
    ("eaa", ["verify-snp", "{sgx_quote}", "--vek", "{f}", "--chain", "{f}"]),
    ("eaa", ["verify-snp", "{sgx_quote}", "--vek", "{f}", "--chain", "{f}", "--trust-root", "{f}"]),
    ("shelter", ["remoteattestation", "--reference", "{f}", "--addr", "tcp://127.0.0.1:" + P]),
    ("shelter", ["remoteattestation", "--no-reference", "--inclavared-reference", "{f}"]),
    ("shelter", ["remoteattestation", "--no-reference", "--policy", "{f}"]),
    ("shelter", ["remoteattestation", "--no-reference", "--addrs-file", "{f}"]),
    ("shelter", ["remoteattestation", "--no-reference", "--trust-root", "{f}"]),
    ("shelter", ["mrenclave", "--sigstruct", "{f}"]),
    ("shelter", ["mrenclave", "--enclave", "{f}"]),
    ("enclave-tls-client", ["-p", P, "--policy", "{f}"]),
    ("enclave-tls-client", ["-p", P, "--trust-root", "{f}"]),
    ("enclave-tls-server", ["-p", P, "-a", "sim_sgx_ecdsa", "--policy", "{f}"]),
    ("inclavared", ["--listen", "127.0.0.1:" + P, "--attester", "sim_sgx_ecdsa", "--policy", "{f}"]),
]


ENTRIES = {"eaa": "eaa.cli.eaa", "shelter": "eaa.cli.shelter", "enclave-tls-client": "eaa.cli.enclave_tls_client",
           "enclave-tls-server": "eaa.cli.enclave_tls_server", "inclavared": "eaa.cli.inclavared"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("leak") / "sim"
    init_platform(d)
    return d


@pytest.mark.parametrize("kind", CONTENTS)
@pytest.mark.parametrize("script,argv", CASES, ids=[f"{s} {' '.join(a)}" for s, a in CASES])
def test_error_does_not_quote_the_file(script: str, argv: list[str], kind: str, sim: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / f"input.{kind}"
    f.write_text(CONTENTS[kind])
    quote = tmp_path / "quote.bin"
    quote.write_bytes(b"\x03\x00" + bytes(1000))
    args = [a.replace(P, str(free_port())).format(f=f, sgx_quote=quote) for a in argv]
    for k in [k for k in os.environ if k.startswith("EAA_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("EAA_SIM_DIR", str(sim))
    monkeypatch.setenv("EAA_PCCS_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(CONTENTS[kind].encode())))
    main = importlib.import_module(ENTRIES[script]).main
    try:
        code = main(args)
    except SystemExit as e:  # argparse
        code = e.code
    out = capsys.readouterr()
    assert code not in (0, 70, None), out.err
    assert MARK.lower() not in (out.out + out.err).lower(), out.err
