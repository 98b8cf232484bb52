"""Fault injection on the real EAA flow: a faulty PCCS, a workload killed mid-handshake, SIGTERM under load,
and a long run watching inclavared's descriptors and memory.

Processes on 127.0.0.1: an enclave-tls-server and an inclavared with the simulated attester, and shelter as
a separate process each time. For the PCCS faults nobody trusts the simulation wholesale (no ``--trust-sim``,
which would take the simulated platform's collateral from its directory): every verifier trusts the simulated
root with ``--trust-root`` and fetches collateral through ``EAA_PCCS_URL`` from :class:`FaultyPccs`, an HTTP
front of a real OFFLINE ``eaa-pccs`` holding the simulated platform's collateral (``eaa sim collateral`` ->
``eaa-pccs import``), which can be told to be slow, down, corrupt or to hold a request.

The functions return what happened (exit codes, error codes, lines, seconds, counts); tests/test_faults.py
asserts on them and bench/reliability.py writes them to docs/reliability.md.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(1, str(ROOT / "tests"))

from eaa_flow import free_port  # noqa: E402

from _procs import Proc as Daemon  # noqa: E402 - one way to run a daemon, shared with the tests
from _procs import sim_env  # noqa: E402

# What the workload measures by default (its own program files): shelter's reference values come from these.
PROGRAM = [str(ROOT / "src/eaa" / rel) for rel in ("services/workload.py", "cli/enclave_tls_server.py")]
PCCS_TIMEOUT = 10.0  # the collateral client's per-request timeout (eaa.collateral.pcs.PcsClient's default)
HANG_GUARD = 120.0  # no single shelter run may take longer: a hang, not a slow machine
FAULTS = ("down", "slow", "corrupt")
_CODE = re.compile(r"\[([A-Z][A-Z0-9_]+)\]")


# ---- a PCCS that misbehaves on request ----

def corrupt_body(body: bytes) -> bytes:
    """The same response with its signature changed: JSON keeps its shape (one hex digit of the last
    ``signature`` differs), DER keeps parsing (the last byte, inside the signature value, differs)."""
    if body.lstrip().startswith(b"{"):
        marker = b'"signature":"'
        i = body.rfind(marker)
        if i >= 0:
            j = i + len(marker) + 5
            return body[:j] + (b"1" if body[j:j + 1] == b"0" else b"0") + body[j + 1:]
    return body[:-1] + bytes([body[-1] ^ 0x01]) if body else body


class FaultyPccs:
    """An HTTP front for a real PCCS at ``upstream``: ``fault`` None forwards, ``"slow"`` answers only after
    ``slow`` seconds (beyond the client's timeout), ``"corrupt"`` changes a signature, ``"hold"`` keeps each
    request until :meth:`release`, and ``"down"`` stops listening (the port refuses connections)."""

    def __init__(self, upstream: str, *, port: int | None = None, slow: float = 4 * PCCS_TIMEOUT) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.slow = slow
        self.fault: str | None = None
        self.requests = 0
        self.held = threading.Event()  # a request arrived in "hold"
        self._release = threading.Event()
        self._stopping = threading.Event()
        self._client = httpx.Client(timeout=30)
        self._server: http.server.ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def start(self) -> FaultyPccs:
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server interface
                front._serve(self)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._stopping.clear()
        threading.Thread(target=server.serve_forever, name="faulty-pccs", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        self.stop()
        self._client.close()

    def set_fault(self, fault: str | None) -> None:
        """Switch behaviour; ``"down"`` stops listening and anything else starts again when it was down."""
        if fault == "down":
            self.stop()
        elif self._server is None:
            self.start()
        self._release.set()  # whatever was held goes on, under the new behaviour
        self.held, self._release = threading.Event(), threading.Event()
        self.fault = None if fault == "down" else fault

    def _serve(self, h: http.server.BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests += 1
        fault, held, release = self.fault, self.held, self._release
        if fault == "slow":
            self._stopping.wait(self.slow)
        elif fault == "hold":
            held.set()
            release.wait(HANG_GUARD)
            fault = self.fault
        try:
            r = self._client.get(self.upstream + h.path)
        except httpx.HTTPError:
            h.send_error(502)
            return
        body = corrupt_body(r.content) if fault == "corrupt" and r.status_code == 200 else r.content
        try:
            h.send_response(r.status_code)
            for name, value in r.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    h.send_header(name, value)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except OSError:  # the client gave up (timed out) first
            pass


# ---- the processes ----

@dataclass
class Outcome:
    """One shelter process: exit status, the error code it printed, its error lines, and its duration."""

    rc: int
    code: str
    lines: list[str]
    seconds: float
    traceback: bool

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def summary(self) -> str:
        return "success" if self.ok else f"exit {self.rc}, {self.code or 'no code'}"


def base_env(work: Path) -> dict[str, str]:
    """A new simulated platform under ``work``; nothing trusted, debugged or configured by inheritance."""
    env = sim_env(work)
    for name in ("EAA_PCCS_URL", "EAA_QCNL_CONF", "QCNL_CONF_PATH"):
        env.pop(name, None)
    env["EAA_COLLATERAL_CACHE_DIR"] = "none"  # daemons: memory cache only, empty at start
    return env


def eaa(env: dict[str, str], *args: str, module: str = "eaa.cli.eaa") -> str:
    r = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True,
                       timeout=HANG_GUARD)
    if r.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args[:2])}: {r.stderr.strip()[-500:]}")
    return r.stdout


class Flow:
    """enclave-tls-server and inclavared (both ``--mutual``, simulated attester) and shelter runs against them.

    ``trust`` are the verifiers' trust flags: ``["--trust-sim"]`` (simulated collateral from the platform's
    directory) or ``["--trust-root", root]`` (collateral from the PCCS in ``env``)."""

    def __init__(self, work: Path, env: dict[str, str], trust: list[str], name: str = "flow") -> None:
        self.work, self.env, self.trust, self.name = work, env, trust, name
        self.wport, self.iport = free_port(), free_port()
        self.addr = f"tcp://127.0.0.1:{self.iport}"
        self.reference = work / "reference.toml"
        if not self.reference.exists():
            eaa(env, "mrenclave", "--sim", *PROGRAM, "-o", str(self.reference), module="eaa.cli.shelter")
        self.workload: Daemon | None = None
        self.inclavared: Daemon | None = None
        self.start_workload()
        try:
            self.inclavared = Daemon("eaa.cli.inclavared", [
                "--listen", f"127.0.0.1:{self.iport}", "--xfer", f"127.0.0.1:{self.wport}", "--attester",
                "sim_sgx_ecdsa", "--verifier", "sgx_ecdsa_qve", "--mutual", *trust], env,
                work / f"{name}-inclavared.log", self.iport)
        except Exception:
            self.stop()
            raise

    def start_workload(self) -> None:
        again = "-again" if self.workload is not None else ""
        self.workload = Daemon("eaa.cli.enclave_tls_server", [
            "--ip", "127.0.0.1", "--port", str(self.wport), "--mutual", "--attester", "sim_sgx_ecdsa", *self.trust],
            self.env, self.work / f"{self.name}-workload{again}.log", self.wport)

    def shelter_argv(self, timeout: float = 10.0) -> list[str]:
        return [sys.executable, "-m", "eaa.cli.shelter", "remoteattestation", "--addr", self.addr, *self.trust,
                "--reference", str(self.reference), "--timeout", str(timeout)]

    def shelter(self, cache: Path | None = None, timeout: float = 10.0) -> Outcome:
        env = dict(self.env, EAA_COLLATERAL_CACHE_DIR=str(cache) if cache else "none")
        t0 = time.monotonic()
        r = subprocess.run(self.shelter_argv(timeout), env=env, capture_output=True, text=True, timeout=HANG_GUARD)
        return outcome(r.returncode, r.stdout, r.stderr, time.monotonic() - t0)

    def alive(self) -> bool:
        return all(d is not None and d.alive() for d in (self.workload, self.inclavared))

    def stop(self) -> None:
        for d in (self.inclavared, self.workload):
            if d is not None:
                d.stop()


def outcome(rc: int, stdout: str, stderr: str, seconds: float) -> Outcome:
    """shelter's result: its error lines are those that are neither warnings nor empty."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("WARNING:")]
    m = _CODE.search(" ".join(lines))
    return Outcome(rc, m.group(1) if m else "", lines, seconds, "Traceback" in stderr + stdout)


