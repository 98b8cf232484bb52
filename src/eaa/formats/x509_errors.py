"""What ``cryptography`` raises for a certificate or CRL it cannot read.

Mostly ``ValueError``, but an unknown version field is ``x509.InvalidVersion``, which derives from
``Exception`` only, and so is ``x509.DuplicateExtension`` (raised when extensions are first read): a
parser that catches ``ValueError`` alone lets a one-byte change in a chain escape as an untyped error.
Names whose attribute values cannot be rendered as text raise ``TypeError`` (:data:`NAME_ERRORS`).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

PARSE_ERRORS: tuple[type[Exception], ...] = (ValueError, x509.InvalidVersion, x509.DuplicateExtension)
NAME_ERRORS: tuple[type[Exception], ...] = (*PARSE_ERRORS, TypeError)
# Anything reading a parsed certificate can raise: its names, and a key or algorithm cryptography does not support.
READ_ERRORS: tuple[type[Exception], ...] = (*NAME_ERRORS, UnsupportedAlgorithm)
