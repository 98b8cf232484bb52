"""shelter's identity checks are on by default (issue 11): reference values are required, inclavared's own
identity can be pinned, protocol v1 needs --allow-replay, and a v1 run that verified nothing fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from _procs import free_port, run
from test_eaa_flow import Node, env  # noqa: F401  (env: the flow's simulated platform, a module fixture)


@pytest.fixture(scope="module")
def node(env: dict[str, str]) -> Iterator[Node]:
    n = Node(env, "good")
    yield n
    n.stop()


def shelter(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    r = run("eaa.cli.shelter", list(args), env)
    assert "Traceback" not in r.stderr + r.stdout
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def pinned(env: dict[str, str], node: Node) -> Path:
    """Reference values for the workload and, in its [inclavared] section, for inclavared."""
    out = Path(env["EAA_TEST_DIR"]) / "pinned.toml"
    rc, stdout, err = shelter(env, "mrenclave", "--sim", str(node.prog), "--inclavared-sim", "-o", str(out))
    assert rc == 0, err
    assert "inclavared mrenclave: " in stdout
    return out


def test_refuses_without_reference_values(env: dict[str, str]) -> None:
    # refused before connecting: no node is listening on this port
    rc, out, err = shelter(env, "remoteattestation", "--addr", f"tcp://127.0.0.1:{free_port()}", "--trust-sim")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "no reference values for the workload" in err and "--no-reference" in err


def test_no_reference_says_what_was_not_checked(env: dict[str, str], node: Node) -> None:
    rc, out, err = shelter(env, "remoteattestation", "--addr", node.addr, "--trust-sim", "--no-reference")
    assert rc == 0, err
    assert "WARNING: --no-reference: the workload's measurements are not compared" in out
    assert "WARNING: inclavared's own identity is not pinned" in out
    rc, out, err = shelter(env, "remoteattestation", "--addr", node.addr, "--trust-sim", "--no-reference",
                           "--output", "json")
    assert rc == 0 and json.loads(out)["ok"] is True
    assert "--no-reference" in err  # JSON stays parseable; the warnings go to stderr


def test_reference_file_pins_workload_and_inclavared(env: dict[str, str], node: Node, pinned: Path) -> None:
    rc, out, err = shelter(env, "remoteattestation", "--addr", node.addr, "--trust-sim", "--reference", str(pinned))
    assert rc == 0, err
    assert "WARNING" not in out.replace("WARNING: simulated evidence", "")


def test_wrong_inclavared_section_fails(env: dict[str, str], node: Node, pinned: Path) -> None:
    bad = pinned.with_name("bad-inclavared.toml")
    text = pinned.read_text()
    head, sep, tail = text.partition("[inclavared]")
    bad.write_text(head + sep + "\nmrenclave = \"" + "00" * 32 + "\"\n")
    rc, _, err = shelter(env, "remoteattestation", "--addr", node.addr, "--trust-sim", "--reference", str(bad))
    assert rc == 1 and "mrenclave mismatch" in err
    assert "Remote attestation failed with err:" in err


def test_inclavared_reference_flag(env: dict[str, str], node: Node, pinned: Path, tmp_path: Path) -> None:
    workload_only = tmp_path / "workload.toml"
    rc, _, err = shelter(env, "mrenclave", "--sim", str(node.prog), "-o", str(workload_only))
    assert rc == 0, err
    inclavared_only = tmp_path / "inclavared.json"
    rc, _, err = shelter(env, "mrenclave", "--sim", *_inclavared_files(), "-o", str(inclavared_only))
    assert rc == 0, err
    ok = ["remoteattestation", "--addr", node.addr, "--trust-sim", "--reference", str(workload_only)]
    rc, out, err = shelter(env, *ok, "--inclavared-reference", str(inclavared_only))
    assert rc == 0, err
    assert "not pinned" not in out
    # the workload's values are not inclavared's: a relay running any other enclave is refused
    rc, _, err = shelter(env, *ok, "--inclavared-reference", str(workload_only))
    assert rc == 1 and "mrenclave mismatch" in err
    # a file with an [inclavared] section: that section is what pins inclavared
    rc, _, err = shelter(env, *ok, "--inclavared-reference", str(pinned))
    assert rc == 0, err


def _inclavared_files() -> list[str]:
    from eaa.services.inclavared import program_files

    return program_files()


def test_v1_needs_allow_replay(env: dict[str, str], node: Node, pinned: Path) -> None:
    rc, out, err = shelter(env, "remoteattestation", "--addr", node.addr, "--trust-sim", "--reference", str(pinned),
                           "--v1")
    assert rc == 2 and out == "" and "can be replayed" in err and "--allow-replay" in err
    rc, out, err = shelter(env, "remoteattestation", "--addr", node.addr, "--trust-sim", "--reference", str(pinned),
                           "--v1", "--allow-replay")
    assert rc == 0, err
    assert "WARNING: protocol v1 (--allow-replay): the answer carries no nonce and can be replayed" in out


def test_v1_with_nullverifier_verified_nothing(env: dict[str, str]) -> None:
    n = Node(env, "nullatt", attester="nullattester", mutual=False)
    try:
        base = ["remoteattestation", "--addr", n.addr, "--trust-sim", "--v1", "--allow-replay", "--verifier",
                "nullverifier"]
        rc, out, err = shelter(env, *base, "--mrenclave", "ab" * 32, "--mrsigner", "cd" * 32)
        assert rc == 1 and "NOTHING_VERIFIED" in err and "nothing was verified" in err
        rc, out, err = shelter(env, *base, "--no-reference")
        assert rc == 0, err
        assert "WARNING: nothing was verified" in out
        rc, out, err = shelter(env, *base, "--no-reference", "--output", "json")
        assert rc == 0 and json.loads(out)["nodes"][0]["verified_nothing"] is True
    finally:
        n.stop()


def test_mrenclave_sim_defaults_to_the_workload_program(env: dict[str, str], tmp_path: Path) -> None:
    """`shelter mrenclave --sim` with no files gives what enclave-tls-server measures by default."""
    from eaa.services.workload import program_files

    a, b = tmp_path / "default.json", tmp_path / "named.json"
    assert shelter(env, "mrenclave", "--sim", "-o", str(a))[0] == 0
    assert shelter(env, "mrenclave", "--sim", *program_files(), "-o", str(b))[0] == 0
    assert json.loads(a.read_text()) == json.loads(b.read_text())
    rc, _, err = shelter(env, "mrenclave", "--sigstruct", str(a), "--inclavared-sim")
    assert rc == 2 and "--inclavared-sim goes with --sim" in err
