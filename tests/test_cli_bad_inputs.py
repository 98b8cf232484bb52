"""Every console script, driven as a user would with bad input: a one-line error with a documented exit
code, never "internal error" (70, reserved for bugs) and never a traceback (issue 12)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _procs import free_port
from eaa.sim import init_platform

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HUGE = "99999999999999999999"


def documented_codes() -> set[int]:
    """The exit codes the README's table lists."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad")
    init_platform(d / "sim")
    (d / "text.txt").write_text("this is a note, not a quote\n" * 4)
    (d / "empty").write_bytes(b"")
    (d / "junk.bin").write_bytes(bytes(range(256)) * 8)
    (d / "notpem.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    (d / "bad.toml").write_text("[reference\nmrenclave = 1\n")
    (d / "badref.toml").write_text('[reference]\nmrenclave = "xyz"\n')
    (d / "dir").mkdir()
    return {k: str(v) for k, v in {
        "dir": d / "dir", "text": d / "text.txt", "empty": d / "empty", "junk": d / "junk.bin",
        "notpem": d / "notpem.pem", "bad_toml": d / "bad.toml", "bad_ref": d / "badref.toml",
        "missing": d / "missing", "sim": d / "sim", "tmp": d}.items()}


P = "{port}"  # a free port, filled in per case
# (console script, arguments); {name} is replaced by the file of that name above
CASES: list[tuple[str, list[str]]] = [
    # eaa verify-quote / verify-snp / sim
    ("eaa", ["verify-quote", "{missing}"]),
    ("eaa", ["verify-quote", "{dir}"]),
    ("eaa", ["verify-quote", "{text}"]),
    ("eaa", ["verify-quote", "{empty}"]),
    ("eaa", ["verify-quote", "{junk}"]),
    ("eaa", ["verify-quote", "{junk}", "--at", HUGE]),
    ("eaa", ["verify-quote", "{junk}", "--at", "-" + HUGE]),
    ("eaa", ["verify-quote", "{junk}", "--at", "yesterday"]),
    ("eaa", ["verify-quote", "{junk}", "--collateral", "{missing}"]),
    ("eaa", ["verify-quote", "{junk}", "--trust-root", "{notpem}"]),
    ("eaa", ["verify-quote", "{junk}", "--trust-root", "{missing}"]),
    ("eaa", ["verify-quote"]),
    ("eaa", ["no-such-command"]),
    ("eaa", ["verify-snp", "{text}", "--vek", "{junk}", "--chain", "{junk}"]),
    ("eaa", ["verify-snp", "{junk}", "--vek", "{missing}", "--chain", "{junk}"]),
    ("eaa", ["verify-snp", "{junk}", "--vek", "{junk}", "--chain", "{junk}", "--at", HUGE]),
    ("eaa", ["sim", "quote", "--dir", "{sim}", "--report-data", "zz", "-o", "{tmp}/q"]),
    ("eaa", ["sim", "quote", "--dir", "{sim}", "--report-data", "00", "--isv-prod-id", "70000", "-o", "{tmp}/q"]),
    ("eaa", ["sim", "quote", "--dir", "{sim}", "--report-data", "00", "--isv-svn", "-1", "-o", "{tmp}/q"]),
    ("eaa", ["sim", "quote", "--dir", "{sim}", "--report-data", "00", "-o", "{dir}/no/such/q"]),
    ("eaa", ["sim", "init", "--dir", "{text}/sim"]),
    # shelter
    ("shelter", ["remoteattestation", "--no-reference", "--addr", "tcp://127.0.0.1:70000"]),
    ("shelter", ["remoteattestation", "--no-reference", "--addr", "tcp://127.0.0.1:-1"]),
    ("shelter", ["remoteattestation", "--no-reference", "--addr", "tcp://[::1"]),
    ("shelter", ["remoteattestation", "--no-reference", "--addr", "127.0.0.1:1236"]),
    ("shelter", ["remoteattestation", "--no-reference", "--timeout", "0"]),
    ("shelter", ["remoteattestation", "--no-reference", "--timeout", "-1"]),
    ("shelter", ["remoteattestation", "--no-reference", "--timeout", "nan"]),
    ("shelter", ["remoteattestation", "--no-reference", "--timeout", "1e999"]),
    ("shelter", ["remoteattestation", "--no-reference", "--max-parallel", "0"]),
    ("shelter", ["remoteattestation", "--no-reference", "--at", HUGE, "--addr", "tcp://127.0.0.1:" + P]),
    ("shelter", ["remoteattestation", "--reference", "{bad_toml}", "--addr", "tcp://127.0.0.1:" + P]),
    ("shelter", ["remoteattestation", "--reference", "{bad_ref}", "--addr", "tcp://127.0.0.1:" + P]),
    ("shelter", ["remoteattestation", "--reference", "{junk}", "--addr", "tcp://127.0.0.1:" + P]),
    ("shelter", ["remoteattestation", "--inclavared-reference", "{missing}", "--no-reference"]),
    ("shelter", ["remoteattestation", "--no-reference", "--policy", "{text}"]),
    ("shelter", ["remoteattestation", "--no-reference", "--addrs-file", "{junk}"]),
    ("shelter", ["remoteattestation", "--no-reference", "--trust-root", "{notpem}"]),
    ("shelter", ["remoteattestation", "--mrenclave", "nothex", "--addr", "tcp://127.0.0.1:" + P]),
    ("shelter", ["mrenclave", "--sigstruct", "{text}"]),
    ("shelter", ["mrenclave", "--enclave", "{dir}"]),
    ("shelter", ["mrenclave", "--sim", "{missing}"]),
    ("shelter", ["mrenclave", "--sim", "{text}", "--sim-dir", "{sim}", "-o", "{dir}/no/such/ref.toml"]),
    ("shelter", []),
    # enclave-tls-client
    ("enclave-tls-client", ["-p", "70000"]),
    ("enclave-tls-client", ["-p", "-1"]),
    ("enclave-tls-client", ["-p", "0"]),
    ("enclave-tls-client", ["-p", "http"]),
    ("enclave-tls-client", ["-p", P, "--timeout", "0"]),
    ("enclave-tls-client", ["-p", P, "--timeout", "inf"]),
    ("enclave-tls-client", ["-p", P, "--at", HUGE]),
    ("enclave-tls-client", ["-p", P, "--claim", "novalue"]),
    ("enclave-tls-client", ["-p", P, "--policy", "{missing}"]),
    ("enclave-tls-client", ["-p", P, "--trust-root", "{notpem}"]),
    ("enclave-tls-client", ["-p", P, "-v", "no_such_verifier"]),
    ("enclave-tls-client", ["-p", P, "-t", "no_such_tls"]),
    ("enclave-tls-client", ["-i", "no such host", "-p", P]),
    ("enclave-tls-client", ["-i", "127.0.0.1", "-p", P]),  # nothing listening
    # enclave-tls-server
    ("enclave-tls-server", ["-p", "70000"]),
    ("enclave-tls-server", ["-p", "-1"]),
    ("enclave-tls-server", ["-p", P, "--timeout", "nan"]),
    ("enclave-tls-server", ["-p", P, "-a", "sim_sgx_ecdsa", "--at", HUGE]),
    ("enclave-tls-server", ["-p", P, "-a", "no_such_attester"]),
    ("enclave-tls-server", ["-p", P, "-a", "sim_sgx_ecdsa", "-i", "203.0.113.7"]),  # not this host's address
    ("enclave-tls-server", ["-p", P, "-a", "sim_sgx_ecdsa", "--measure", "{missing}"]),
    ("enclave-tls-server", ["-p", P, "-a", "sim_sgx_ecdsa", "--cert-format", "x509"]),
    # inclavared
    ("inclavared", []),
    ("inclavared", ["--listen", "127.0.0.1:70000", "--attester", "sim_sgx_ecdsa"]),
    ("inclavared", ["--listen", "127.0.0.1:" + P, "--xfer", "tcp://127.0.0.1:99999", "--attester", "sim_sgx_ecdsa"]),
    ("inclavared", ["--listen", "127.0.0.1:" + P, "--max-connections", "0"]),
    ("inclavared", ["--listen", "127.0.0.1:" + P, "--max-connections", "-5"]),
    ("inclavared", ["--listen", "127.0.0.1:" + P, "--timeout", "-1"]),
    ("inclavared", ["--listen", "127.0.0.1:" + P, "--at", HUGE, "--attester", "sim_sgx_ecdsa"]),
    ("inclavared", ["--listen", "127.0.0.1:" + P, "--policy", "{bad_toml}", "--attester", "sim_sgx_ecdsa"]),
    ("inclavared", ["--connect", "127.0.0.1:" + P, "--attester", "sim_sgx_ecdsa", "--timeout", "2"]),
    # eaa-pccs
    ("eaa-pccs", ["serve", "--insecure-http", "--listen", "127.0.0.1:70000"]),
    ("eaa-pccs", ["serve", "--insecure-http", "--listen", "127.0.0.1:-1"]),
    ("eaa-pccs", ["serve", "--listen", "127.0.0.1:" + P]),  # HTTPS without --cert/--key
    ("eaa-pccs", ["serve", "--listen", "127.0.0.1:" + P, "--cert", "{missing}", "--key", "{missing}"]),
    ("eaa-pccs", ["serve", "--listen", "127.0.0.1:" + P, "--cert", "{text}", "--key", "{text}"]),
    ("eaa-pccs", ["serve", "--insecure-http", "--listen", "127.0.0.1:" + P, "--refresh-every", "soon"]),
    ("eaa-pccs", ["serve", "--insecure-http", "--listen", "127.0.0.1:" + P, "--mode", "offline",
                  "--db", "{tmp}/p.db", "--import", "{missing}"]),
    ("eaa-pccs", ["serve", "--insecure-http", "--listen", "127.0.0.1:" + P, "--upstream-timeout", "-1"]),
    ("eaa-pccs", ["serve", "--insecure-http", "--listen", "127.0.0.1:" + P, "--upstream-timeout", "nan"]),
    ("eaa-pccs", ["serve", "--insecure-http", "--listen", "127.0.0.1:" + P, "--upstream-retries", "-5"]),
    ("eaa-pccs", ["serve", "--insecure-http", "--listen", "127.0.0.1:" + P, "--min-refresh", "inf"]),
    ("eaa-pccs", ["import", "{tmp}", "--db", "{tmp}/p.db", "--batch-size", "-1"]),
    ("eaa-pccs", ["import", "{missing}", "--db", "{tmp}/p.db"]),
    ("eaa-pccs", ["import", "{text}", "--db", "{tmp}/p.db"]),
    ("eaa-pccs", ["import", "{tmp}", "--url", "http://127.0.0.1:" + P, "--admin-token-file", "{missing}"]),
    ("eaa-pccs", ["export", "--db", "{dir}"]),
    ("eaa-pccs", []),
]


@pytest.mark.parametrize("script,argv", CASES, ids=[f"{s} {' '.join(a)}" for s, a in CASES])
def test_bad_input_is_one_clear_error(script: str, argv: list[str], files: dict[str, str]) -> None:
    args = [a.replace(P, str(free_port())).format(**files) for a in argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAA_")}
    env["EAA_SIM_DIR"] = files["sim"]
    env["EAA_PCCS_URL"] = f"http://127.0.0.1:{free_port()}"  # no collateral fetch leaves this machine
    r = subprocess.run([str(BIN / script), *args], capture_output=True, text=True, env=env, timeout=60,
                       stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert "Traceback" not in out
    assert r.returncode not in (0, 70), out
    assert r.returncode in documented_codes(), out
    assert "internal error" not in out
    if not argv and "usage:" in r.stderr:  # no command at all: the help, and a usage error
        assert r.returncode == 2
        return
    # one line says what is wrong (argparse prints its usage above it)
    said = [ln for ln in r.stderr.splitlines() if ": error" in ln or ln.startswith("Remote attestation failed")]
    assert len(said) == 1, r.stderr


def test_every_typed_error_has_a_documented_exit_code() -> None:
    """The table lists every code a command can exit with: each EaaError subclass's, argparse's 2,
    the internal error and Ctrl-C."""
    import importlib
    import pkgutil

    import eaa
    from eaa.cli.common import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE
    from eaa.errors import EaaError

    for mod in pkgutil.walk_packages(eaa.__path__, "eaa."):
        importlib.import_module(mod.name)

    def subclasses(cls: type) -> set[type]:
        return {cls} | {s for c in cls.__subclasses__() for s in subclasses(c)}

    codes = {c.exit_code for c in subclasses(EaaError)} | {EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED}
    assert codes <= documented_codes(), codes - documented_codes()
