"""Full remote attestations through inclavared, one process against N: attestations/s, p50/p99, ratio.

Two copies of the flow run side by side on loopback, each a simulated platform's enclave-tls-server
and inclavared with the seed's flags (simulated attesters): one with ``--processes 1`` for both
daemons, one with ``--processes N`` (default: the CPUs this process may run on). Shelter clients run
in separate client processes (as many as CPUs, the concurrent shelters split among them), so their
own verification is not serialised by the benchmark's interpreter lock; each client process keeps
one ``Shelter`` (its verifier's caches warm, as a long-running verifier's) and does complete v2
attestations (attested TLS to inclavared, fresh nonce, the workload's evidence verified again,
reference values compared). Each concurrency level is measured for both configurations alternately
(their order reversed every round); the table gives each cell's median rate with its range over the
rounds, p50/p99 over all its attestations, and the ratio of N processes to one (median of the
rounds' ratios, and their range).

The clients share the machine's cores with the daemons, so on a machine with few cores the clients'
own work (and anything else running) limits what any number of server processes can show as a rate.
The benchmark therefore also reports where the CPU went, from /proc, per cell: the cores used by each
daemon and by the clients (CPU seconds per second of measurement), and the daemons' CPU time per
attestation (inclavared plus the workload, in ms), which does not depend on who else shares the
cores; and it checks that the multi-process daemons do use more than one core (inclavared and the
workload together above 1.0, and inclavared alone). ``--client-cpus 0`` (a list such as ``0,1``)
pins the client processes to those CPUs (``os.sched_setaffinity``) and ``--daemon-cpus`` the
daemons, to give the daemons cores of their own on a machine that has enough; on a 2-core machine
pinning only moves the contention, so by default nothing is pinned.

Run: ``python bench/eaa_flow.py [--seconds S] [--rounds R] [--clients 1,16,64] [--processes N]
[--client-cpus LIST] [--daemon-cpus LIST]``
(``make bench`` runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

WARMUP = 16  # attestations per client process and flow before measuring
PROGRAM = [str(ROOT / "src/eaa/services/workload.py"), str(ROOT / "src/eaa/cli/enclave_tls_server.py")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a server exited early with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


def stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each, then wait; kill what does not stop within 20 s."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (Linux: /proc/PID/task/PID/children)."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    return [pid, *(int(k) for k in kids)]


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of ``pids`` so far (Linux /proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ---- client processes ----

def relay_attest(addr: str) -> tuple[bool, str]:
    """One request of the shelter protocol without shelter's own checks: plain TLS (OpenSSL in C, no
    evidence verified), a fresh nonce, and inclavared's reply, which counts when inclavared verified the
    workload's fresh evidence for that nonce. Nearly all the CPU it costs is the daemons'."""
    import ssl

    from eaa.errors import EaaError
    from eaa.services import protocol

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    host, port = addr.removeprefix("tcp://").rsplit(":", 1)
    nonce = os.urandom(protocol.NONCE_SIZE)
    try:
        with socket.create_connection((host, int(port)), timeout=60) as raw, ctx.wrap_socket(raw) as s:
            s.sendall(protocol.make_request(nonce))
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
        info = protocol.parse_enclaveinfo_v2(data)
    except (OSError, ValueError, EaaError) as e:
        return False, f"{type(e).__name__}: {e}"
    if info.nonce != nonce or not info.verdict.ok:
        return False, f"[{info.verdict.error_code}] {info.verdict.error}"
    return True, ""


def parse_cpus(text: str | None) -> set[int] | None:
    return {int(x) for x in text.split(",") if x.strip()} if text else None


def client_main(sim_dir: str, load: str, addresses: list[str]) -> int:
    """A client process: commands on stdin (JSON lines), results on stdout. Warms up against every flow."""
    pin = parse_cpus(os.environ.get("EAA_BENCH_CLIENT_CPUS"))
    if pin:
        os.sched_setaffinity(0, pin)
    from eaa.policy import Policy, ReferenceValues
    from eaa.services.shelter import Shelter, ShelterOptions
    from eaa.sim import load_platform, measure_files

    platform = load_platform(Path(sim_dir))
    policy = Policy(reference=ReferenceValues.from_mapping({"mrenclave": measure_files(PROGRAM).hex(),
                                                            "mrsigner": platform.mrsigner.hex()}))
    from eaa.tls import TlsConfig

    tls = TlsConfig(verifier="sgx_ecdsa", trust_simulation=True, sim_dir=sim_dir, policy=policy.without_reference(),
                    timeout=60, max_message=4 << 20)
    shelter = Shelter(ShelterOptions(tls=tls, policy=policy, timeout=60))

    def attest(addr: str) -> tuple[bool, str]:
        if load == "relay":
            return relay_attest(addr)
        r = shelter.attest(addr)
        return r.ok, f"[{r.error_code}] {r.error}"

    for addr in addresses:  # enough that every process of every daemon has served (its caches warm)
        for _ in range(WARMUP):
            ok, error = attest(addr)
            if not ok:
                print(json.dumps({"error": error}), flush=True)
                return 1
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + cmd["seconds"]

        def run_client(stop_at: float = stop_at, addr: str = cmd["addr"], lock: threading.Lock = lock,
                       latencies: list[float] = latencies, errors: list[str] = errors) -> None:
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                ok, error = attest(addr)
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    if ok:
                        latencies.append(dt)
                    else:
                        errors.append(error)

        threads = [threading.Thread(target=run_client) for _ in range(cmd["threads"])]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps({"latencies": latencies, "errors": errors[:3], "n_errors": len(errors),
                          "elapsed": time.monotonic() - t0}), flush=True)
    return 0


class Clients:
    """Client processes, each running some of the concurrent shelters."""

    def __init__(self, count: int, sim_dir: str, load: str, addresses: list[str], env: dict[str, str]) -> None:
        self.procs = [subprocess.Popen([sys.executable, __file__, "--client", sim_dir, load, *addresses], env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                      for _ in range(count)]
        for p in self.procs:
            reply = json.loads(self._read(p))
            if "ready" not in reply:
                raise SystemExit(f"a client cannot attest: {reply.get('error')}")

    @staticmethod
    def _read(p: subprocess.Popen[str]) -> str:
        assert p.stdout is not None
        line = p.stdout.readline()
        if not line:
            raise SystemExit(f"a client process exited with status {p.wait()}")
        return line

    def run(self, addr: str, concurrency: int, seconds: float) -> tuple[float, list[float], int, list[str]]:
        """``concurrency`` shelters for ``seconds``: attestations/s, latencies (ms), errors and examples."""
        shares = [concurrency // len(self.procs) + (i < concurrency % len(self.procs)) for i in range(len(self.procs))]
        busy = [(p, n) for p, n in zip(self.procs, shares, strict=True) if n]
        for p, n in busy:
            assert p.stdin is not None
            p.stdin.write(json.dumps({"addr": addr, "threads": n, "seconds": seconds}) + "\n")
            p.stdin.flush()
        latencies: list[float] = []
        n_errors, examples, elapsed = 0, [], 0.0
        for p, _ in busy:
            res = json.loads(self._read(p))
            latencies += res["latencies"]
            n_errors += res["n_errors"]
            examples += res["errors"]
            elapsed = max(elapsed, res["elapsed"])
        return len(latencies) / elapsed, latencies, n_errors, examples

    def cpu(self) -> float:
        """CPU seconds used so far by the client processes (all their threads)."""
        return cpu_seconds([p.pid for p in self.procs])

    def close(self) -> None:
        for p in self.procs:
            if p.stdin is not None:
                p.stdin.close()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


# ---- the daemons ----

@dataclass
class Flow:
    processes: int
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    addr: str = ""

    def start(self, env: dict[str, str], cpus: set[int] | None = None) -> Flow:
        py = sys.executable
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None  # noqa: E731 - inherited by children
        wport, iport = free_port(), free_port()
        n = ["--processes", str(self.processes)]
        workload = subprocess.Popen([py, "-m", "eaa.cli.enclave_tls_server", "--ip", "127.0.0.1", "--port",
                                     str(wport), "--mutual", "--attester", "sim_sgx_ecdsa", "--trust-sim",
                                     "--log-level", "error", *n, *sum((["--measure", p] for p in PROGRAM), [])],
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pin)
        self.procs.append(workload)
        wait_port(wport, workload)
        inclavared = subprocess.Popen([py, "-m", "eaa.cli.inclavared", "--listen", f"127.0.0.1:{iport}", "--xfer",
                                       f"127.0.0.1:{wport}", "--attester", "sim_sgx_ecdsa", "--verifier",
                                       "sgx_ecdsa_qve", "--mutual", "--trust-sim", "--log-level", "error",
                                       "--max-connections", "256", *n],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      preexec_fn=pin)
        self.procs.append(inclavared)
        wait_port(iport, inclavared)
        self.addr = f"tcp://127.0.0.1:{iport}"
        return self

    def cpu(self) -> tuple[float, float]:
        """CPU seconds used so far by the workload's and inclavared's processes."""
        return cpu_seconds(process_tree(self.procs[0].pid)), cpu_seconds(process_tree(self.procs[1].pid))

    def child_cpu(self) -> dict[str, dict[int, float]]:
        """CPU seconds so far of each serving process (the children when there are several)."""
        out = {}
        for name, proc in (("workload", self.procs[0]), ("inclavared", self.procs[1])):
            pids = process_tree(proc.pid)
            out[name] = {pid: cpu_seconds([pid]) for pid in (pids[1:] or pids)}
        return out

    def inclavared_rss(self) -> float:
        """The largest peak RSS among inclavared's processes (MiB)."""
        return max(peak_rss_mib(pid) for pid in process_tree(self.procs[1].pid))


