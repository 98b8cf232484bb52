"""Trust anchors: the pinned Intel SGX Root CA, and any root the caller explicitly adds.

The Intel root ships inside the package and is checked against its published SHA-256 fingerprint
on load, so a tampered installation fails loudly instead of trusting the wrong key. A simulated
platform's root is only ever an anchor because a caller passed it, and every result rooted in it
is marked ``simulated``.
"""

from __future__ import annotations

import binascii
import hashlib
import os
from dataclasses import field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ..errors import ConfigError, FormatError
from ..formats.pem import pem_bodies
from ..formats.x509_errors import NAME_ERRORS, PARSE_ERRORS
from ..records import record
from .names import PkiNames, pki_names

INTEL_SGX_ROOT_CA_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
SIMULATION_MARKER = "SIMULATION"


@record
class TrustAnchor:
    """A root certificate that chains may end in, with the name results report for it; a simulated platform's
    root is marked as such."""

    certificate: x509.Certificate
    name: str
    simulated: bool = False
    # The certificate's DER when the loader had it (it must be exactly that certificate's encoding).
    encoded: bytes | None = field(default=None, repr=False, compare=False)

    # Derived once per anchor: chains are matched to anchors and verified with their keys on every call.
    @cached_property
    def der(self) -> bytes:
        return self.encoded if self.encoded is not None else der_of(self.certificate)

    @cached_property
    def public_key(self) -> Any:
        return self.certificate.public_key()

    @cached_property
    def window(self) -> tuple[x509.Certificate, Any, Any]:
        """(certificate, not valid before, not valid after), as chains list their members' windows."""
        return (self.certificate, self.certificate.not_valid_before_utc, self.certificate.not_valid_after_utc)

    @cached_property
    def is_ca(self) -> bool:
        return is_ca(self.certificate)

    @cached_property
    def names(self) -> PkiNames | None:
        """Who may sign what under this root (None: its name does not say, so nothing is accepted)."""
        try:
            return pki_names(self.certificate.subject)
        except PARSE_ERRORS:
            return None

    @cached_property
    def names_simulation(self) -> bool:
        return is_simulation_certificate(self.certificate)

    @cached_property
    def fingerprint(self) -> bytes:
        return self.certificate.fingerprint(hashes.SHA256())


def der_of(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    """A certificate's or CRL's DER, for callers that do not hold it already.

    Imported here rather than at the top: cryptography's serialization package brings its SSH key
    formats and ciphers with it, several milliseconds of a one-shot command's start that a verifier
    holding the DER it parsed never needs.
    """
    from cryptography.hazmat.primitives.serialization import Encoding

    return obj.public_bytes(Encoding.DER)


def is_ca(cert: x509.Certificate) -> bool:
    return basic_constraints(cert)[0]


def basic_constraints(cert: x509.Certificate) -> tuple[bool, int | None]:
    """(cA, pathLenConstraint); cryptography reads extensions on first use, so a malformed one is typed here."""
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False, None
    except PARSE_ERRORS as e:
        raise FormatError(f"certificate has malformed extensions ({e})", field="certificate") from None
    return bool(bc.ca), bc.path_length


def is_simulation_certificate(cert: x509.Certificate) -> bool:
    try:
        return SIMULATION_MARKER in cert.subject.rfc4514_string().upper()
    except NAME_ERRORS:
        raise FormatError("certificate has a malformed subject name", field="certificate") from None


@lru_cache(maxsize=1)
def intel_root() -> TrustAnchor:
    # Read beside this package, as a plain file: importing importlib.resources costs a one-shot command
    # about as much as the verification itself, and eaa is only ever installed unpacked.
    return pinned_intel_root((Path(__file__).resolve().parent.parent / "data" / "intel_sgx_root_ca.pem").read_bytes())


def pinned_intel_root(pem: bytes) -> TrustAnchor:
    """The Intel root from its packaged PEM, refused unless its DER hashes to the published fingerprint."""
    bodies = pem_bodies(pem)
    try:
        der = binascii.a2b_base64(bodies[0]) if len(bodies) == 1 else b""
    except binascii.Error:
        der = b""
    if hashlib.sha256(der).hexdigest() != INTEL_SGX_ROOT_CA_SHA256:
        raise ConfigError("the packaged Intel SGX Root CA does not match its pinned fingerprint")
    return TrustAnchor(x509.load_der_x509_certificate(der), "Intel SGX Root CA", simulated=False, encoded=der)


def anchor_from_pem(data: bytes, name: str | None = None) -> TrustAnchor:
    """An explicitly trusted root; a root naming itself a simulation is always marked simulated."""
    try:
        cert = x509.load_pem_x509_certificate(data)
    except PARSE_ERRORS:
        try:
            cert = x509.load_der_x509_certificate(data)
        except PARSE_ERRORS:
            raise ConfigError("trust root is neither a PEM nor a DER certificate") from None
    return TrustAnchor(cert, name or cert.subject.rfc4514_string(), simulated=is_simulation_certificate(cert))


def anchor_from_file(path: str | os.PathLike[str]) -> TrustAnchor:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read trust root {path}: {e.strerror}") from None
    return anchor_from_pem(data, str(path))


def default_anchors() -> tuple[TrustAnchor, ...]:
    return (intel_root(),)
