"""Real shelter attestations while inclavared is held by slowloris connections, the fault cases of
bench/faults.py, SIGTERM under load and a long run (``make reliability``, which writes docs/reliability.md).

A simulated platform, an enclave-tls-server and an inclavared run as processes on loopback (the
seed's flags, simulated attesters). First ``--runs`` sequential ``shelter remoteattestation``
processes are timed with nothing else going on; then an attacker opens ``--idle`` connections that
send nothing and ``--reconnecting`` connections that trickle a TLS ClientHello one byte at a time
and reconnect every second or two (and whenever inclavared closes them), from ``--sources`` loopback
addresses other than shelter's, and the same attestations are timed again. Every attestation
must succeed; then the unloaded runs are repeated, because the machine may have become busier or
quieter meanwhile. The script prints each time, the medians and each loaded time's ratio to the
median of all unloaded runs. Target: every loaded attestation within 2x that median.

Then (bench/faults.py): a PCCS down, slow and serving broken signatures, the workload killed in the middle
of its handshake with inclavared, SIGTERM while ``--shelters`` shelters are served, and ``--long``
sequential attestations (after ``--long-warmup``) with inclavared's descriptors and memory read from /proc.

Run: ``python bench/reliability.py [--idle N] [--reconnecting N] [--runs N] [--sources N]
[--target inclavared|workload] [--long N] [--long-warmup N] [--shelters N] [--only PART]... [--doc FILE]``
(``--target workload`` holds the mutual-TLS workload's port instead).
"""

from __future__ import annotations

import argparse
import errno
import os
import random
import selectors
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(1, str(ROOT / "bench"))

import faults  # noqa: E402
from eaa_flow import free_port, stop_processes, wait_port  # noqa: E402


def client_hello() -> bytes:
    """The first flight of a real TLS client, to trickle byte by byte."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


@dataclass
class _Conn:
    sock: socket.socket
    kind: str  # "idle" or "slow"
    close_at: float
    next_byte: float
    sent: int = 0
    connected: bool = False


@dataclass
class SlowlorisStats:
    opened: int = 0
    closed_by_server: int = 0
    refused: int = 0
    open_now: dict[str, int] = field(default_factory=dict)


class Slowloris:
    """Holds ``idle`` silent and ``reconnecting`` trickling connections to ``host:port`` until stopped.

    Connections come from ``sources`` (local addresses, round robin), so that a test can put the
    attacker on other addresses than the real client, as on a network. One thread, non-blocking.
    """

    def __init__(self, host: str, port: int, *, idle: int = 500, reconnecting: int = 500,
                 sources: tuple[str, ...] = ("127.0.0.2",), trickle: float = 0.5,
                 lifetime: tuple[float, float] = (1.0, 2.0), opens_per_round: int = 100) -> None:
        self.host, self.port = host, port
        self.want = {"idle": idle, "slow": reconnecting}
        self.sources = sources
        self.trickle = trickle
        self.lifetime = lifetime
        self.opens_per_round = opens_per_round
        self.hello = client_hello()
        self.stats = SlowlorisStats()
        self._conns: dict[socket.socket, _Conn] = {}
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)
        self._next_source = 0
        self._rng = random.Random(1)

    def start(self) -> Slowloris:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for conn in list(self._conns.values()):
            self._drop(conn)
        self._selector.close()

    def count(self, kind: str | None = None) -> int:
        return sum(1 for c in list(self._conns.values()) if kind is None or c.kind == kind)

    def wait_open(self, timeout: float = 30.0) -> int:
        """Wait until every wanted connection is connected (or ``timeout``); how many are."""
        deadline = time.monotonic() + timeout
        want = sum(self.want.values())
        while time.monotonic() < deadline:
            n = sum(1 for c in list(self._conns.values()) if c.connected)
            if n >= want:
                return n
            time.sleep(0.1)
        return sum(1 for c in list(self._conns.values()) if c.connected)

    def _open(self, kind: str, now: float) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            source = self.sources[self._next_source % len(self.sources)]
            self._next_source += 1
            sock.bind((source, 0))
            rc = sock.connect_ex((self.host, self.port))
            if rc not in (0, errno.EINPROGRESS):
                raise OSError(rc, os.strerror(rc))
        except OSError:
            sock.close()
            self.stats.refused += 1
            return
        life = self._rng.uniform(*self.lifetime) if kind == "slow" else float("inf")
        conn = _Conn(sock, kind, now + life, now)
        self._conns[sock] = conn
        self._selector.register(sock, selectors.EVENT_WRITE, conn)
        self.stats.opened += 1

    def _drop(self, conn: _Conn) -> None:
        self._conns.pop(conn.sock, None)
        try:
            self._selector.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        conn.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            opened = 0
            for kind, want in self.want.items():
                missing = want - self.count(kind)
                for _ in range(max(0, min(missing, self.opens_per_round - opened))):
                    self._open(kind, now)
                    opened += 1
            for key, mask in self._selector.select(0.05):
                conn: _Conn = key.data
                if mask & selectors.EVENT_WRITE and not conn.connected:
                    if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        self.stats.refused += 1
                        self._drop(conn)
                        continue
                    conn.connected = True
                    self._selector.modify(conn.sock, selectors.EVENT_READ, conn)
                elif mask & selectors.EVENT_READ:
                    try:
                        data = conn.sock.recv(4096)
                    except OSError:
                        data = b""
                    if not data:  # the server closed it (deadline, shedding, refusal)
                        self.stats.closed_by_server += 1
                        self._drop(conn)
            now = time.monotonic()
            for conn in list(self._conns.values()):
                if conn.kind != "slow" or not conn.connected:
                    continue
                if now >= conn.close_at:
                    self._drop(conn)
                elif now >= conn.next_byte and conn.sent < len(self.hello):
                    try:
                        conn.sock.send(self.hello[conn.sent:conn.sent + 1])
                        conn.sent += 1
                    except OSError:
                        self._drop(conn)
                        continue
                    conn.next_byte = now + self.trickle
            self.stats.open_now = {k: self.count(k) for k in self.want}


def attest(env: dict[str, str], addr: str, reference: Path) -> tuple[bool, float, str]:
    """One whole ``shelter remoteattestation`` process: success, seconds, and its error when it failed."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "eaa.cli.shelter", "remoteattestation", "--addr", addr,
                        "--trust-sim", "--reference", str(reference)], env=env, capture_output=True, text=True,
                       timeout=120)
    return r.returncode == 0, time.perf_counter() - t0, r.stderr.strip()[-300:]


