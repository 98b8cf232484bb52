"""The README's seed commands for the simulated TEE work when pasted literally on a fresh machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from _procs import free_port

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


def _private_network() -> list[str] | None:
    """A command prefix giving a private network namespace with loopback up (the literal ports 1234 and
    1236 then cannot collide with anything else on the machine), or None where that is not allowed."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return None
    probe = subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=30)
    return ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"'] if probe.returncode == 0 else None


def test_seed_commands_on_a_fresh_home(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EAA_", "XDG_"))}
    env["HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    args = [sys.executable, str(HERE / "_readme_flow.py"), str(ROOT / "README.md"), str(work)]
    prefix = _private_network()
    if prefix is None:  # shared network: the same commands on free ports
        args.append(json.dumps({"1234": free_port(), "1236": free_port()}))
    r = subprocess.run([*(prefix or []), *args], env=env, capture_output=True, text=True, timeout=400)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "Remote attestation is successful." in out
    assert "Traceback" not in out
    assert "not pinned" not in out and "--no-reference" not in out
    # the platform was created where the README says, under the fresh HOME
    assert (home / ".local" / "share" / "eaa" / "sim").is_dir()
    assert (work / "reference.toml").read_text().count("mrenclave") == 2


def test_api_section_runs_as_a_doctest() -> None:
    """The README's Python API example, run as written."""
    import doctest

    text = (ROOT / "README.md").read_text()
    begin = text.index("```python", text.index("<!-- readme-api-doctest -->")) + len("```python")
    block = text[begin:text.index("```", begin)]
    test = doctest.DocTestParser().get_doctest(block, {}, "README API", "README.md", 0)
    assert test.examples, "the README's API section has no examples"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0
