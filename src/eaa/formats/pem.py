"""Finding the certificates of a PEM bundle.

Quotes (certification data type 5), Intel's issuer-chain headers and KDS answers all carry PEM
certificate chains; every reader splits them here, so they agree on what a chain holds. Blocks are
found with ``bytes.find``: chains are read on every cold verification, and a regex costs more than
the parse. An unterminated last block is not a certificate and is left out.
"""

from __future__ import annotations

PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
PEM_END = b"-----END CERTIFICATE-----"


def pem_bodies(data: bytes) -> list[bytes]:
    """The base64 text of each BEGIN..END CERTIFICATE block, in order."""
    out: list[bytes] = []
    pos = 0
    while True:
        start = data.find(PEM_BEGIN, pos)
        if start < 0:
            return out
        end = data.find(PEM_END, start)
        if end < 0:
            return out
        pos = end + len(PEM_END)
        out.append(data[start + len(PEM_BEGIN):end])


def pem_blocks(data: bytes) -> list[bytes]:
    """Each certificate block of ``data`` as a PEM document of its own, in order."""
    return [PEM_BEGIN + body + PEM_END + b"\n" for body in pem_bodies(data)]
