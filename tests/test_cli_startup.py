"""Start-up of the command-line tools: a command imports what its work needs and nothing else (issue 12),
every command has --version, and the daemons share one log format."""

from __future__ import annotations

import ast
import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

import eaa
from _vectors import require_vectors
from eaa.cli.common import setup_daemon_logging

BIN = Path(sys.executable).parent
SCRIPTS = ("eaa", "shelter", "enclave-tls-client", "enclave-tls-server", "inclavared", "eaa-pccs")


def modules_after(argv: list[str], entry: str = "eaa.cli.eaa") -> set[str]:
    """The modules a command has imported by the time it finished (run in a fresh interpreter)."""
    code = (f"import sys\nfrom {entry} import main\nrc = main({argv!r})\n"
            "print(repr([rc, sorted(sys.modules)]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    rc, mods = ast.literal_eval(r.stdout.strip().splitlines()[-1])
    assert rc == 0, r.stderr
    return set(mods)


def test_verify_quote_imports_only_verification() -> None:
    d = require_vectors() / "dcap-qvl"
    mods = modules_after(["verify-quote", str(d / "sgx_quote"), "--collateral", str(d / "sgx_quote_collateral.json"),
                          "--at", "1752919277"])
    assert "eaa.verify.dcap" in mods
    unwanted = {m for m in mods if m.startswith(("eaa.sim", "eaa.services", "eaa.tls", "eaa.attest", "eaa.cli.pccs",
                                                 "eaa.cli.sim", "eaa.collateral.fetch", "eaa.collateral.pcs",
                                                 "httpx", "fastapi", "uvicorn", "psycopg", "prometheus_client",
                                                 "OpenSSL", "logging",
                                                 # start-up cost that verifying does not need (see pki.trust.der_of,
                                                 # pki.chain.VerifyingEcdsa and the lazy imports of the CLI)
                                                 "cryptography.hazmat.primitives.serialization",
                                                 "cryptography.hazmat.backends",
                                                 "cryptography.hazmat.primitives.ciphers",
                                                 "importlib.resources", "threading", "signal",
                                                 # a JSON decoder beside the stdlib's, argparse's terminal width
                                                 # (cli.parser) and the compression modules that come with it
                                                 "orjson", "uuid", "platform", "shutil", "bz2", "lzma",
                                                 # what dataclasses imports for records without a docstring
                                                 "inspect", "ast", "dis", "tokenize",
                                                 # an SGX quote needs no TDX or SEV-SNP types
                                                 "eaa.formats.td_report", "eaa.verify.tdx_measurements",
                                                 "eaa.verify.snp"))}
    assert not unwanted


def test_help_imports_no_cryptography() -> None:
    code = ("import sys\nfrom eaa.cli.eaa import build_parser\nbuild_parser(['--help']).format_help()\n"
            "print(sorted(m for m in sys.modules if m.startswith(('cryptography', 'eaa.sim', 'eaa.verify'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("argv", [["--help"], ["-h", "verify-quote"], ["no-such-command"]])
def test_top_level_help_lists_every_command(argv: list[str]) -> None:
    from eaa.cli.eaa import COMMANDS, build_parser

    text = build_parser(argv).format_help()
    assert all(name in text for name in COMMANDS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_command_has_version(script: str) -> None:
    r = subprocess.run([str(BIN / script), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{script} (eaa) {eaa.__version__}"


def test_daemon_log_format() -> None:
    out = io.StringIO()
    setup_daemon_logging("info", stream=out)
    logging.getLogger("eaa.inclavared").info("peer=%s result=ok", "127.0.0.1:5000")
    logging.getLogger("httpx").info('HTTP Request: GET https://pcs/x "HTTP/1.1 200 OK"')  # not at INFO
    logging.getLogger("eaa.pccs").debug("below the level")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("eaa.pccs").exception("refresh failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(stamp + r" INFO eaa\.inclavared: peer=127\.0\.0\.1:5000 result=ok", lines[0])
    assert re.fullmatch(stamp + r" ERROR eaa\.pccs: refresh failed \(ValueError: bad \| value\)", lines[1])
    setup_daemon_logging("debug", stream=out)
    assert logging.getLogger("httpx").level == logging.WARNING  # request lines stay out even at debug
    for name in ("eaa", "uvicorn", "httpx", "httpcore"):  # leave the test process's logging as it was
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_one_shot_console_scripts_flush_and_keep_their_status() -> None:
    """The one-shot scripts exit without the interpreter's teardown: every byte is still written, and the
    status is the command's (success, a usage error, a verification error)."""
    d = require_vectors() / "dcap-qvl"
    ok = subprocess.run([str(BIN / "eaa"), "verify-quote", str(d / "sgx_quote"), "--collateral",
                         str(d / "sgx_quote_collateral.json"), "--at", "1752919277", "--json"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "ConfigurationAndSWHardeningNeeded"
    usage = subprocess.run([str(BIN / "shelter"), "no-such-command"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
    strict = subprocess.run([str(BIN / "eaa"), "verify-quote", str(d / "sgx_quote"), "--collateral",
                             str(d / "sgx_quote_collateral.json"), "--at", "1", "--strict", "--json"],
                            capture_output=True, text=True, timeout=60)
    assert strict.returncode == 7 and json.loads(strict.stdout)["error"]["check"] == "COLLATERAL_NOT_YET_VALID"
    version = subprocess.run([str(BIN / "enclave-tls-client"), "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and eaa.__version__ in version.stdout


def test_only_one_shot_commands_skip_the_collector() -> None:
    """`eaa pccs serve` is a daemon inside the toolbox: it must keep the cyclic collector."""
    code = ("import gc, sys\nimport eaa.cli.common as c\nimport eaa.cli.eaa as e\n"
            "c.one_shot = lambda main: print('one-shot')\n"
            "e.one_shot = c.one_shot\ne.main = lambda: print('normal', gc.isenabled()) or 0\n"
            "for argv in (['eaa', 'pccs', 'serve'], ['eaa', 'verify-quote']):\n"
            "    sys.argv = argv\n    try:\n        e.console()\n    except SystemExit:\n        pass\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["normal", "True", "one-shot"], r.stderr


def test_dialling_an_ascii_host_loads_no_idna_codec() -> None:
    """Clients pass ASCII host names to getaddrinfo as bytes: a str makes it load the IDNA codec first."""
    code = (
        "import socket, sys\n"
        "from eaa.errors import TransportError\n"
        "from eaa.services.address import dial, parse_address\n"
        "from eaa.tls import TlsClient\n"
        "s = socket.create_server(('127.0.0.1', 0)); port = s.getsockname()[1]\n"
        "dial(parse_address(f'tcp://localhost:{port}'), 5).close()\n"
        "s.close()\n"
        "try:\n"
        "    TlsClient().connect('127.0.0.1', port, timeout=5)\n"
        "except TransportError:\n"
        "    pass\n"
        "print('encodings.idna' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_checking_a_peer_certificate_loads_no_serialization_package(tmp_path: Path) -> None:
    """A client that only verifies (shelter, enclave-tls-client without a certificate) reads the peer's P-256 key
    from its point: loading an SPKI would import cryptography's serialization package (SSH keys, ciphers)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from eaa.tls.testing import self_signed_der

    (tmp_path / "peer.der").write_bytes(self_signed_der(ec.generate_private_key(ec.SECP256R1())))
    code = ("import sys\nimport eaa.tls\nfrom eaa.tls.peercert import parse_certificate\n"
            f"parse_certificate(open({str(tmp_path / 'peer.der')!r}, 'rb').read()).check_self_signed()\n"
            "print('cryptography.hazmat.primitives.serialization' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


@pytest.mark.parametrize("argv,chosen", [
    (["remoteattestation", "--addr", "x"], "remoteattestation"), (["-v"], None),
    (["--verbose", "mrenclave"], "mrenclave"), (["-h", "mrenclave"], None), (["mrenclave", "--help"], "mrenclave"),
    (["bogus"], None), ([], None),
])
def test_only_the_named_command_is_built(argv: list[str], chosen: str | None) -> None:
    from eaa.cli import shelter
    from eaa.cli.parser import chosen_command

    assert chosen_command(argv, shelter._COMMANDS) == chosen
    sub = next(a for a in shelter.build_parser(argv)._actions if a.dest == "command")
    assert sorted(sub.choices) == ([chosen] if chosen else sorted(shelter._COMMANDS))  # type: ignore[attr-defined]


def test_help_takes_the_terminal_width_from_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from eaa.cli import shelter

    monkeypatch.setenv("COLUMNS", "60")
    narrow = shelter.build_parser(["remoteattestation"]).format_help()
    monkeypatch.setenv("COLUMNS", "200")
    wide = shelter.build_parser(["remoteattestation"]).format_help()
    assert max(map(len, narrow.splitlines())) <= 60 < max(map(len, wide.splitlines()))
