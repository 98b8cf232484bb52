"""What a simulated platform publishes to verifiers, read straight from its state directory: the root
certificate and the signed collateral.

A verifier told to trust the simulation needs nothing else, so it neither loads the platform's private
keys nor imports the simulator (generation, quoting enclaves, key handling): a one-shot ``shelter`` run
spent some 20 ms there. A missing platform is still created on first use, as :func:`load_platform` does.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from cryptography import x509

from ..collateral.bundle import Collateral
from ..errors import ConfigError, FormatError
from ..formats.pem import pem_bodies
from ..formats.signed_json import split_signed
from ..pki.trust import TrustAnchor
from .state import COLLATERAL_FILES, TEES, default_sim_dir, is_platform_dir, read_state

ROOT_FILE = "root_ca.pem"
_WHAT = "simulated platform"


def _state_dir(sim_dir: str | os.PathLike[str] | None, now: datetime | None) -> Path:
    d = Path(sim_dir) if sim_dir is not None else default_sim_dir()
    if not is_platform_dir(d):
        from .platform import load_platform

        load_platform(d, now=now)  # creates it, or says why it cannot
    return d


def _certificate(files: dict[str, bytes], name: str, d: Path) -> tuple[str, x509.Certificate]:
    """A certificate file as PEM text (as collateral carries it) and parsed: one certificate, or a typed error."""
    data = files[name]
    try:
        if len(pem_bodies(data)) != 1:
            raise ValueError(name)
        return data.decode("ascii"), x509.load_pem_x509_certificate(data)
    except ValueError:  # UnicodeDecodeError is one
        raise FormatError(f"{_WHAT} {d} holds a damaged certificate ({name})", field=name) from None


def _pem_text(files: dict[str, bytes], name: str, d: Path) -> str:
    return _certificate(files, name, d)[0]


def published_anchor(sim_dir: str | os.PathLike[str] | None = None, *,
                     now: datetime | None = None) -> TrustAnchor:
    """The platform's root as a trust anchor (``simulated=True``), as :meth:`SimPlatform.anchor` gives it."""
    d = _state_dir(sim_dir, now)
    _, cert = _certificate(read_state(d, [ROOT_FILE], _WHAT), ROOT_FILE, d)
    return TrustAnchor(cert, f"EAA simulated TEE root ({d})", simulated=True)


def published_collateral(tee: str, sim_dir: str | os.PathLike[str] | None = None, *,
                         now: datetime | None = None) -> Collateral:
    """The collateral for ``tee`` ("sgx" or "tdx") quotes, as :meth:`SimPlatform.collateral` gives it."""
    if tee not in TEES:
        raise ConfigError(f"unknown TEE {tee!r} (choose sgx or tdx)")
    d = _state_dir(sim_dir, now)
    tcb_name, qe_name = COLLATERAL_FILES[tee]
    f = read_state(d, [ROOT_FILE, "pck_ca.pem", "tcb_signing.pem", "root_ca_crl.der", "pck_crl.der",
                       tcb_name, qe_name], _WHAT)
    tcb_body, tcb_sig = split_signed(f[tcb_name], "tcbInfo")
    qe_body, qe_sig = split_signed(f[qe_name], "enclaveIdentity")
    root = _pem_text(f, ROOT_FILE, d)
    signing_chain = _pem_text(f, "tcb_signing.pem", d) + root
    return Collateral(
        pck_crl_issuer_chain=_pem_text(f, "pck_ca.pem", d) + root,
        root_ca_crl=f["root_ca_crl.der"],
        pck_crl=f["pck_crl.der"],
        tcb_info_issuer_chain=signing_chain,
        tcb_info=tcb_body,
        tcb_info_signature=tcb_sig,
        qe_identity_issuer_chain=signing_chain,
        qe_identity=qe_body,
        qe_identity_signature=qe_sig,
    )