@dataclass
class Cell:
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    examples: list[str] = field(default_factory=list)
    workload_cores: list[float] = field(default_factory=list)  # CPU seconds per second of the cell
    inclavared_cores: list[float] = field(default_factory=list)
    client_cores: list[float] = field(default_factory=list)
    daemon_ms: list[float] = field(default_factory=list)  # daemons' CPU ms per attestation (both daemons)

    def daemon_cores(self) -> list[float]:
        return [a + b for a, b in zip(self.inclavared_cores, self.workload_cores, strict=True)]


def fmt_range(values: list[float], spec: str = ".1f") -> str:
    return f"{statistics.median(values):{spec}} [{min(values):{spec}}-{max(values):{spec}}]"


LOADS = {
    "shelter": "shelter clients: every attestation verified in full by the client too",
    "relay": "relay clients: the shelter protocol over plain TLS, inclavared's verdict counted, no client-side "
             "verification (so the daemons' work dominates)",
}


def measure(load: str, flows: list[Flow], configs: list[int], levels: list[int], args: argparse.Namespace,
            sim_dir: str, env: dict[str, str]) -> tuple[dict[tuple[int, int], Cell], dict[int, list[float]]]:
    """Every (concurrency, processes) cell once per round, the configurations alternately."""
    clients = Clients(args.client_processes, sim_dir, load, [f.addr for f in flows], env)
    try:
        cells = {(n, p): Cell() for n in levels for p in configs}
        ratios: dict[int, list[float]] = {n: [] for n in levels}
        for rnd in range(args.rounds):
            for n in levels:
                order = list(zip(configs, flows, strict=True))
                if rnd % 2:
                    order.reverse()
                rates = {}
                for p, flow in order:
                    cpu0, ccpu0, t0 = flow.cpu(), clients.cpu(), time.monotonic()
                    rate, lat, nerr, examples = clients.run(flow.addr, n, args.seconds)
                    cpu1, ccpu1, wall = flow.cpu(), clients.cpu(), time.monotonic() - t0
                    cell = cells[(n, p)]
                    cell.workload_cores.append((cpu1[0] - cpu0[0]) / wall)
                    cell.inclavared_cores.append((cpu1[1] - cpu0[1]) / wall)
                    cell.client_cores.append((ccpu1 - ccpu0) / wall)
                    if lat:
                        cell.daemon_ms.append(1000 * (cpu1[0] - cpu0[0] + cpu1[1] - cpu0[1]) / len(lat))
                    cell.rates.append(rate)
                    cell.latencies += lat
                    cell.errors += nerr
                    cell.examples += examples
                    rates[p] = rate
                ratios[n].append(rates[configs[1]] / rates[configs[0]] if rates[configs[0]] else float("nan"))
        return cells, ratios
    finally:
        clients.close()