# ---- PCCS faults ----

@dataclass
class PccsSetup:
    env: dict[str, str]  # the daemons' and shelter's environment: EAA_PCCS_URL is the faulty front
    trust: list[str]
    pccs: Daemon  # the real eaa-pccs
    front: FaultyPccs
    warm_cache: Path  # a collateral cache already holding the simulated platform's collateral

    def stop(self) -> None:
        self.front.close()
        self.pccs.stop()


def pccs_setup(work: Path) -> PccsSetup:
    """A simulated platform's collateral in a real OFFLINE eaa-pccs, behind a :class:`FaultyPccs`."""
    env = base_env(work)
    sim = env["EAA_SIM_DIR"]
    root = work / "root.pem"
    eaa(env, "sim", "collateral", "--dir", sim, "--tee", "sgx", "-o", str(work / "collateral"))
    eaa(env, "sim", "root", "--dir", sim, "-o", str(root))
    db = work / "pccs.sqlite3"
    eaa(env, "import", str(work / "collateral"), "--db", str(db), "--trust-root", str(root),
        module="eaa.cli.pccs_server")
    port = free_port()
    pccs = Daemon("eaa.cli.pccs_server", ["serve", "--mode", "offline", "--insecure-http", "--listen",
                                          f"127.0.0.1:{port}", "--db", str(db), "--trust-root", str(root), "--no-kds"],
                  env, work / "pccs.log", port)
    front = FaultyPccs(f"http://127.0.0.1:{port}").start()
    # One attempt per request, as a deployment with retry_times 0 would: a fault costs one timeout, not three.
    qcnl = work / "qcnl.conf"
    qcnl.write_text(json.dumps({"pccs_url": front.url + "/sgx/certification/v4/", "use_secure_cert": False,
                                "retry_times": 0}))
    env.update(EAA_PCCS_URL=front.url, EAA_QCNL_CONF=str(qcnl))
    # shelter's warm cache: filled by verifying a simulated quote through the real eaa-pccs
    warm = work / "warm-cache"
    eaa(env, "sim", "quote", "--dir", sim, "--tee", "sgx", "--report-data", "aa" * 64, "-o", str(work / "q.bin"))
    eaa(dict(env, EAA_PCCS_URL=f"http://127.0.0.1:{port}", EAA_COLLATERAL_CACHE_DIR=str(warm)),
        "verify-quote", str(work / "q.bin"), "--trust-root", str(root))
    return PccsSetup(env, ["--trust-root", str(root)], pccs, front, warm)


