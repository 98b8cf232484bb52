"""The packaged Intel root is pinned by fingerprint, and anchors keep the DER they were loaded from."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from eaa.errors import ConfigError
from eaa.pki.trust import INTEL_SGX_ROOT_CA_SHA256, TrustAnchor, der_of, intel_root, pinned_intel_root

PACKAGED = Path(__file__).resolve().parent.parent / "src" / "eaa" / "data" / "intel_sgx_root_ca.pem"


def test_packaged_root_loads_with_its_der() -> None:
    anchor = intel_root()
    assert anchor.encoded is not None
    assert anchor.der == anchor.encoded == der_of(anchor.certificate)
    assert anchor.fingerprint.hex() == INTEL_SGX_ROOT_CA_SHA256
    assert not anchor.simulated


@pytest.mark.parametrize("pem", [
    b"",
    b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    PACKAGED.read_bytes() * 2,  # two certificates: which one would be trusted?
    PACKAGED.read_bytes().replace(b"MII", b"MIJ", 1),
], ids=["empty", "not-base64", "two-certificates", "altered"])
def test_anything_but_the_pinned_root_is_refused(pem: bytes) -> None:
    with pytest.raises(ConfigError, match="pinned fingerprint"):
        pinned_intel_root(pem)


def test_another_root_is_refused() -> None:
    """An attacker's root with Intel's name is still not Intel's root."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = intel_root().certificate.subject
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(datetime(2020, 1, 1)).not_valid_after(datetime(2040, 1, 1))
            .sign(key, hashes.SHA256()))
    with pytest.raises(ConfigError, match="pinned fingerprint"):
        pinned_intel_root(cert.public_bytes(Encoding.PEM))


def test_anchor_without_der_encodes_its_certificate() -> None:
    cert = intel_root().certificate
    assert TrustAnchor(cert, "x").der == intel_root().der
