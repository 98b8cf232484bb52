"""``shelter``: the verifier's client. ``remoteattestation`` attests nodes through inclavared;
``mrenclave`` computes reference values.

Exit status of ``remoteattestation``: 0 when every node passed, 1 when any failed (the reason is
printed as ``Remote attestation failed with err: ...``), 2 for bad arguments, 130 on Ctrl-C.

Identity checks are on by default: without reference values for the workload shelter refuses to run
(``--no-reference`` accepts any genuinely attested workload, and says so); inclavared's own identity
is pinned with ``--inclavared-reference`` or an ``[inclavared]`` section of the reference file.
Protocol v1 answers carry no nonce and can be replayed: ``--v1`` needs ``--allow-replay``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..policy import Policy, ReferenceValues, load_document, reference_from_pairs
from .common import (
    SIMULATION_WARNING,
    add_snp_arguments,
    add_version,
    bounded_int,
    dispatch,
    one_shot,
    parse_time,
    seconds,
    snp_verifier_options,
    trust_sim_requested,
)
from .enclave_tls_server import LOG_LEVELS, setup_logging
from .parser import ArgumentParser, chosen_command

PROG = "shelter"
DEFAULT_ADDR = "tcp://127.0.0.1:1234"
DEFAULT_UNIX_ADDR = "unix:///run/enclave-tls/tls.sock"
MAX_ADDRS_FILE = 1 << 20


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Only the parser of the command ``argv`` names is built (all of them for help or an unknown command)."""
    p = ArgumentParser(prog=PROG, description="Remote attestation client of the Enclave Attestation "
                       "Architecture")
    add_version(p, PROG, "-v", "--version")
    p.add_argument("--verbose", action="store_true", help="accepted for compatibility")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    chosen = chosen_command(sys.argv[1:] if argv is None else argv, _COMMANDS)
    for name, add in _COMMANDS.items():
        if chosen in (None, name):
            add(sub)
    return p


