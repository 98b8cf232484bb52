"""Run the README's simulated-TEE block of the seed's commands as a user would paste it.

Usage: python _readme_flow.py README.md WORKDIR [PORT_MAP_JSON]

The block (after ``<!-- readme-sim-flow -->``) is split at its ``# terminal N`` comments. Each
terminal's lines run in order in WORKDIR; the last line of every terminal but the last is a daemon,
started in the background and waited for until it logs that it is listening. The last terminal's
lines must all succeed. PORT_MAP_JSON ({"1234": 40001, ...}) rewrites port numbers, for hosts where
the literal ports cannot be used (no private network namespace).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

MARKER = "<!-- readme-sim-flow -->"


def terminals(readme: str) -> list[list[str]]:
    block = readme.split(MARKER, 1)[1].split("```", 2)[1]
    out: list[list[str]] = []
    for line in block.splitlines():
        line = line.strip()
        if line.startswith("# terminal"):
            out.append([])
        elif line and not line.startswith("#"):
            out[-1].append(line)
    return out


def main() -> int:
    readme, work = Path(sys.argv[1]).read_text(), Path(sys.argv[2])
    ports = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    daemons: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        groups = terminals(readme)
        for n, lines in enumerate(groups, 1):
            for i, line in enumerate(lines):
                for old, new in ports.items():
                    line = re.sub(rf"(?<=[:\s]){old}\b", str(new), line)
                print(f"$ {line}", flush=True)
                if n < len(groups) and i == len(lines) - 1:
                    log = work / f"terminal{n}.log"
                    with open(log, "wb") as out:
                        p = subprocess.Popen(["bash", "-c", line], cwd=work, stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True)
                    daemons.append((p, log))
                    deadline = time.monotonic() + 60
                    while "listening on" not in log.read_text(errors="replace"):
                        if p.poll() is not None or time.monotonic() > deadline:
                            print(log.read_text(errors="replace"))
                            return 1
                        time.sleep(0.05)
                else:
                    r = subprocess.run(["bash", "-c", line], cwd=work, capture_output=True, text=True, timeout=120)
                    print(r.stdout + r.stderr, flush=True)
                    if r.returncode != 0:
                        return r.returncode
        return 0
    finally:
        for p, _ in daemons:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p, log in daemons:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            print(f"--- {log.name}\n{log.read_text(errors='replace')}")


if __name__ == "__main__":
    sys.exit(main())
