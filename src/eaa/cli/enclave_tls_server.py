"""``enclave-tls-server``: the Enclave-TLS sample workload server (enclave-tls 0.6 flags and messages).

It listens (default 127.0.0.1:1234), attests every connection with a certificate carrying its
evidence, verifies the client too with ``-m``, and answers each client's message with
``MRENCLAVE || MRSIGNER || "Hello and welcome to Enclave TLS!\\n"`` (or echoes it when it has no SGX
identity). Clients are served concurrently (see services/server.py for the connection limits); a
failed handshake is logged and the server goes on. SIGTERM closes it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from .common import (
    SIMULATION_WARNING,
    add_snp_arguments,
    add_version,
    listen_port,
    log_process_ids,
    parse_args,
    parse_time,
    port,
    run_main,
    seconds,
    setup_daemon_logging,
    snp_verifier_options,
    trust_sim_requested,
)
from .parser import ArgumentParser

PROG = "enclave-tls-server"
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR,
              "fatal": logging.CRITICAL, "off": logging.CRITICAL + 10}
_LEVEL_NAMES = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN", logging.ERROR: "ERROR",
                logging.CRITICAL: "FATAL"}


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"[{_LEVEL_NAMES.get(record.levelno, record.levelname)}] {record.getMessage()}"


def setup_logging(level: str, *, daemon: bool = False) -> None:
    """Daemons log in the one daemon format (timestamp, level, component: cli.common.log_formatter); the
    interactive clients print rats-tls's ``[LEVEL] message`` lines."""
    if daemon:
        setup_daemon_logging(LOG_LEVELS[level], stream=sys.stdout, loggers=("eaa",))
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Formatter())
    for name in ("eaa",):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(LOG_LEVELS[level])
        logger.propagate = False


def add_common_arguments(p: argparse.ArgumentParser, *, server: bool) -> None:
    """The flags enclave-tls-server and -client share, spelled as in the C samples."""
    p.add_argument("-a", "--attester", default="", help="attester name (default: automatic)")
    p.add_argument("-v", "--verifier", default="", help="verifier name (default: from the peer's evidence)")
    p.add_argument("-t", "--tls", default="", help="tls wrapper: openssl (default) or nulltls")
    p.add_argument("-c", "--crypto", default="", help="crypto wrapper: openssl (default) or nullcrypto")
    p.add_argument("-m", "--mutual", action="store_true", help="mutual attestation")
    p.add_argument("-l", "--log-level", default="info", choices=list(LOG_LEVELS), metavar="LEVEL",
                   help="debug|info|warn|error|fatal|off (default info)")
    p.add_argument("-i", "--ip", default="127.0.0.1",
                   help="address to listen on" if server else "server address to connect to")
    p.add_argument("-p", "--port", type=listen_port if server else port, default=1234,
                   help="TCP port (1-65535, default 1234)")
    p.add_argument("-e", "--endorsements", action="store_true",
                   help="send the attester's endorsements (DICE extension): DCAP collateral, or the SEV-SNP "
                        "certificate table (rats-tls peers refuse the latter)")
    p.add_argument("-P", "--product-enclave", action="store_true", help="accepted for compatibility; no effect")
    p.add_argument("-D", "--debug-enclave", action="store_true", help="accepted for compatibility; no effect")
    p.add_argument("--cert-format", choices=("dice", "legacy"), default="dice",
                   help="certificate format: dice (rats-tls, default) or legacy (enclave-tls 0.6)")
    p.add_argument("--trust-sim", action="store_true",
                   help="trust the simulated TEE's root (also EAA_TRUST_SIMULATION=1); never in production")
    p.add_argument("--claim", action="append", default=[], metavar="NAME=VALUE",
                   help="custom claim in the certificate (DICE; repeatable)")
    p.add_argument("--collateral", metavar="PATH", help="collateral file/directory for peers without endorsements")
    p.add_argument("--trust-root", action="append", default=[], metavar="PEM",
                   help="trust anchor to use instead of the Intel SGX Root CA (repeatable)")
    p.add_argument("--policy", metavar="FILE", help="appraisal policy / reference values (TOML or JSON)")
    p.add_argument("--no-crl", action="store_true", help="do not check CRLs")
    p.add_argument("--at", metavar="TIME", help="verification time (unix seconds or ISO-8601; default now)")
    p.add_argument("--measure", action="append", default=[], metavar="FILE",
                   help="file measured into the simulated enclave's MRENCLAVE/MRTD (sim attesters; repeatable; "
                        "server default: its own program files)")
    p.add_argument("--timeout", type=seconds, default=30.0,
                   help="seconds for each send (the handshake and the request: --handshake-timeout)" if server
                   else "seconds for connect, handshake and each read")
    add_snp_arguments(p)
    add_version(p, "enclave-tls-server" if server else "enclave-tls-client")


