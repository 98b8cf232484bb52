"""``enclave-tls-server``: the Enclave-TLS sample workload server (enclave-tls 0.6 flags and messages).

It listens (default 127.0.0.1:1234), attests every connection with a certificate carrying its
evidence, verifies the client too with ``-m``, and answers each client's message with
``MRENCLAVE || MRSIGNER || "Hello and welcome to Enclave TLS!\\n"`` (or echoes it when it has no SGX
identity). Clients are served concurrently; a failed handshake is logged and the server goes on.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from ..errors import ConfigError
from .common import (SIMULATION_WARNING, add_version, listen_port, parse_args, parse_time, port, run_main, seconds,
                     trust_sim_requested)

PROG = "enclave-tls-server"
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR,
              "fatal": logging.CRITICAL, "off": logging.CRITICAL + 10}
_LEVEL_NAMES = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARN", logging.ERROR: "ERROR",
                logging.CRITICAL: "FATAL"}


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"[{_LEVEL_NAMES.get(record.levelno, record.levelname)}] {record.getMessage()}"


def setup_logging(level: str) -> None:
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
    p.add_argument("-e", "--endorsements", action="store_true", help="send collateral (DICE endorsements)")
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
    p.add_argument("--timeout", type=seconds, default=30.0, help="seconds for connect, handshake and each read")
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
    from ..policy import Policy
    from ..tls import TlsConfig
    from ..verify.trust import anchor_from_file

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
        timeout=args.timeout,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Enclave-TLS sample server: attested TLS workload endpoint")
    add_common_arguments(p, server=True)
    p.add_argument("--reply", choices=("auto", "identity", "echo"), default="auto",
                   help="identity: MRENCLAVE||MRSIGNER||greeting; echo: the client's message; "
                        "auto (default): identity with SGX evidence, else echo")
    return p


def run(args: argparse.Namespace) -> int:
    from ..services.workload import WorkloadService
    from ..tls import TlsServer

    from ..services.workload import program_files

    setup_logging(args.log_level)
    log = logging.getLogger("eaa.workload")
    if not args.measure:
        args.measure = program_files()
    print("    - Welcome to Enclave-TLS sample server program", flush=True)
    config = config_from_args(args)
    if config.trust_simulation:
        print(SIMULATION_WARNING, file=sys.stderr)
    server = TlsServer(config, args.ip, args.port)
    try:
        creds = server.credentials
        if creds is not None and creds.evidence is not None and creds.evidence.simulated:
            log.warning("serving simulated %s evidence (not backed by TEE hardware)", creds.evidence.type)
        service = WorkloadService(creds, attester=server.attester, reply=args.reply)
        host, port = server.address
        log.info("listening on %s:%d (%s, %s)", host, port, "mutual" if config.mutual else "one-way",
                 config.cert_format)

        def on_error(addr: Any, e: BaseException) -> None:
            code = getattr(e, "code", type(e).__name__)
            log.error("client %s: [%s] %s", f"{addr[0]}:{addr[1]}" if addr else "?", code, e)

        def handle(session: Any) -> None:
            peer = session.peer
            if peer is not None:
                r = peer.result
                log.info("client %s verified: %s evidence, tee %s, status %s%s", f"{session.address[0]}",
                         peer.evidence_type, r.tee, r.status, " (SIMULATED)" if r.simulated else "")
            service.handle(session)

        server.serve_forever(handle, on_error=on_error)
    finally:
        server.shutdown(wait=1.0)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(PROG, build_parser(), argv)
    return run_main(PROG, lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
