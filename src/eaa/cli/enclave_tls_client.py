"""``enclave-tls-client``: the Enclave-TLS sample client (enclave-tls 0.6 flags and messages).

It connects, verifies the server's evidence before sending anything, sends
``"Hello and welcome to Enclave TLS!\\n"`` and checks the answer: either the same text (echo) or
``MRENCLAVE || MRSIGNER || text``. It prints the server's *verified* identity (from its quote), and
fails when a self-reported identity disagrees with it. Exit status: 0 on success, else the code of
the failure, as every eaa command (2 usage, 4 verification, 11 protocol, 12 transport, 130 Ctrl-C;
README, "Exit codes").
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from ..errors import VerificationError
from .common import SIMULATION_WARNING, one_shot, parse_args, run_main
from .enclave_tls_server import add_common_arguments, config_from_args, setup_logging
from .parser import ArgumentParser

PROG = "enclave-tls-client"


class InvalidResponse(VerificationError):
    code = "INVALID_RESPONSE"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Enclave-TLS sample client: attested TLS to a workload")
    add_common_arguments(p, server=False)
    return p


def _print_identity(session: Any, log: logging.Logger) -> None:
    peer = session.peer
    if peer is None:
        return
    r = peer.result
    if r.tee == "none":
        log.warning("the server was not attested (%s: %s)", peer.verifier,
                    "no evidence" if peer.evidence_type == "nullattester" else "evidence not checked")
    else:
        m = r.measurements
        log.info("Server's verified %s evidence (%s, %s certificate): TCB status %s%s", peer.evidence_type,
                 r.tee.upper(), peer.cert_format, r.status, ", SIMULATED" if r.simulated else "")
        if "mrenclave" in m:
            print(f"  . MRENCLAVE = {m['mrenclave']}")
            print(f"  . MRSIGNER  = {m['mrsigner']}")
        elif "mrtd" in m:
            print(f"  . MRTD      = {m['mrtd']}")
    if r.simulated:
        print(SIMULATION_WARNING, file=sys.stderr)
    for name, value in peer.claims.items():
        shown = value.rstrip(b"\x00").decode("utf-8", "replace")
        log.info("custom claim -> name: '%s' value_size: %d value: '%s'", name, len(value), shown)


def run(args: argparse.Namespace) -> int:
    from ..services.protocol import parse_identity_reply
    from ..services.workload import GREETING, MAX_REQUEST
    from ..tls import TlsClient

    setup_logging(args.log_level)
    log = logging.getLogger("eaa.workload")
    print("    - Welcome to Enclave-TLS sample client program", flush=True)
    config = config_from_args(args)
    with TlsClient(config).connect(args.ip, args.port) as session:
        _print_identity(session, log)
        session.send(GREETING)
        reply = session.recv(MAX_REQUEST)
    if reply == GREETING:
        print(f"Server:\n{reply.decode('utf-8', 'replace')}", end="")
        return 0
    split = parse_identity_reply(reply)
    if split is None or split[1] != GREETING:
        raise InvalidResponse("Invalid response retrieved from enclave-tls server")
    identity, message = split
    log.info("Server's SGX identity:")
    print(f"  . MRENCLAVE = {identity.mrenclave.hex()}")
    print(f"  . MRSIGNER  = {identity.mrsigner.hex()}")
    print(f"Server:\n{message.decode('utf-8', 'replace')}", end="")
    result = session.peer_result
    if result is not None and "mrenclave" in result.measurements:
        if (identity.mrenclave.hex(), identity.mrsigner.hex()) != (result.measurements["mrenclave"],
                                                                    result.measurements["mrsigner"]):
            raise InvalidResponse("the server's self-reported SGX identity does not match its verified evidence")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(PROG, build_parser(), argv)
    return run_main(PROG, lambda: run(args))


def console() -> None:
    """The ``enclave-tls-client`` console script: :func:`main`, exiting at once (:func:`eaa.cli.common.one_shot`)."""
    one_shot(main)


if __name__ == "__main__":
    sys.exit(main())
