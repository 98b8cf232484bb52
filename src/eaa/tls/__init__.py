"""Enclave-TLS: TLS whose certificates carry TEE evidence bound to the TLS key.

Quick use::

    from eaa.tls import TlsConfig, TlsServer, connect

    with TlsServer(TlsConfig(attester="sim_sgx_ecdsa"), port=0) as server: ...
    with connect("127.0.0.1", 1234, TlsConfig(verifier="sgx_ecdsa", trust_simulation=True)) as s:
        s.send(b"hello"); print(s.peer_result.measurements["mrenclave"], s.recv(256))

Certificates: :mod:`eaa.tls.cert` (DICE and enclave-tls 0.6 formats), :mod:`eaa.tls.dice` and
:mod:`eaa.tls.claims` (CBOR), :mod:`eaa.tls.peer` (verifying a peer certificate), plugins in
:mod:`eaa.tls.crypto` / :mod:`eaa.tls.wrappers` / :mod:`eaa.verify.registry`.
"""

from __future__ import annotations

from .config import TlsConfig
from .crypto import Credentials, crypto_wrappers
from .peer import PeerIdentity, PeerVerifier
from .policy import DEFAULT_POLICY, Policy
from .session import EnclaveTls, TlsClient, TlsServer, TlsSession, accept, connect
from .wrappers import tls_wrappers

__all__ = [
    "DEFAULT_POLICY",
    "Credentials",
    "EnclaveTls",
    "PeerIdentity",
    "PeerVerifier",
    "Policy",
    "TlsClient",
    "TlsConfig",
    "TlsServer",
    "TlsSession",
    "accept",
    "connect",
    "crypto_wrappers",
    "tls_wrappers",
]