def _claims(items: list[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--claim wants NAME=VALUE, not {item!r}")
        out[name] = value.encode()
    return out


def config_from_args(args: argparse.Namespace) -> Any:
    from ..pki.trust import anchor_from_file
    from ..policy import Policy
    from ..tls import TlsConfig

    options: dict[str, Any] = {}
    if args.measure:
        options["measure_paths"] = list(args.measure)
    return TlsConfig(
        attester=args.attester or None,
        verifier=args.verifier or None,
        tls=args.tls or None,
        crypto=args.crypto or None,
        mutual=args.mutual,
        cert_format=args.cert_format,
        custom_claims=_claims(args.claim),
        endorsements=args.endorsements,
        policy=Policy.load(args.policy) if args.policy else None,
        trust_anchors=[anchor_from_file(p) for p in args.trust_root] or None,
        trust_simulation=trust_sim_requested(args.trust_sim),
        collateral=args.collateral,
        at=parse_time(args.at) if args.at else None,
        check_crl=not args.no_crl,
        attester_options=options,
        verifier_options=snp_verifier_options(args),
        timeout=args.timeout,
    )


def build_parser() -> argparse.ArgumentParser:
    from ..services.limits import add_limit_arguments

    p = ArgumentParser(prog=PROG, description="Enclave-TLS sample server: attested TLS workload endpoint")
    add_common_arguments(p, server=True)
    p.add_argument("--reply", choices=("auto", "identity", "echo"), default="auto",
                   help="identity: MRENCLAVE||MRSIGNER||greeting; echo: the client's message; "
                        "auto (default): identity with SGX evidence, else echo")
    add_limit_arguments(p)
    return p


def check_args(args: argparse.Namespace) -> Any:
    """Every number in range before anything is started; the connection limits."""
    from ..services.limits import limits_from_args

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be 1..65535, not {args.port}")
    if not 0 < args.timeout <= 3600:
        raise ConfigError("--timeout must be more than 0 and at most 3600 seconds")
    return limits_from_args(args)


def run(args: argparse.Namespace) -> int:
    from ..services.address import Address
    from ..services.processes import check_processes, listen_shared
    from ..services.server import ConnectionServer, describe_endpoint
    from ..services.workload import WorkloadService, program_files
    from ..tls import EnclaveTls
    from .common import attester_takes

    setup_logging(args.log_level, daemon=True)
    log = logging.getLogger("eaa.workload")
    limits = check_args(args)
    address = Address("tcp", host=args.ip, port=args.port)
    processes = check_processes(args.processes, address)
    if not args.measure and attester_takes(args.attester, "measure_paths"):
        args.measure = program_files()  # a simulated attester measures the program it serves
    print("    - Welcome to Enclave-TLS sample server program", flush=True)
    config = config_from_args(args)
    if config.trust_simulation:
        print(SIMULATION_WARNING, file=sys.stderr)
    endpoint = EnclaveTls(config, server=True)
    creds = endpoint.credentials
    if creds is not None and creds.evidence is not None and creds.evidence.simulated:
        log.warning("serving simulated %s evidence (not backed by TEE hardware)", creds.evidence.type)
    service = WorkloadService(creds, attester=endpoint.attester, reply=args.reply)
    socks = listen_shared(address, limits.backlog, processes)
    host, port = socks[0].getsockname()[:2]
    log.info("using %s", describe_endpoint(endpoint))
    log.info("listening on %s:%d (%s, %s)", host, port, "mutual" if config.mutual else "one-way",
             config.cert_format)
    limits = limits.divided(processes)
    return serve_processes(socks, lambda sock: ConnectionServer(endpoint, sock, service, limits), log)


def serve_processes(socks: list[Any], server_for: Callable[[Any], Any], log: logging.Logger) -> int:
    """Serve one listener in this process, or several from as many supervised child processes
    (``--processes``, services/processes.py); each child makes its server from its socket after the fork."""
    if len(socks) == 1:
        return serve_until_signalled(server_for(socks[0]), log)
    from ..services.processes import Supervisor

    log_process_ids()
    return Supervisor(socks, lambda sock: serve_until_signalled(server_for(sock), log), log).run()


def serve_until_signalled(daemon: Any, log: logging.Logger) -> int:
    """Serve until SIGTERM or SIGINT, then close cleanly: exit 0 for SIGTERM, 130 for SIGINT.

    ``daemon`` has ``serve_forever()``, ``stop()`` (safe in a signal handler) and ``shutdown()``.
    """
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        daemon.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        daemon.serve_forever()
    finally:
        daemon.shutdown()
    log.info("stopped%s", f" (signal {received[0]})" if received else "")
    return 130 if received and received[0] == signal.SIGINT else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(PROG, build_parser(), argv)
    return run_main(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