@dataclass
class Step:
    what: str
    expect: str  # "success" or "typed failure"
    result: Outcome

    @property
    def met(self) -> bool:
        r = self.result
        if r.traceback:
            return False
        if self.expect == "success":
            return r.ok
        return r.rc == 1 and bool(r.code) and len(r.lines) == 1


@dataclass
class FaultCase:
    fault: str
    steps: list[Step] = field(default_factory=list)
    daemons_alive: bool = False
    daemon_tracebacks: bool = False

    @property
    def met(self) -> bool:
        return self.daemons_alive and not self.daemon_tracebacks and all(s.met for s in self.steps)


def pccs_fault_case(setup: PccsSetup, work: Path, fault: str) -> FaultCase:
    """Fresh daemons (empty collateral caches) while the PCCS is ``fault``; then the PCCS recovers; then it
    fails again once everything is cached. Each shelter run's outcome is recorded."""
    case = FaultCase(fault)
    setup.front.set_fault(fault)
    flow = Flow(work, setup.env, setup.trust, name=f"pccs-{fault}")
    try:
        n = 0

        def cold() -> Path:
            nonlocal n
            n += 1
            return work / f"cold-{fault}-{n}"

        # shelter fetches for its check of inclavared's certificate first: its own fetch fails
        case.steps.append(Step("shelter with an empty cache", "typed failure", flow.shelter(cold())))
        # shelter holds the collateral: now the daemons' checks of each other are what fail
        case.steps.append(Step("shelter with a warm cache, daemons with empty caches", "typed failure",
                               flow.shelter(setup.warm_cache, timeout=3 * PCCS_TIMEOUT)))
        setup.front.set_fault(None)
        case.steps.append(Step("PCCS recovered: same daemons, shelter with an empty cache", "success",
                               flow.shelter(cold())))
        setup.front.set_fault(fault)
        case.steps.append(Step(f"PCCS {fault} again, all caches filled", "success",
                               flow.shelter(setup.warm_cache)))
        case.daemons_alive = flow.alive()
    finally:
        setup.front.set_fault(None)
        flow.stop()
        assert flow.inclavared is not None and flow.workload is not None
        case.daemon_tracebacks = any("Traceback" in d.output() for d in (flow.inclavared, flow.workload))
    return case


