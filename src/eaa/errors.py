"""Typed errors shared by every layer of eaa.

Every failure a user can meet is an :class:`EaaError` subclass carrying a stable ``code`` (a string
tools can match on) and a stable process ``exit_code``, so command-line tools can map any failure
to one line of text and a documented exit status without ever showing a traceback.

``code`` says what kind of failure it is (its class); ``check`` names the one check that failed
(:class:`eaa.checks.Check`, e.g. ``TCB_INFO_SIGNER``), so tools and tests can tell two signature failures
apart without reading message text. Where no finer check applies, ``check`` is the code.
"""

from __future__ import annotations


class EaaError(Exception):
    """Base of every eaa error: one line of text, a stable code and an exit status."""

    code: str = "ERROR"
    exit_code: int = 1

    def __init__(self, message: str, *, check: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.check = str(check) if check is not None else self.code

    def __str__(self) -> str:
        return self.message

    @property
    def tag(self) -> str:
        """``[CODE]``, followed by the check when it says more, as one-line messages print it."""
        return f"[{self.code}]" if self.check == self.code else f"[{self.code}] {self.check}"

    def to_dict(self) -> dict[str, str]:
        """What ``--json`` output and the daemons' error replies carry."""
        return {"code": self.code, "check": self.check, "message": self.message}


class FormatError(EaaError, ValueError):
    """Bytes or text that do not parse as the structure they claim to be."""

    code = "FORMAT_ERROR"
    exit_code = 3

    def __init__(self, message: str, *, field: str | None = None, offset: int | None = None,
                 check: str | None = None) -> None:
        where = []
        if field is not None:
            where.append(f"field {field}")
        if offset is not None:
            where.append(f"offset {offset}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message, check=check)
        self.field = field
        self.offset = offset


class VerificationError(EaaError):
    """Evidence was parsed but a cryptographic or identity check failed."""

    code = "VERIFICATION_FAILED"
    exit_code = 4


class InvalidSignature(VerificationError):
    code = "INVALID_SIGNATURE"


class CertificateChainError(VerificationError):
    code = "CERTIFICATE_CHAIN_INVALID"


class UntrustedRoot(CertificateChainError):
    code = "UNTRUSTED_ROOT"


class CrlError(VerificationError):
    code = "CRL_INVALID"


class IdentityMismatch(VerificationError):
    """Quote fields disagree with collateral (QE identity, FMSPC, PCE-ID, TDX module, report data)."""

    code = "IDENTITY_MISMATCH"


class CollateralInvalid(VerificationError):
    """Collateral is present but malformed or inconsistent (bad JSON, unknown status, wrong TEE)."""

    code = "COLLATERAL_INVALID"


class TcbNotSupported(EaaError):
    code = "TCB_NOT_SUPPORTED"
    exit_code = 5


class CollateralMissing(EaaError):
    code = "COLLATERAL_MISSING"
    exit_code = 6


class CollateralExpired(EaaError):
    code = "COLLATERAL_EXPIRED"
    exit_code = 7


class UnsupportedEvidence(EaaError):
    """Evidence in a form eaa recognises but cannot verify offline (e.g. certification data 1-3)."""

    code = "UNSUPPORTED"
    exit_code = 8


class UnsupportedCertificationData(UnsupportedEvidence):
    code = "UNSUPPORTED_CERTIFICATION_DATA"


class UnsupportedQuoteFormat(UnsupportedEvidence):
    code = "UNSUPPORTED_QUOTE_FORMAT"


class PolicyViolation(EaaError):
    """Verification succeeded but the appraisal policy rejects the result."""

    code = "POLICY_VIOLATION"
    exit_code = 9


class Revoked(PolicyViolation):
    code = "REVOKED"
    exit_code = 10


class ConfigError(EaaError):
    code = "CONFIG_ERROR"
    exit_code = 2


class ProtocolError(EaaError):
    """A peer sent something that is not the protocol (garbage, oversized, slow)."""

    code = "PROTOCOL_ERROR"
    exit_code = 11


class TransportError(EaaError):
    """A peer could not be reached or the connection broke."""

    code = "TRANSPORT_ERROR"
    exit_code = 12