def _add_remoteattestation(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ra = sub.add_parser("remoteattestation", help="attest workloads through inclavared",
                        description="Attest one or more nodes: inclavared's own evidence during the TLS handshake, "
                                    "then the workload's fresh evidence, verified here and compared with reference "
                                    "values.")
    ra.add_argument("--addr", action="append", default=[], metavar="tcp://IP:PORT|unix://PATH",
                    help=f"inclavared address (repeatable; default {DEFAULT_ADDR})")
    ra.add_argument("--addrs-file", metavar="FILE", help="file with one address per line (# comments)")
    ra.add_argument("--verifier", default="", help="verifier for inclavared's evidence (default: by evidence type)")
    ra.add_argument("--attester", default="", help="attester for shelter's own certificate (with --mutual)")
    ra.add_argument("--tls", default="", help="tls wrapper: openssl (default) or nulltls")
    ra.add_argument("--crypto", default="", help="crypto wrapper: openssl (default) or nullcrypto")
    ra.add_argument("--mutual", action="store_true", help="present shelter's own evidence too")
    ra.add_argument("--log-level", default="error", choices=list(LOG_LEVELS), metavar="LEVEL",
                    help="debug|info|warn|error|fatal|off (default error)")
    ra.add_argument("--reference", metavar="FILE",
                    help="reference values of the workload (TOML or JSON; an [inclavared] section pins inclavared)")
    ra.add_argument("--inclavared-reference", metavar="FILE",
                    help="reference values of inclavared itself (its [inclavared] section, else its values)")
    ra.add_argument("--no-reference", action="store_true",
                    help="accept any genuinely attested workload: no reference values are compared")
    ra.add_argument("--mrenclave", metavar="HEX", help="expected workload MRENCLAVE")
    ra.add_argument("--mrsigner", metavar="HEX", help="expected workload MRSIGNER")
    ra.add_argument("--policy", metavar="FILE", help="policy: accepted TCB statuses, debug, expired collateral")
    ra.add_argument("--output", choices=("text", "json"), default="text")
    ra.add_argument("--timeout", type=seconds, default=10.0, help="seconds per connection step (default 10)")
    ra.add_argument("--trust-sim", action="store_true",
                    help="trust the simulated TEE's root (also EAA_TRUST_SIMULATION=1); never in production")
    ra.add_argument("--v1", action="store_true",
                    help="speak protocol v1 to an original inclavared (needs --allow-replay)")
    ra.add_argument("--allow-replay", action="store_true",
                    help="with --v1: accept answers that carry no nonce and could be replayed")
    ra.add_argument("--collateral", metavar="PATH", help="collateral file/directory when none is relayed")
    ra.add_argument("--trust-root", action="append", default=[], metavar="PEM", help="extra trusted root CA")
    ra.add_argument("--no-crl", action="store_true", help="do not check CRLs")
    ra.add_argument("--at", metavar="TIME", help="verification time (unix seconds or ISO-8601; default now)")
    ra.add_argument("--max-parallel", type=bounded_int(1, 1024, "--max-parallel"), default=16,
                    help="nodes attested at once (1-1024, default 16)")
    add_snp_arguments(ra)
    ra.add_argument("--kubernetes", action="store_true",
                    help="also attest every node with an inclavared pod, found through the Kubernetes API "
                         "($KUBECONFIG, ~/.kube/config or the in-cluster service account)")
    ra.add_argument("--namespace", metavar="NS", help="with --kubernetes: the pods' namespace (default: the "
                                                      "context's or service account's, else default)")
    ra.add_argument("--selector", metavar="LABELS", help="with --kubernetes: the pods' label selector "
                                                         "(default k8s-app=inclavared)")
    ra.set_defaults(func=run_remoteattestation)


def _add_mrenclave(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    mr = sub.add_parser("mrenclave", help="compute reference values",
                        description="Reference values from a SIGSTRUCT (SGX SDK .ss / Gramine .sig), a signed SGX "
                                    "SDK enclave, or files measured by the simulated TEE.")
    src = mr.add_mutually_exclusive_group(required=True)
    src.add_argument("--sigstruct", metavar="FILE", help="SIGSTRUCT file (1808 bytes; Gramine .sig)")
    src.add_argument("--enclave", metavar="FILE", help="Intel SGX SDK signed enclave (.signed.so)")
    src.add_argument("--sim", nargs="*", metavar="PATH",
                     help="files the simulated TEE measures (none named: the files enclave-tls-server measures "
                          "by default, i.e. its own program)")
    mr.add_argument("--tee", choices=("sgx", "tdx", "snp"), default="sgx",
                    help="with --sim: MRENCLAVE, MRTD or the SEV-SNP MEASUREMENT")
    mr.add_argument("--sim-dir", metavar="DIR", help="with --sim: the simulated platform (for MRSIGNER)")
    mr.add_argument("--inclavared-sim", nargs="*", metavar="PATH",
                    help="with --sim: also pin inclavared ([inclavared] section) to these files (none named: the "
                         "files inclavared measures by default)")
    mr.add_argument("-o", "--output", metavar="FILE", help="write a reference file (.json, else TOML)")
    mr.set_defaults(func=run_mrenclave)


_COMMANDS = {"remoteattestation": _add_remoteattestation, "mrenclave": _add_mrenclave}


# ---- remoteattestation ----

def _addresses(args: argparse.Namespace) -> list[str]:
    """--addr values, then --addrs-file lines. A bad line is named by its number, never quoted: the file
    may not be the address list it was meant to be."""
    for a in args.addr:
        if not (a.startswith("tcp://") or a.startswith("unix://")):
            raise ConfigError(f"warning: specify tcp or unix socket address with error format: {a!r}")
    addrs = list(args.addr)
    if args.addrs_file:
        path = Path(args.addrs_file)
        try:
            if path.stat().st_size > MAX_ADDRS_FILE:
                raise ConfigError(f"{path} is too large")
            lines = path.read_text().splitlines()
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not text") from None
        for n, line in enumerate(lines, 1):
            a = line.split("#", 1)[0].strip()
            if not a:
                continue
            if not (a.startswith("tcp://") or a.startswith("unix://")):
                raise ConfigError(f"{path} line {n} is not an address (tcp://IP:PORT or unix://PATH)")
            addrs.append(a)
    return addrs


def _kubernetes_nodes(args: argparse.Namespace) -> tuple[list[str], list[Any]]:
    """The addresses of the nodes running inclavared, and a failed report for each node whose pod is not."""
    if not args.kubernetes:
        if args.namespace or args.selector:
            raise ConfigError("--namespace and --selector need --kubernetes")
        return [], []
    from ..services import discovery
    from ..services.shelter import NodeReport

    pods = discovery.discover(discovery.load_credentials(), args.namespace,
                              args.selector or discovery.DEFAULT_SELECTOR, timeout=args.timeout)
    addrs, uncovered = discovery.nodes_to_attest(pods)
    return addrs, [NodeReport(p.address if p.host_ip else f"pod/{p.name}", ok=False, error_code="POD_NOT_RUNNING",
                              error=p.problem) for p in uncovered]


INCLAVARED_SECTION = "inclavared"


def _reference_document(path: str) -> tuple[ReferenceValues, ReferenceValues]:
    """A reference file's workload values (its [reference] section, else its top level) and inclavared's
    (its [inclavared] section)."""
    doc = load_document(path)
    inc = doc.get(INCLAVARED_SECTION) or {}
    if not isinstance(inc, dict):
        raise ConfigError(f"{path}: [{INCLAVARED_SECTION}] must be a table/object")
    workload = doc.get("reference", {k: v for k, v in doc.items() if k != INCLAVARED_SECTION})
    if not isinstance(workload, dict):
        raise ConfigError(f"{path}: [reference] must be a table/object")
    return ReferenceValues.from_mapping(workload), ReferenceValues.from_mapping(inc)


def _inclavared_reference(path: str) -> ReferenceValues:
    """--inclavared-reference FILE: its [inclavared] section, else its workload values (a file written by
    ``shelter mrenclave`` for inclavared's program)."""
    workload, inc = _reference_document(path)
    return inc if not inc.is_empty() else workload


def _policies(args: argparse.Namespace) -> tuple[Policy, ReferenceValues]:
    """The workload's policy with its reference values, and inclavared's reference values."""
    policy = Policy.load(args.policy) if args.policy else Policy()
    inclavared = ReferenceValues()
    if args.reference:
        workload, inclavared = _reference_document(args.reference)
        policy = policy.with_reference(workload)
    flags = reference_from_pairs([("mrenclave", args.mrenclave), ("mrsigner", args.mrsigner)])
    if not flags.is_empty():
        policy = policy.with_reference(flags)
    if args.inclavared_reference:
        inclavared = _inclavared_reference(args.inclavared_reference)
    if policy.reference.is_empty() and not args.no_reference:
        raise ConfigError("no reference values for the workload: any genuinely attested workload would pass. "
                          "Give --reference FILE (see 'shelter mrenclave') or --mrenclave/--mrsigner, or "
                          "--no-reference to accept any workload")
    return policy, inclavared


def _unchecked(args: argparse.Namespace, policy: Policy, inclavared: ReferenceValues) -> list[str]:
    """What this run does not check, said loudly before any result."""
    out = []
    if policy.reference.is_empty():
        out.append("WARNING: --no-reference: the workload's measurements are not compared with reference values; "
                   "any genuinely attested workload passes.")
    if inclavared.is_empty():
        out.append("WARNING: inclavared's own identity is not pinned (--inclavared-reference or an [inclavared] "
                   "section): any attested enclave on a trusted platform can act as inclavared.")
    if args.v1:
        out.append("WARNING: protocol v1 (--allow-replay): the answer carries no nonce and can be replayed; the "
                   "workload's identity is self-reported by inclavared.")
    return out


def _options(args: argparse.Namespace, policy: Policy, inclavared: ReferenceValues) -> Any:
    from ..pki.trust import anchor_from_file, default_anchors
    from ..services.shelter import ShelterOptions
    from ..tls import TlsConfig

    anchors = [*default_anchors(), *(anchor_from_file(p) for p in args.trust_root)] if args.trust_root else None
    at = parse_time(args.at) if args.at else None
    tls = TlsConfig(
        attester=args.attester or None, verifier=args.verifier or None, tls=args.tls or None,
        crypto=args.crypto or None, mutual=args.mutual, policy=policy.without_reference().with_reference(inclavared),
        trust_anchors=anchors, trust_simulation=trust_sim_requested(args.trust_sim), collateral=args.collateral,
        at=at, check_crl=not args.no_crl, timeout=args.timeout, max_message=4 << 20,
        verifier_options=snp_verifier_options(args),
    )
    opts = ShelterOptions(tls=tls, policy=policy, v1=args.v1, allow_replay=args.allow_replay,
                          require_verified=not args.no_reference, timeout=args.timeout)
    if at is not None:
        opts.clock = lambda: at
    return opts


def _identity_lines(label: str, result: Any, evidence: str | None) -> list[str]:
    lines = [f"{label}: {evidence or 'no'} evidence verified, TEE {result.tee}, TCB status {result.status}"
             + (f", advisories {', '.join(result.advisory_ids)}" if result.advisory_ids else "")]
    for k in ("mrenclave", "mrsigner", "isv_prod_id", "isv_svn", "mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3",
              "measurement"):
        if k in result.measurements:
            lines.append(f"  {k.upper()}: {result.measurements[k]}")
    if result.collateral_expired:
        lines.append("  WARNING: verified with expired collateral")
    return lines


def _render_single(r: Any) -> list[str]:
    lines = []
    if r.inclavared is not None:
        lines += _identity_lines(f"inclavared ({r.address})", r.inclavared, r.inclavared_evidence)
    if r.v1_info is not None:
        lines.append("Server:")
        lines.append(json.dumps(r.v1_info, sort_keys=True, separators=(",", ":")))
        lines.append(f"App Enclave mrenclave: {r.v1_info.get('mrenclave')}")
        lines.append(f"App Enclave mrsigner: {r.v1_info.get('mrsigner')}")
        lines.append("NOTE: protocol v1: the workload's identity is self-reported and not fresh.")
    if r.verified_nothing:
        lines.append("WARNING: nothing was verified (nullverifier over protocol v1); this result proves nothing.")
    if r.workload is not None:
        lines += _identity_lines("workload", r.workload, r.workload_evidence + " (fresh: nonce bound)"
                                 if r.workload_evidence else None)
    if r.inclavared_verdict is not None:
        v = r.inclavared_verdict
        lines.append("inclavared's verdict: " + ("accepted" if v["ok"] else f"rejected [{v['error_code']}] "
                                                                               f"{v['error']}"))
    return lines


def _render_table(reports: list[Any]) -> list[str]:
    rows = [("NODE", "RESULT", "TEE", "STATUS", "MEASUREMENT", "ERROR")]
    for r in reports:
        w = r.workload
        meas = (w.measurements.get("mrenclave") or w.measurements.get("mrtd") or w.measurements.get("measurement")
                or "")[:16] if w else ""
        rows.append((r.address, "ok" if r.ok else "FAILED", w.tee if w else "-", w.status if w else "-",
                     meas or "-", "" if r.ok else f"{_tag(r)} {r.error}"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return ["  ".join(c.ljust(widths[i]) if i < 5 else c for i, c in enumerate(row)).rstrip() for row in rows]


def run_remoteattestation(args: argparse.Namespace) -> int:
    from ..services.shelter import Shelter

    setup_logging(args.log_level)
    addrs = _addresses(args)
    policy, inclavared = _policies(args)
    found, not_running = _kubernetes_nodes(args)
    addrs += [a for a in found if a not in addrs]
    shelter = Shelter(_options(args, policy, inclavared))
    unchecked = _unchecked(args, policy, inclavared)
    for line in unchecked:
        print(line, file=sys.stderr if args.output == "json" else sys.stdout, flush=True)
    if not addrs and not not_running:
        print(f"tcp sock address is {DEFAULT_ADDR[len('tcp://'):]}")
        reports = [shelter.attest(DEFAULT_ADDR)]
        if not reports[0].ok and reports[0].error_code == "TRANSPORT_ERROR":
            print("Try to connect default tcp socket failed then retry with default unix socket.")
            reports = [shelter.attest(DEFAULT_UNIX_ADDR)]
    else:
        reports = shelter.attest_many(addrs, max_workers=max(1, args.max_parallel)) if addrs else []
        reports += not_running
    ok = all(r.ok for r in reports)
    if args.output == "json":
        print(json.dumps({"ok": ok, "nodes": [r.to_dict() for r in reports]}, sort_keys=True, indent=1))
        if any(r.simulated for r in reports):
            print(SIMULATION_WARNING, file=sys.stderr)
        return 0 if ok else 1
    if any(r.simulated for r in reports):
        print(SIMULATION_WARNING)
    if len(reports) == 1:
        for line in _render_single(reports[0]):
            print(line)
    else:
        for line in _render_table(reports):
            print(line)
    if ok:
        print("Remote attestation is successful.")
        return 0
    failed = [r for r in reports if not r.ok]
    reason = (f"{_tag(failed[0])} {failed[0].error}" if len(reports) == 1
              else f"{len(failed)} of {len(reports)} nodes failed: " + ", ".join(r.address for r in failed))
    print(f"Remote attestation failed with err: {reason}", file=sys.stderr)
    return 1


# ---- mrenclave ----

def run_mrenclave(args: argparse.Namespace) -> int:
    from ..formats.sigstruct import SigStruct, sigstruct_from_enclave

    if args.inclavared_sim is not None and args.sim is None:
        raise ConfigError("--inclavared-sim goes with --sim (both are measured by the simulated TEE)")
    values: dict[str, Any] = {}
    if args.sigstruct or args.enclave:
        path = Path(args.sigstruct or args.enclave)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from None
        ss = SigStruct.parse(data) if args.sigstruct else sigstruct_from_enclave(data)
        values = {"mrenclave": ss.mrenclave.hex(), "mrsigner": ss.mrsigner.hex(), "isv_prod_id": ss.isv_prod_id,
                  "min_isv_svn": ss.isv_svn}
    else:
        from ..services.workload import program_files

        values = _sim_values(args, args.sim or program_files())
    inc_values: dict[str, Any] = {}
    if args.inclavared_sim is not None:
        from ..services.inclavared import program_files as inclavared_files

        inc_values = _sim_values(args, args.inclavared_sim or inclavared_files())
    ref = ReferenceValues.from_mapping(values)
    for k, v in values.items():
        print(f"{k}: {v}")
    for k, v in inc_values.items():
        print(f"inclavared {k}: {v}")
    if args.output:
        out = Path(args.output)
        inc = ReferenceValues.from_mapping(inc_values) if inc_values else None
        if out.suffix == ".json":
            doc = json.loads(ref.to_json())
            if inc is not None:
                doc[INCLAVARED_SECTION] = json.loads(inc.to_json())["reference"]
            text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
        else:
            text = ref.to_toml()
            if inc is not None:
                text += "\n" + inc.to_toml().replace("[reference]", f"[{INCLAVARED_SECTION}]", 1)
        try:
            out.write_text(text)
        except OSError as e:
            raise ConfigError(f"cannot write {out}: {e.strerror}") from None
        print(f"reference values written to {out}")
    return 0


def _tag(r: Any) -> str:
    """``[CODE]``, or ``[CODE] CHECK`` when the failed check says more (as errors print it)."""
    return f"[{r.error_code}]" if r.error_check in (None, r.error_code) else f"[{r.error_code}] {r.error_check}"


def _sim_values(args: argparse.Namespace, paths: list[str]) -> dict[str, Any]:
    """What the simulated TEE reports for a program made of ``paths``: MRENCLAVE and the platform's
    MRSIGNER (SGX), MRTD (TDX) or MEASUREMENT (SEV-SNP)."""
    from ..sim import load_platform, measure_files, tdx_measure

    if args.tee == "sgx":
        return {"mrenclave": measure_files(paths).hex(), "mrsigner": load_platform(args.sim_dir).mrsigner.hex()}
    if args.tee == "snp":
        return {"measurement": tdx_measure(paths).hex()}
    return {"mrtd": tdx_measure(paths).hex()}


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("eaa").addHandler(logging.NullHandler())
    return dispatch(PROG, build_parser(argv), argv)


def console() -> None:
    """The ``shelter`` console script: :func:`main`, exiting at once (:func:`eaa.cli.common.one_shot`)."""
    one_shot(main)


if __name__ == "__main__":
    sys.exit(main())