# ---- the workload killed in the middle of a handshake ----

@dataclass
class KillCase:
    killed_mid_handshake: bool
    during: Outcome | None
    after_restart: Outcome | None
    inclavared_alive: bool
    daemon_tracebacks: bool

    @property
    def met(self) -> bool:
        d, a = self.during, self.after_restart
        return (self.killed_mid_handshake and d is not None and not d.ok and bool(d.code) and len(d.lines) == 1
                and not d.traceback and a is not None and a.ok and self.inclavared_alive
                and not self.daemon_tracebacks)


def workload_killed_mid_handshake(setup: PccsSetup, work: Path) -> KillCase:
    """inclavared and the workload authenticate each other through the PCCS: the front holds the first
    collateral request, which one of them makes inside their handshake, and the workload is SIGKILLed then."""
    setup.front.set_fault("hold")
    flow = Flow(work, setup.env, setup.trust, name="kill")
    during = after = None
    killed = False
    try:
        env = dict(setup.env, EAA_COLLATERAL_CACHE_DIR=str(setup.warm_cache))
        t0 = time.monotonic()
        sh = subprocess.Popen(flow.shelter_argv(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        try:
            killed = setup.front.held.wait(60)
            assert flow.workload is not None
            flow.workload.stop(signal.SIGKILL)
            setup.front.set_fault(None)  # releases the held request: the handshake goes on, to a dead peer
            out, err = sh.communicate(timeout=HANG_GUARD)
        finally:
            if sh.poll() is None:
                sh.kill()
                sh.wait()
        during = outcome(sh.returncode, out, err, time.monotonic() - t0)
        flow.start_workload()  # back on the same port
        after = flow.shelter(setup.warm_cache)
        alive = flow.inclavared is not None and flow.inclavared.alive()
    finally:
        setup.front.set_fault(None)
        flow.stop()
    assert flow.inclavared is not None
    return KillCase(killed, during, after, alive, "Traceback" in flow.inclavared.output())


# ---- SIGTERM while shelters are being served ----

@dataclass
class SigtermCase:
    shelters: int
    in_flight: int  # inclavared's descriptors above its idle count when the signal was sent
    exit_code: int
    seconds: float  # from SIGTERM to inclavared's exit
    shelter_outcomes: dict[str, int]
    untyped: int  # shelter runs that failed without an error code or with a traceback
    daemon_traceback: bool

    @property
    def met(self) -> bool:
        return self.exit_code == 0 and self.untyped == 0 and not self.daemon_traceback


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of ``pid`` in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def sigterm_under_load(work: Path, env: dict[str, str], shelters: int = 16) -> SigtermCase:
    """``shelters`` shelter processes at once; SIGTERM to inclavared once it has served one and holds
    connections of the others."""
    flow = Flow(work, env, ["--trust-sim"], name="sigterm")
    procs: list[subprocess.Popen[str]] = []
    try:
        assert flow.inclavared is not None
        pid = flow.inclavared.p.pid
        idle = fd_count(pid)
        procs = [subprocess.Popen(flow.shelter_argv(), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(shelters)]
        deadline = time.monotonic() + 60
        in_flight = 0
        while time.monotonic() < deadline:
            in_flight = fd_count(pid) - idle
            if "result=ok" in flow.inclavared.output() and in_flight > 0:
                break
            time.sleep(0.02)
        t0 = time.monotonic()
        flow.inclavared.p.send_signal(signal.SIGTERM)
        try:
            code = flow.inclavared.p.wait(30)
        except subprocess.TimeoutExpired:
            code = -1
        seconds = time.monotonic() - t0
        outcomes: dict[str, int] = {}
        untyped = 0
        for p in procs:
            out, err = p.communicate(timeout=HANG_GUARD)
            o = outcome(p.returncode, out, err, 0.0)
            outcomes[o.summary()] = outcomes.get(o.summary(), 0) + 1
            if o.traceback or (not o.ok and not o.code):
                untyped += 1
        return SigtermCase(shelters, in_flight, code, seconds, outcomes, untyped,
                           "Traceback" in flow.inclavared.output())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        flow.stop()


# ---- a long run ----

@dataclass
class LongRun:
    attestations: int
    failures: int
    first_failure: str
    fds_before: int
    fds_after: int
    rss_before_kib: int
    rss_after_kib: int
    hwm_before_kib: int
    hwm_after_kib: int
    seconds: float
    samples: list[tuple[int, int, int]]  # (attestations done, fds, VmRSS KiB)
    warmup: int = 0
    fds_start: int = 0  # before the warm-up
    rss_start_kib: int = 0


def settle_fds(pid: int, at_most: int, timeout: float = 10.0) -> int:
    """inclavared's descriptor count once its last connections are closed (or whatever it is after ``timeout``)."""
    deadline = time.monotonic() + timeout
    n = fd_count(pid)
    while n > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
        n = fd_count(pid)
    return n


def long_run(flow: Flow, count: int, warmup: int = 20, samples: int = 10) -> LongRun:
    """``count`` sequential attestations by one in-process shelter (the real client code, without a Python
    start-up per attestation), after ``warmup`` ones; inclavared's descriptors and memory before and after."""
    from eaa.policy import Policy, ReferenceValues
    from eaa.services.shelter import Shelter, ShelterOptions
    from eaa.sim import measure_files
    from eaa.tls import TlsConfig

    assert flow.inclavared is not None
    pid = flow.inclavared.p.pid
    policy = Policy(reference=ReferenceValues.from_mapping({"mrenclave": measure_files(PROGRAM).hex()}))
    tls = TlsConfig(verifier="sgx_ecdsa", trust_simulation=True, sim_dir=flow.env["EAA_SIM_DIR"],
                    policy=policy.without_reference())
    shelter = Shelter(ShelterOptions(tls=tls, policy=policy, timeout=30))
    failures, first = 0, ""

    def one() -> None:
        nonlocal failures, first
        r = shelter.attest(flow.addr)
        if not r.ok:
            failures += 1
            first = first or f"{r.error_code}: {r.error}"

    fds_start, rss_start = fd_count(pid), memory_kib(pid)["VmRSS"]
    for _ in range(warmup):
        one()
    fds0 = fd_count(pid)
    mem0 = memory_kib(pid)
    points = [(0, fds0, mem0["VmRSS"])]
    every = max(1, count // samples)
    t0 = time.monotonic()
    for i in range(1, count + 1):
        one()
        if i % every == 0 or i == count:
            points.append((i, fd_count(pid), memory_kib(pid)["VmRSS"]))
    seconds = time.monotonic() - t0
    fds1 = settle_fds(pid, fds0)
    mem1 = memory_kib(pid)
    return LongRun(count, failures, first, fds0, fds1, mem0["VmRSS"], mem1["VmRSS"], mem0["VmHWM"], mem1["VmHWM"],
                   seconds, points, warmup, fds_start, rss_start)
