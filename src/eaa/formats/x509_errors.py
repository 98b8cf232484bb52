"""What ``cryptography`` raises for a certificate or CRL it cannot read.

Mostly ``ValueError``, but an unknown version field is ``x509.InvalidVersion``, which derives from
``Exception`` only: a parser that catches ``ValueError`` alone lets a one-byte change in a chain escape
as an untyped error.
"""

from __future__ import annotations

from cryptography import x509

PARSE_ERRORS: tuple[type[Exception], ...] = (ValueError, x509.InvalidVersion)
