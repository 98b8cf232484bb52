"""Coverage-guided fuzzing of the targets in fuzz/targets.py with atheris (libFuzzer).

    python fuzz/run.py [--seconds 60] [--only quote,qcnl] [--corpus DIR]

Each target runs in its own process for ``--seconds``, starting from its seed corpus (written under
``--corpus``, default fuzz/corpus/, which keeps what the run found interesting for the next run). A
crash (any exception but a typed EaaError) stops that target and leaves the input as
``crash-<sha1>`` in the corpus directory; turn it into a regression test in tests/test_fuzz_regressions.py.
Exit status: 0 when every target ran clean, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(name: str, corpus: Path, seconds: int) -> None:
    import atheris  # type: ignore[import-not-found]

    with atheris.instrument_imports():
        sys.path.insert(0, str(HERE))
        import targets

    target = targets.TARGETS[name]
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in target.seeds():
        (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)

    def one_input(data: bytes) -> None:
        targets.check(target, data[:targets.MAX_INPUT])

    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={seconds}", f"-artifact_prefix={corpus}/",
                   "-rss_limit_mb=4096", "-timeout=20", "-print_final_stats=1"], one_input)
    atheris.Fuzz()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    p.add_argument("--only", help="comma-separated target names")
    p.add_argument("--corpus", type=Path, default=HERE / "corpus")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args.corpus / args.child, args.seconds)
        return 0
    try:
        import atheris  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        print("atheris is not installed: pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    import targets

    names = args.only.split(",") if args.only else sorted(targets.TARGETS)
    unknown = set(names) - set(targets.TARGETS)
    if unknown:
        print(f"unknown targets: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"== {name} ({args.seconds} s)", flush=True)
        r = subprocess.run([sys.executable, __file__, "--child", name, "--seconds", str(args.seconds),
                            "--corpus", str(args.corpus)], env={**os.environ, "PYTHONHASHSEED": "0"})
        if r.returncode != 0:
            failed.append(name)
    print("clean" if not failed else f"crashes in: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
