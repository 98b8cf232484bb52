"""``inclavared``: the per-node daemon relaying verifiers' requests to the workload over attested TLS.

Flags keep the original spelling (``-l/--listen``, ``-x/--xfer``, ``-c/--connect``, ``--tls``,
``--crypto``, ``--attester``, ``--verifier``, ``-m/--mutual``). Logs one line per request. Stops
cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from ..errors import ConfigError
from ..services.limits import add_limit_arguments
from .common import (
    SIMULATION_WARNING,
    add_snp_arguments,
    add_version,
    attester_takes,
    parse_args,
    parse_time,
    run_main,
    seconds,
    snp_verifier_options,
    trust_sim_requested,
)
from .enclave_tls_server import LOG_LEVELS, serve_processes, setup_logging
from .parser import ArgumentParser

PROG = "inclavared"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description="EAA node daemon: relays attestation requests to the "
                       "workload over attested TLS")
    add_version(p, PROG, "-V", "--version")
    p.add_argument("-l", "--listen", metavar="SOCKADDR", help="listen on ip:port or a Unix socket path")
    p.add_argument("-x", "--xfer", metavar="SOCKADDR", help="the workload (enclave-tls-server): ip:port or path")
    p.add_argument("-c", "--connect", metavar="SOCKADDR", help="client mode: fetch from this workload and exit")
    p.add_argument("--tls", default="", help="tls wrapper: openssl (default) or nulltls")
    p.add_argument("--crypto", default="", help="crypto wrapper: openssl (default) or nullcrypto")
    p.add_argument("--attester", default="", help="attester for inclavared's own certificate")
    p.add_argument("--verifier", default="", help="verifier for the workload's evidence (default: by type)")
    p.add_argument("-m", "--mutual", action="store_true", help="mutual attested TLS towards the workload")
    p.add_argument("-e", "--enclave", metavar="FILE", help="accepted for compatibility (no stub enclave needed)")
    p.add_argument("--policy", metavar="FILE", help="policy and reference values for the workload (TOML/JSON)")
    p.add_argument("--log-level", default="info", choices=list(LOG_LEVELS), metavar="LEVEL",
                   help="debug|info|warn|error|fatal|off (default info)")
    p.add_argument("--trust-sim", action="store_true",
                   help="trust the simulated TEE's root (also EAA_TRUST_SIMULATION=1); never in production")
    p.add_argument("--timeout", type=seconds, default=10.0,
                   help="seconds for each step towards the workload and for sending a reply (default 10)")
    p.add_argument("--measure", action="append", default=[], metavar="FILE",
                   help="files measured into the simulated attester's MRENCLAVE (sim attesters)")
    p.add_argument("--collateral", metavar="PATH", help="collateral file/directory when the workload sends none")
    p.add_argument("--endorsements", action="store_true",
                   help="send the attester's endorsements in inclavared's certificates (DCAP collateral, the SEV-SNP "
                        "certificate table), as enclave-tls-server -e does")
    p.add_argument("--trust-root", action="append", default=[], metavar="PEM", help="extra trusted root CA")
    p.add_argument("--no-crl", action="store_true", help="do not check CRLs")
    p.add_argument("--at", metavar="TIME", help="verification time (unix seconds or ISO-8601; default now)")
    add_snp_arguments(p)
    add_limit_arguments(p)
    return p


def build_config(args: argparse.Namespace) -> Any:
    from ..pki.trust import anchor_from_file, default_anchors
    from ..policy import Policy
    from ..services.address import parse_address
    from ..services.inclavared import InclavaredConfig, program_files
    from ..services.limits import limits_from_args
    from ..services.processes import check_processes
    from ..tls import TlsConfig

    if not args.listen and not args.connect:
        raise ConfigError("give --listen (server mode) or --connect (client mode)")
    if not 0 < args.timeout <= 3600:
        raise ConfigError("--timeout must be more than 0 and at most 3600 seconds")
    limits = limits_from_args(args)
    if args.connect and not args.listen and args.processes != 1:
        raise ConfigError("--processes applies to server mode (--listen)")
    check_processes(args.processes, parse_address(args.listen) if args.listen else None)
    policy = Policy.load(args.policy) if args.policy else Policy()
    anchors = [*default_anchors(), *(anchor_from_file(p) for p in args.trust_root)] if args.trust_root else None
    at = parse_time(args.at) if args.at else None
    trust_sim = trust_sim_requested(args.trust_sim)
    options = {"measure_paths": list(args.measure or program_files())} \
        if args.measure or attester_takes(args.attester, "measure_paths") else {}
    common: dict[str, Any] = dict(attester=args.attester or None, tls=args.tls or None, crypto=args.crypto or None,
                                  trust_anchors=anchors, trust_simulation=trust_sim, collateral=args.collateral,
                                  at=at, check_crl=not args.no_crl, timeout=args.timeout,
                                  endorsements=args.endorsements,
                                  attester_options=options, verifier_options=snp_verifier_options(args))
    server_tls = TlsConfig(mutual=False, **common)  # as the original: shelter is not asked for evidence
    upstream_tls = TlsConfig(verifier=args.verifier or None, mutual=args.mutual, policy=policy,
                             max_message=4 << 20, **common)
    cfg = InclavaredConfig(
        listen=parse_address(args.listen) if args.listen else None,
        xfer=parse_address(args.xfer or args.connect) if (args.xfer or args.connect) else None,
        server_tls=server_tls, upstream_tls=upstream_tls, policy=policy,
        limits=limits, timeout=args.timeout,
    )
    if at is not None:
        cfg.clock = lambda: at
    return cfg


def run(args: argparse.Namespace) -> int:
    from ..services.inclavared import Inclavared
    from ..services.processes import listen_shared

    setup_logging(args.log_level, daemon=True)
    log = logging.getLogger("eaa.inclavared")
    cfg = build_config(args)
    if cfg.server_tls.trust_simulation:
        print(SIMULATION_WARNING, file=sys.stderr)
    daemon = Inclavared(cfg)
    if args.connect and not args.listen:
        reply = daemon.fetch_v1()
        log.info("message from upstream: %s", reply.decode("utf-8", "replace"))
        print(reply.decode("utf-8", "replace"))
        return 0
    assert cfg.listen is not None
    socks = listen_shared(cfg.listen, cfg.limits.backlog, args.processes)
    name = socks[0].getsockname()
    log.info("using %s", daemon.describe())
    log.info("listening on %s, workload %s (%s)", name if isinstance(name, str) else f"{name[0]}:{name[1]}",
             cfg.xfer or "-", "mutual" if cfg.upstream_tls.mutual else "one-way")
    cfg.limits = cfg.limits.divided(args.processes)

    def server_for(sock: Any) -> Inclavared:
        daemon.start(sock)
        return daemon

    return serve_processes(socks, server_for, log)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(PROG, build_parser(), argv)
    return run_main(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