def print_table(load: str, cells: dict[tuple[int, int], Cell], ratios: dict[int, list[float]], configs: list[int],
                levels: list[int]) -> bool:
    """The table and whether N processes beat one at 16 and more shelters."""
    print(f"\n{LOADS[load]}")
    print(f"{'shelters':>8} {'procs':>5} {'attest/s median [range]':>24} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
          f" {'ratio to 1 process':>19} {'cores used: inclavared':>22} {'workload':>8} {'daemons':>7}"
          f" {'clients':>7} {'daemon CPU ms/attest':>20}")
    for n in levels:
        for p in configs:
            c = cells[(n, p)]
            ratio = fmt_range(ratios[n], ".2f") if p != configs[0] else "1"
            p50 = statistics.median(c.latencies) if c.latencies else float("nan")
            ms = fmt_range(c.daemon_ms) if c.daemon_ms else "-"
            print(f"{n:8d} {p:5d} {fmt_range(c.rates):>24} {p50:7.1f} {percentile(c.latencies, 0.99):7.1f} "
                  f"{c.errors:6d} {ratio:>19} {statistics.median(c.inclavared_cores):22.2f} "
                  f"{statistics.median(c.workload_cores):8.2f} {statistics.median(c.daemon_cores()):7.2f} "
                  f"{statistics.median(c.client_cores):7.2f} {ms:>20}"
                  + (f"  e.g. {c.examples[0]}" if c.examples else ""))
    loaded = [n for n in levels if n >= 16]
    met = bool(loaded) and all(statistics.median(ratios[n]) > 1.0 for n in loaded)
    print(f"target: {configs[1]} processes attest faster than 1 (median ratio > 1 at "
          f"{', '.join(map(str, loaded)) or '16/64'} shelters): {'met' if met else 'NOT met'}")
    above = [n for n in loaded if statistics.median(cells[(n, configs[1])].inclavared_cores) > 1.0]
    print(f"inclavared with {configs[1]} processes used more than one core at "
          f"{', '.join(map(str, above)) or 'none'} of {', '.join(map(str, loaded)) or '-'} shelters")
    both = {n: max(cells[(n, configs[1])].daemon_cores()) for n in loaded}
    print(f"the daemons with {configs[1]} processes used more than one core together (peak over the rounds): "
          + (", ".join(f"{both[n]:.2f} at {n}" for n in loaded) or "-")
          + f": {'yes' if any(v > 1.0 for v in both.values()) else 'no'}")
    for n in loaded:
        one, many = cells[(n, configs[0])], cells[(n, configs[1])]
        if one.daemon_ms and many.daemon_ms:
            print(f"{n} shelters: daemon CPU per attestation {statistics.median(one.daemon_ms):.1f} ms with 1 process, "
                  f"{statistics.median(many.daemon_ms):.1f} ms with {configs[1]}; the clients used "
                  f"{statistics.median(many.client_cores):.2f} cores of {cpus()}")
    top = max(levels)
    print(f"target: no errors at {top} shelters: "
          f"{'met' if all(cells[(top, p)].errors == 0 for p in configs) else 'NOT met'}")
    return met


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        return client_main(sys.argv[2], sys.argv[3], sys.argv[4:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each measures every cell once (default 3)")
    ap.add_argument("--clients", default="1,16,64", help="concurrent shelters (default 1,16,64)")
    ap.add_argument("--processes", type=int, default=cpus(), help="processes of the multi-process flow "
                    "(default: the CPUs available)")
    ap.add_argument("--client-processes", type=int, default=cpus(), help="client processes (default: CPUs)")
    ap.add_argument("--client-cpus", help="pin the client processes to these CPUs (e.g. 0 or 0,1)")
    ap.add_argument("--daemon-cpus", help="pin the daemons (every process of both flows) to these CPUs")
    ap.add_argument("--load", default="shelter,relay", help="client kinds, tables in this order: shelter "
                    "(full verification by the client) and/or relay (default shelter,relay)")
    args = ap.parse_args()
    levels = [int(x) for x in args.clients.split(",")]
    loads = [x for x in args.load.split(",") if x]
    if any(x not in LOADS for x in loads):
        ap.error(f"--load takes {', '.join(LOADS)}")

    from eaa.sim import init_platform

    work = Path(tempfile.mkdtemp(prefix="eaa-bench-"))
    env = dict(os.environ, EAA_SIM_DIR=str(work / "sim"))
    env.pop("EAA_DEBUG", None)
    if args.client_cpus:
        env["EAA_BENCH_CLIENT_CPUS"] = args.client_cpus
    init_platform(work / "sim")
    configs = [1, args.processes]
    flows: list[Flow] = []
    results = []
    load_before = os.getloadavg()
    try:
        for p in configs:
            flows.append(Flow(p).start(env, parse_cpus(args.daemon_cpus)))
        split0 = flows[1].child_cpu()
        for load in loads:
            results.append((load, *measure(load, flows, configs, levels, args, str(work / "sim"), env)))
        split1 = flows[1].child_cpu()
        rss = [f.inclavared_rss() for f in flows]
    finally:
        for f in flows:
            stop_processes(f.procs)
    load_after = os.getloadavg()

    n_cpu = cpus()
    print(f"EAA flow: shelter -> inclavared -> enclave-tls-server (mutual), simulated SGX; {n_cpu} CPUs "
          f"(os.cpu_count() {os.cpu_count()}); {args.client_processes} client processes; {args.rounds} rounds of "
          f"{args.seconds:g} s per cell, the two configurations alternately; load average {load_before[0]:.2f} "
          f"before, {load_after[0]:.2f} after")
    print("cores used: CPU seconds of the daemon's processes per second of measurement, median over the rounds "
          "(one process cannot use much more than 1); ratio: N processes' rate over 1 process's, per round")
    for load, cells, ratios in results:
        print_table(load, cells, ratios, configs, levels)
        one = cells.get((1, 1))
        if load == "shelter" and one is not None and one.latencies:
            print(f"target: p50 < 20 ms with one shelter (1 process): "
                  f"{'met' if statistics.median(one.latencies) < 20 else 'NOT met'}")
    shares = []
    for name in ("inclavared", "workload"):
        used = {pid: split1[name][pid] - split0[name].get(pid, 0.0) for pid in split1[name]}
        total = sum(used.values()) or 1.0
        shares.append(f"{name} " + "/".join(f"{100 * v / total:.0f}%" for v in used.values()))
    print(f"\nCPU time of each of the {configs[1]} processes, share of its daemon's: {'; '.join(shares)}")
    print(f"inclavared peak RSS (largest process): {rss[0]:.1f} MiB with 1 process, {rss[1]:.1f} MiB with "
          f"{configs[1]}; target < 100 MiB per process: {'met' if max(rss) < 100 else 'NOT met'}")
    if args.client_cpus or args.daemon_cpus:
        print(f"pinned: clients to CPUs {args.client_cpus or 'any'}, daemons to CPUs {args.daemon_cpus or 'any'}")
    elif n_cpu <= 2:
        print(f"note: the clients share these {n_cpu} cores with both flows' daemons (and any other load on the "
              f"machine), so no configuration has a core to itself: compare the daemons' CPU ms per attestation "
              f"and the cores they used, not only the rates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
