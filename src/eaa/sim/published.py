"""What a simulated platform publishes to verifiers, read straight from its state directory: the root
certificate and the signed collateral.

A verifier told to trust the simulation needs nothing else, so it neither loads the platform's private
keys nor imports the simulator (generation, quoting enclaves, key handling): a one-shot ``shelter`` run
spent some 20 ms there. A missing platform is still created on first use, as :func:`load_platform` does.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Mapping
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


def _certificate(files: Mapping[str, bytes], name: str, d: Path) -> tuple[str, bytes, x509.Certificate]:
    """A certificate file as PEM text (as collateral carries it), its DER and parsed: one certificate, or a
    typed error."""
    data = files[name]
    try:
        bodies = pem_bodies(data)
        if len(bodies) != 1:
            raise ValueError(name)
        der = binascii.a2b_base64(bodies[0])
        return data.decode("ascii"), der, x509.load_der_x509_certificate(der)
    except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
        raise FormatError(f"{_WHAT} {d} holds a damaged certificate ({name})", field=name) from None


def _pem_text(files: Mapping[str, bytes], name: str, d: Path) -> str:
    return _certificate(files, name, d)[0]


def published_anchor(sim_dir: str | os.PathLike[str] | None = None, *,
                     now: datetime | None = None) -> TrustAnchor:
    """The platform's root as a trust anchor (``simulated=True``), read from its directory."""
    d = _state_dir(sim_dir, now)
    _, der, cert = _certificate(read_state(d, [ROOT_FILE], _WHAT), ROOT_FILE, d)
    return root_anchor(cert, d, der)


def root_anchor(root: x509.Certificate, d: Path, der: bytes | None = None) -> TrustAnchor:
    """The anchor of the platform in ``d`` whose root is ``root`` (``der``: its exact encoding, when the caller
    has it), named after its directory."""
    return TrustAnchor(root, f"EAA simulated TEE root ({d})", simulated=True, encoded=der)


def published_collateral(tee: str, sim_dir: str | os.PathLike[str] | None = None, *,
                         now: datetime | None = None) -> Collateral:
    """The collateral for ``tee`` ("sgx" or "tdx") quotes, read from the platform's directory."""
    names = collateral_files(tee)
    d = _state_dir(sim_dir, now)
    return collateral_from_files(read_state(d, names, _WHAT), tee, d)


def _signed_files(tee: str) -> tuple[str, str]:
    """The files of ``tee``'s signed TCB info and QE identity."""
    if tee not in TEES:
        raise ConfigError(f"unknown TEE {tee!r} (choose sgx or tdx)")
    return COLLATERAL_FILES[tee]


def collateral_files(tee: str) -> list[str]:
    """The files the collateral for ``tee`` quotes is made of."""
    return [ROOT_FILE, "pck_ca.pem", "tcb_signing.pem", "root_ca_crl.der", "pck_crl.der", *_signed_files(tee)]


def collateral_from_files(files: Mapping[str, bytes], tee: str, d: Path) -> Collateral:
    """The collateral for ``tee`` quotes from the platform's files (:func:`collateral_files`; more may be given),
    the one way both the simulator and the verifiers that trust it put it together."""
    tcb_name, qe_name = _signed_files(tee)
    tcb_body, tcb_sig = split_signed(files[tcb_name], "tcbInfo")
    qe_body, qe_sig = split_signed(files[qe_name], "enclaveIdentity")
    root = _pem_text(files, ROOT_FILE, d)
    signing_chain = _pem_text(files, "tcb_signing.pem", d) + root
    return Collateral(
        pck_crl_issuer_chain=_pem_text(files, "pck_ca.pem", d) + root,
        root_ca_crl=files["root_ca_crl.der"],
        pck_crl=files["pck_crl.der"],
        tcb_info_issuer_chain=signing_chain,
        tcb_info=tcb_body,
        tcb_info_signature=tcb_sig,
        qe_identity_issuer_chain=signing_chain,
        qe_identity=qe_body,
        qe_identity_signature=qe_sig,
    )
