"""``shelter``: the verifier's client. ``remoteattestation`` attests nodes through inclavared;
``mrenclave`` computes reference values.

Exit status of ``remoteattestation``: 0 when every node passed, 1 when any failed (the reason is
printed as ``Remote attestation failed with err: ...``), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..policy import Policy, ReferenceValues, reference_from_pairs
from .common import (
    SIMULATION_WARNING,
    add_snp_arguments,
    dispatch,
    parse_time,
    snp_verifier_options,
    trust_sim_requested,
)
from .enclave_tls_server import LOG_LEVELS, setup_logging

PROG = "shelter"
VERSION = "0.1.0"
DEFAULT_ADDR = "tcp://127.0.0.1:1234"
DEFAULT_UNIX_ADDR = "unix:///run/enclave-tls/tls.sock"
MAX_ADDRS_FILE = 1 << 20


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Remote attestation client of the Enclave Attestation "
                                "Architecture")
    p.add_argument("-v", "--version", action="version", version=f"shelter version {VERSION}")
    p.add_argument("--verbose", action="store_true", help="accepted for compatibility")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

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
    ra.add_argument("--reference", metavar="FILE", help="reference values (TOML or JSON)")
    ra.add_argument("--mrenclave", metavar="HEX", help="expected workload MRENCLAVE")
    ra.add_argument("--mrsigner", metavar="HEX", help="expected workload MRSIGNER")
    ra.add_argument("--policy", metavar="FILE", help="policy: accepted TCB statuses, debug, expired collateral")
    ra.add_argument("--output", choices=("text", "json"), default="text")
    ra.add_argument("--timeout", type=float, default=10.0, help="seconds per connection step (default 10)")
    ra.add_argument("--trust-sim", action="store_true",
                    help="trust the simulated TEE's root (also EAA_TRUST_SIMULATION=1); never in production")
    ra.add_argument("--v1", action="store_true", help="speak protocol v1 to an original inclavared")
    ra.add_argument("--collateral", metavar="PATH", help="collateral file/directory when none is relayed")
    ra.add_argument("--trust-root", action="append", default=[], metavar="PEM", help="extra trusted root CA")
    ra.add_argument("--no-crl", action="store_true", help="do not check CRLs")
    ra.add_argument("--at", metavar="TIME", help="verification time (unix seconds or ISO-8601; default now)")
    ra.add_argument("--max-parallel", type=int, default=16, help="nodes attested at once (default 16)")
    add_snp_arguments(ra)
    ra.add_argument("--kubernetes", action="store_true",
                    help="also attest every node with an inclavared pod, found through the Kubernetes API "
                         "($KUBECONFIG, ~/.kube/config or the in-cluster service account)")
    ra.add_argument("--namespace", metavar="NS", help="with --kubernetes: the pods' namespace (default: the "
                                                      "context's or service account's, else default)")
    ra.add_argument("--selector", metavar="LABELS", help="with --kubernetes: the pods' label selector "
                                                         "(default k8s-app=inclavared)")
    ra.set_defaults(func=run_remoteattestation)

    mr = sub.add_parser("mrenclave", help="compute reference values",
                        description="Reference values from a SIGSTRUCT (SGX SDK .ss / Gramine .sig), a signed SGX "
                                    "SDK enclave, or files measured by the simulated TEE.")
    src = mr.add_mutually_exclusive_group(required=True)
    src.add_argument("--sigstruct", metavar="FILE", help="SIGSTRUCT file (1808 bytes; Gramine .sig)")
    src.add_argument("--enclave", metavar="FILE", help="Intel SGX SDK signed enclave (.signed.so)")
    src.add_argument("--sim", nargs="+", metavar="PATH", help="files the simulated TEE measures")
    mr.add_argument("--tee", choices=("sgx", "tdx", "snp"), default="sgx",
                    help="with --sim: MRENCLAVE, MRTD or the SEV-SNP MEASUREMENT")
    mr.add_argument("--sim-dir", metavar="DIR", help="with --sim: the simulated platform (for MRSIGNER)")
    mr.add_argument("-o", "--output", metavar="FILE", help="write a reference file (.json, else TOML)")
    mr.set_defaults(func=run_mrenclave)
    return p


# ---- remoteattestation ----

def _addresses(args: argparse.Namespace) -> list[str]:
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
        addrs += [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]
    for a in addrs:
        if not (a.startswith("tcp://") or a.startswith("unix://")):
            raise ConfigError(f"warning: specify tcp or unix socket address with error format: {a!r}")
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


def _options(args: argparse.Namespace) -> Any:
    from ..services.shelter import ShelterOptions
    from ..tls import TlsConfig
    from ..verify.trust import anchor_from_file, default_anchors

    policy = Policy.load(args.policy) if args.policy else Policy()
    if args.reference:
        policy = policy.with_reference(ReferenceValues.load(args.reference))
    flags = reference_from_pairs([("mrenclave", args.mrenclave), ("mrsigner", args.mrsigner)])
    if not flags.is_empty():
        policy = policy.with_reference(flags)
    anchors = [*default_anchors(), *(anchor_from_file(p) for p in args.trust_root)] if args.trust_root else None
    at = parse_time(args.at) if args.at else None
    tls = TlsConfig(
        attester=args.attester or None, verifier=args.verifier or None, tls=args.tls or None,
        crypto=args.crypto or None, mutual=args.mutual, policy=policy.without_reference(),
        trust_anchors=anchors, trust_simulation=trust_sim_requested(args.trust_sim), collateral=args.collateral,
        at=at, check_crl=not args.no_crl, timeout=args.timeout, max_message=4 << 20,
        verifier_options=snp_verifier_options(args),
    )
    opts = ShelterOptions(tls=tls, policy=policy, v1=args.v1, timeout=args.timeout)
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
    found, not_running = _kubernetes_nodes(args)
    addrs += [a for a in found if a not in addrs]
    shelter = Shelter(_options(args))
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
        from ..sim import load_platform, measure_files, tdx_measure

        if args.tee == "sgx":
            values = {"mrenclave": measure_files(args.sim).hex()}
            values["mrsigner"] = load_platform(args.sim_dir).mrsigner.hex()
        elif args.tee == "snp":
            values = {"measurement": tdx_measure(args.sim).hex()}
        else:
            values = {"mrtd": tdx_measure(args.sim).hex()}
    ref = ReferenceValues.from_mapping(values)
    for k, v in values.items():
        print(f"{k}: {v}")
    if args.output:
        out = Path(args.output)
        out.write_text(ref.to_json() if out.suffix == ".json" else ref.to_toml())
        print(f"reference values written to {out}")
    return 0


def _tag(r: Any) -> str:
    """``[CODE]``, or ``[CODE] CHECK`` when the failed check says more (as errors print it)."""
    return f"[{r.error_code}]" if r.error_check in (None, r.error_code) else f"[{r.error_code}] {r.error_check}"


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("eaa").addHandler(logging.NullHandler())
    return dispatch(PROG, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
