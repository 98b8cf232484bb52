"""Errors of the Enclave-TLS layer.

Each one is an :mod:`eaa.errors` subclass with its own stable ``code``: a peer whose certificate or
evidence fails a check raises a :class:`~eaa.errors.VerificationError` subclass on the verifying
side; a peer that does not speak TLS, or breaks off, raises a :class:`~eaa.errors.ProtocolError`
or :class:`~eaa.errors.TransportError` subclass.
"""

from __future__ import annotations

from ..errors import IdentityMismatch, ProtocolError, TransportError, UnsupportedEvidence, VerificationError
from ..verify.verifier import ReportDataMismatch  # noqa: F401  (raised by verifiers: report data != SHA256(claims))


class PeerCertificateError(VerificationError):
    """The peer certificate is malformed, not self-signed, or carries an extension we must refuse."""

    code = "PEER_CERTIFICATE_INVALID"


class CriticalExtension(PeerCertificateError):
    """An evidence extension (or another extension we do not understand) is marked critical."""

    code = "CRITICAL_EXTENSION"


class CertificateExpired(PeerCertificateError):
    code = "CERTIFICATE_EXPIRED"


class CertificateNotYetValid(PeerCertificateError):
    code = "CERTIFICATE_NOT_YET_VALID"


class EvidenceFormatError(PeerCertificateError):
    """The evidence or endorsements extension is not the CBOR structure it must be."""

    code = "EVIDENCE_FORMAT_INVALID"


class UnknownEvidenceTag(EvidenceFormatError):
    code = "UNKNOWN_EVIDENCE_TAG"


class ClaimsError(EvidenceFormatError):
    """The claims buffer is not a map of text to byte strings with a valid ``pubkey-hash``."""

    code = "CLAIMS_INVALID"


class PubkeyHashMismatch(IdentityMismatch):
    """The evidence (claims ``pubkey-hash`` or the legacy report data) is bound to another key."""

    code = "PUBKEY_HASH_MISMATCH"


class MissingEvidence(VerificationError):
    """The peer sent no evidence and the configuration does not name ``nullverifier``."""

    code = "NO_EVIDENCE"


class PeerCertificateRequired(VerificationError):
    """Mutual mode: the client presented no certificate."""

    code = "PEER_CERTIFICATE_REQUIRED"


class EvidenceTypeMismatch(VerificationError):
    """The named verifier does not verify the kind of evidence the peer sent."""

    code = "EVIDENCE_TYPE_MISMATCH"


class UnsupportedEvidenceType(UnsupportedEvidence):
    """Evidence eaa recognises (SEV, CSV, TEE reports) but has no verifier for."""

    code = "UNSUPPORTED_EVIDENCE_TYPE"


class HandshakeFailed(ProtocolError):
    """The TLS handshake failed: the peer is not speaking TLS or we share no protocol/cipher."""

    code = "TLS_HANDSHAKE_FAILED"


class HandshakeAbandoned(HandshakeFailed):
    """The peer closed the connection during the handshake: a port probe, or a client that gave up."""


class PeerRejected(ProtocolError):
    """The peer ended the handshake (or session) with a TLS alert, e.g. because it rejected our evidence."""

    code = "PEER_REJECTED"


class MessageTooLarge(ProtocolError):
    code = "MESSAGE_TOO_LARGE"


class TlsTimeout(TransportError):
    code = "TIMEOUT"


class ConnectionClosed(TransportError):
    code = "CONNECTION_CLOSED"