def slowloris_phase(args: argparse.Namespace, out: Callable[[str], None]) -> tuple[bool, str]:
    """The slowloris measurement, its lines to ``out``: whether every loaded attestation succeeded, and the
    medians and ratios in one line."""
    from eaa.services.server import raise_fd_limit
    from eaa.sim import init_platform

    raise_fd_limit(args.idle + args.reconnecting + 1024)  # inherited by the servers started below
    work = Path(tempfile.mkdtemp(prefix="eaa-reliability-"))
    env = dict(os.environ, EAA_SIM_DIR=str(work / "sim"))
    env.pop("EAA_TRUST_SIMULATION", None)
    init_platform(work / "sim")
    wport, iport = free_port(), free_port()
    py = sys.executable
    procs: list[subprocess.Popen[bytes]] = []
    attacker: Slowloris | None = None
    try:
        program = [str(ROOT / "src/eaa/services/workload.py"), str(ROOT / "src/eaa/cli/enclave_tls_server.py")]
        log = open(work / "workload.log", "wb")
        procs.append(subprocess.Popen([py, "-m", "eaa.cli.enclave_tls_server", "--ip", "127.0.0.1", "--port",
                                       str(wport), "--mutual", "--attester", "sim_sgx_ecdsa", "--trust-sim",
                                       *sum((["--measure", f] for f in program), [])],
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
        wait_port(wport, procs[-1])
        log = open(work / "inclavared.log", "wb")
        procs.append(subprocess.Popen([py, "-m", "eaa.cli.inclavared", "--listen", f"127.0.0.1:{iport}", "--xfer",
                                       f"127.0.0.1:{wport}", "--attester", "sim_sgx_ecdsa", "--verifier",
                                       "sgx_ecdsa_qve", "--mutual", "--trust-sim"],
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
        wait_port(iport, procs[-1])
        addr = f"tcp://127.0.0.1:{iport}"
        reference = work / "reference.toml"
        subprocess.run([py, "-m", "eaa.cli.shelter", "mrenclave", "--sim", *program, "-o", str(reference)], env=env,
                       check=True, capture_output=True)
        attest(env, addr, reference)  # warm the file cache

        def unloaded_phase() -> list[float]:
            times = []
            for _ in range(args.runs):
                ok, dt, err = attest(env, addr, reference)
                if not ok:
                    raise SystemExit(f"unloaded attestation failed: {err}")
                times.append(dt)
            return times

        before = unloaded_phase()

        sources = tuple(f"127.0.0.{2 + i}" for i in range(args.sources))
        attacker = Slowloris("127.0.0.1", iport if args.target == "inclavared" else wport, idle=args.idle,
                             reconnecting=args.reconnecting, sources=sources).start()
        held = attacker.wait_open()
        loaded, failures = [], []
        for _ in range(args.runs):
            ok, dt, err = attest(env, addr, reference)
            loaded.append(dt)
            if not ok:
                failures.append(err)
        stats = attacker.stats
        open_now = dict(stats.open_now)
        attacker.stop()
        attacker = None
        after = unloaded_phase()  # the machine may be busier or quieter than before: measure again
        base = statistics.median(before + after)

        out(f"attacker on {args.target}: {args.idle} idle + {args.reconnecting} reconnecting slowloris "
            f"connections from {len(sources)} addresses; {held} connected before the first run, open at the "
            f"end: {open_now}; {stats.opened} opened, {stats.closed_by_server} closed by {args.target}, "
            f"{stats.refused} refused")
        out(f"{'run':>3} {'before s':>9} {'loaded s':>9} {'after s':>8} {'loaded/unloaded median':>23}")
        for i, (b, ld, a) in enumerate(zip(before, loaded, after, strict=True), 1):
            out(f"{i:3d} {b:9.3f} {ld:9.3f} {a:8.3f} {ld / base:23.2f}")
        worst = max(loaded) / base
        summary = (f"median unloaded {base:.3f} s, median loaded {statistics.median(loaded):.3f} s "
                   f"(ratio {statistics.median(loaded) / base:.2f}), worst loaded {max(loaded):.3f} s "
                   f"(ratio {worst:.2f})")
        out(summary)
        out(f"succeeded under load: {args.runs - len(failures)} of {args.runs}; target: all, each within 2x "
            f"the unloaded median: {'met' if not failures and worst <= 2.0 else 'NOT met'}")
        for err in failures[:3]:
            out(f"failure: {err}")
        return not failures, summary
    finally:
        if attacker is not None:
            attacker.stop()
        stop_processes(procs)


# ---- make reliability: every measurement, and docs/reliability.md ----

def inputs_tried() -> list[str]:
    """What the suite and ``make fuzz`` feed the readers of untrusted bytes, and the mutation tests."""
    lines = ["| fuzz target | seed inputs | mutated inputs per `make test` (tests/test_fuzz_short.py) | "
             "corpus kept by `make fuzz` (fuzz/corpus/) |", "|---|---|---|---|"]
    try:
        sys.path.insert(0, str(ROOT / "tests"))
        import test_fuzz_short as short  # the targets and the examples the suite runs

        for name, target in sorted(short.fuzz_targets.TARGETS.items()):
            corpus = ROOT / "fuzz" / "corpus" / name
            kept = str(sum(1 for _ in corpus.iterdir())) if corpus.is_dir() else "no `make fuzz` run here"
            lines.append(f"| {name} | {len(list(target.seeds()))} | {short.EXAMPLES.get(name, 150)} | {kept} |")
    except Exception as e:  # noqa: BLE001 - e.g. the shared vectors are absent: say so in the document
        lines.append(f"| (targets not loaded: {type(e).__name__}) | | | |")
    counts = {}
    for test in ("test_fuzz_short.py", "test_mutations.py", "test_formats_property.py",
                 "test_certificate_robustness.py", "test_cli_bad_inputs.py"):
        r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", f"tests/{test}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
        counts[test] = sum(1 for ln in r.stdout.splitlines() if "::" in ln)
    lines += ["", "Test cases collected in the suite (each runs in `make test`):", ""]
    lines += [f"- tests/{t}: {n}" for t, n in counts.items()]
    lines += ["", "tests/test_mutations.py changes one byte at >= 200 positions of every signed or bound region of "
              "each verifiable quote vector, then the collateral, the expiry edges and the trust anchor: every "
              "change must make verification fail."]
    return lines


def md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def fault_rows(cases: list[faults.FaultCase], kill: faults.KillCase | None) -> tuple[list[str], bool]:
    rows = ["| fault | step | expected | outcome | s | shelter's error line |", "|---|---|---|---|---|---|"]
    met = True
    for case in cases:
        for step in case.steps:
            r = step.result
            rows.append(f"| PCCS {case.fault} | {step.what} | {step.expect} | {r.summary()}"
                        f"{'' if step.met else ' (NOT as expected)'} | {r.seconds:.1f} | "
                        f"{md_escape(r.lines[0][:200]) if r.lines else ''} |")
        rows.append(f"| PCCS {case.fault} | daemons afterwards | alive, no traceback | "
                    f"{'alive' if case.daemons_alive else 'DEAD'}, "
                    f"{'traceback logged' if case.daemon_tracebacks else 'no traceback'} | | |")
        met &= case.met
    if kill is not None:
        for what, o in (("workload SIGKILLed while a verifier in its handshake with inclavared waits for collateral",
                         kill.during), ("workload started again on its port", kill.after_restart)):
            if o is not None:
                rows.append(f"| workload killed | {what} | {'success' if o is kill.after_restart else 'typed failure'}"
                            f" | {o.summary()} | {o.seconds:.1f} | {md_escape(o.lines[0][:200]) if o.lines else ''} |")
        rows.append(f"| workload killed | inclavared afterwards | alive, no traceback | "
                    f"{'alive' if kill.inclavared_alive else 'DEAD'}, "
                    f"{'traceback logged' if kill.daemon_tracebacks else 'no traceback'} | | |")
        met &= kill.met
    return rows, met


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=int, default=500, help="silent connections (default 500)")
    ap.add_argument("--reconnecting", type=int, default=500, help="trickling, reconnecting connections (default 500)")
    ap.add_argument("--runs", type=int, default=20, help="sequential attestations per phase (default 20)")
    ap.add_argument("--sources", type=int, default=8, help="attacker source addresses 127.0.0.2.. (default 8)")
    ap.add_argument("--target", choices=("inclavared", "workload"), default="inclavared",
                    help="whose port the attacker holds (default inclavared, shelter's side)")
    ap.add_argument("--long", type=int, default=10_000, help="attestations in the long run (default 10000)")
    ap.add_argument("--long-warmup", type=int, default=300, help="attestations before the long run's first "
                    "measurement (default 300)")
    ap.add_argument("--shelters", type=int, default=16, help="concurrent shelters when SIGTERM comes (default 16)")
    ap.add_argument("--only", choices=("slowloris", "faults", "sigterm", "long"), action="append",
                    help="run only these parts (repeatable; default all)")
    ap.add_argument("--doc", type=Path, help="write the results as Markdown to this file (docs/reliability.md)")
    args = ap.parse_args()
    parts = set(args.only or ("slowloris", "faults", "sigterm", "long"))
    ok = True
    doc: list[str] = []

    def section(title: str) -> None:
        print(f"\n== {title}", flush=True)
        doc.extend(["", f"## {title}", ""])

    def out(line: str) -> None:
        print(line, flush=True)
        doc.append(line)

    started = datetime.now(timezone.utc)
    t_all = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="eaa-reliability-"))
    measured: list[str] = []
    if "slowloris" in parts:
        section("Slowloris: real attestations while inclavared holds idle and trickling connections")
        doc.append("```")
        passed, summary = slowloris_phase(args, out)
        doc.append("```")
        measured.append(f"| shelter attestation under {args.idle} idle + {args.reconnecting} reconnecting "
                        f"slowloris connections ({args.runs} runs) | {summary} |")
        ok &= passed
    if "faults" in parts:
        section("Faults survived")
        doc.append("Real processes on 127.0.0.1; every verifier (shelter, inclavared, the workload) trusts the "
                   "simulated root with `--trust-root` and fetches collateral through `EAA_PCCS_URL` from an HTTP "
                   "front of a real OFFLINE eaa-pccs holding the simulated platform's collateral (QCNL "
                   "`retry_times` 0, so a fault costs one request timeout of "
                   f"{faults.PCCS_TIMEOUT:.0f} s). Daemons start with empty caches for each PCCS fault; "
                   "\"slow\" answers only after "
                   f"{4 * faults.PCCS_TIMEOUT:.0f} s; \"corrupt\" changes one hex digit of the signature (JSON) or "
                   "the last byte (DER CRLs). Expected \"typed failure\": exit 1, one error line with an error "
                   "code, no traceback. The seconds include a Python start-up of shelter.")
        doc.append("")
        setup = faults.pccs_setup(work / "pccs")
        try:
            cases = []
            for fault in faults.FAULTS:
                cases.append(faults.pccs_fault_case(setup, work / "pccs", fault))
                for step in cases[-1].steps:
                    print(f"PCCS {fault}: {step.what}: {step.result.summary()} in {step.result.seconds:.1f} s")
            kill = faults.workload_killed_mid_handshake(setup, work / "pccs")
            print(f"workload killed mid-handshake: {kill.during.summary() if kill.during else '?'}; after its "
                  f"restart: {kill.after_restart.summary() if kill.after_restart else '?'}")
        finally:
            setup.stop()
        rows, met = fault_rows(cases, kill)
        doc.extend(rows)
        doc.extend(["", f"All as expected: {'yes' if met else 'NO'}."])
        ok &= met
    if "sigterm" in parts:
        section("SIGTERM under load")
        env = faults.base_env(work / "sigterm")
        case = faults.sigterm_under_load(work / "sigterm", env, shelters=args.shelters)
        out(f"{case.shelters} shelter processes started at once; SIGTERM sent to inclavared once it had served "
            f"one and held {case.in_flight} more descriptors than when idle.")
        out("")
        out(f"- inclavared exit status {case.exit_code}, {case.seconds:.3f} s after SIGTERM; traceback logged: "
            f"{'yes' if case.daemon_traceback else 'no'}")
        out(f"- shelters: {', '.join(f'{n} {k}' for k, n in sorted(case.shelter_outcomes.items()))}; "
            f"untyped failures: {case.untyped}")
        out("- a request a worker is serving is finished (up to 5 s); connections not yet in a request are "
            "closed, and their shelters report CONNECTION_CLOSED or TRANSPORT_ERROR.")
        measured.append(f"| inclavared exit after SIGTERM with {case.shelters} shelters in flight | "
                        f"{case.seconds:.3f} s, status {case.exit_code} |")
        ok &= case.met
    if "long" in parts:
        section(f"Long run: {args.long} sequential attestations")
        env = faults.base_env(work / "long")
        flow = faults.Flow(work / "long", env, ["--trust-sim"], name="long")
        try:
            run = faults.long_run(flow, args.long, warmup=args.long_warmup, samples=20)
            alive = flow.alive()
        finally:
            flow.stop()
        out(f"One in-process shelter (the real client code, without a Python start-up each time) attests the "
            f"simulated workload through inclavared {args.long_warmup} times to warm up, then {run.attestations} "
            f"times; inclavared's /proc/PID/fd and /proc/PID/status are read along the way.")
        out("")
        out(f"- failures: {run.failures}{' (first: ' + run.first_failure + ')' if run.failures else ''}; "
            f"inclavared alive afterwards: {'yes' if alive else 'NO'}")
        out(f"- {run.attestations} attestations in {run.seconds:.1f} s ({run.attestations / run.seconds:.0f}/s)")
        out(f"- file descriptors: {run.fds_start} at start, {run.fds_before} after the warm-up, "
            f"{run.fds_after} after the run")
        out(f"- VmRSS: {run.rss_start_kib / 1024:.1f} MiB at start, {run.rss_before_kib / 1024:.1f} MiB after the "
            f"warm-up, {run.rss_after_kib / 1024:.1f} MiB after the run "
            f"({(run.rss_after_kib - run.rss_before_kib) / 1024:+.1f} MiB); VmHWM {run.hwm_after_kib / 1024:.1f} MiB")
        out("")
        out("| attestations after the warm-up | fds | VmRSS MiB |")
        out("|---|---|---|")
        for n, fds, rss in run.samples:
            out(f"| {n} | {fds} | {rss / 1024:.1f} |")
        measured.append(f"| long run: {run.attestations} attestations, failures | {run.failures} |")
        measured.append(f"| inclavared fds after warm-up -> after the run | {run.fds_before} -> {run.fds_after} |")
        measured.append(f"| inclavared VmRSS after warm-up -> after the run | {run.rss_before_kib / 1024:.1f} -> "
                        f"{run.rss_after_kib / 1024:.1f} MiB (peak {run.hwm_after_kib / 1024:.1f} MiB) |")
        ok &= run.failures == 0 and alive and run.fds_after <= run.fds_before
    elapsed = time.monotonic() - t_all
    if args.doc:
        head = ["# Reliability", "",
                f"Written by `make reliability` (bench/reliability.py) on {started:%Y-%m-%d %H:%M} UTC in "
                f"{elapsed / 60:.1f} min, on a machine with {os.cpu_count()} CPUs shared with other work, "
                f"Python {sys.version.split()[0]}. Run: `python bench/reliability.py "
                f"{' '.join(sys.argv[1:])}`. Every number below is what that run measured; the suite asserts "
                "successes and error codes (tests/test_reliability.py, tests/test_faults.py), never times.", "",
                "## Inputs tried", ""]
        head += inputs_tried()
        if measured:
            head += ["", "## Numbers measured", "", "| what | measured |", "|---|---|", *measured]
        args.doc.write_text("\n".join(head + doc).rstrip() + "\n")
        print(f"\nwrote {args.doc}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
