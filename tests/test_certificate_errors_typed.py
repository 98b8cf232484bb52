"""Regression tests: certificate and name operations that cryptography performs lazily turn every failure
into the project's typed errors (one guard, formats.x509_errors), for the inputs that once escaped."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from eaa.errors import FormatError
from eaa.pki.chain import describe_name
from eaa.pki.trust import basic_constraints, is_ca, is_simulation_certificate
from eaa.sim import pki

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
SKI_OID = bytes.fromhex("0603551d0e")  # 2.5.29.14
AKI_OID = bytes.fromhex("0603551d23")  # 2.5.29.35


def _duplicate_extension_certificate() -> x509.Certificate:
    """One changed byte turns the authority key identifier into a second subject key identifier."""
    key = pki.derive_key(b"seed", "dup")
    cert = pki.make_ca(pki.name("EAA SIMULATION SGX Root CA", "dup"), key, None, key, 1, NOW, path_length=1)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert der.count(AKI_OID) == 1
    return x509.load_der_x509_certificate(der.replace(AKI_OID, SKI_OID))


def test_duplicate_extension_is_a_format_error() -> None:
    cert = _duplicate_extension_certificate()
    with pytest.raises(FormatError):
        is_ca(cert)
    with pytest.raises(FormatError):
        basic_constraints(cert)


def test_describe_name_never_fails() -> None:
    def type_error() -> x509.Name:
        raise TypeError("attribute value is not a string")

    def value_error() -> x509.Name:
        raise ValueError("malformed name")

    assert describe_name(type_error) == "a malformed name"
    assert describe_name(value_error) == "a malformed name"


class _LazyName:
    """cryptography parses a subject on first access; this one fails there, as a malformed one does."""

    @property
    def subject(self) -> x509.Name:
        raise ValueError("error parsing asn1 value")


def test_unreadable_subject_is_a_format_error() -> None:
    with pytest.raises(FormatError):
        is_simulation_certificate(_LazyName())  # type: ignore[arg-type]
