"""SEV-SNP endorsements in the DICE endorsements extension: the host's certificate table beside the report.

rats-tls defines endorsements (OID ``2.23.133.5.4.2``) only for SGX/TDX quotes (tag 60000); its
``sev_snp`` attester carries no certificates and its verifier downloads the VCEK and chain from AMD's
KDS. eaa carries them in the same extension, shaped like the DCAP one but under the SNP evidence tag::

    tag(0x1A7504)([uint32 version = 1, bstr cert_table, bstr crl])

``cert_table`` is AMD's certificate table (GHCB layout: ``{GUID, u32 offset, u32 length}`` entries, an
all-zero entry, then the DER certificates) exactly as the host handed it to the guest (configfs-tsm
``auxblob``, SNP_GET_EXT_REPORT), or empty; ``crl`` is the DER of AMD's CRL for the chain, or empty
(a real host supplies none). The version is a fixed-width uint32 (``1a 00000001``), as libcbor writes
the DCAP one. A C rats-tls peer refuses endorsements on any evidence but SGX/TDX, so, like DCAP
collateral, they are sent only on request (``-e``); the verifier trusts none of it by itself.
"""

from __future__ import annotations

import struct

import cbor2

from ..checks import Check
from ..formats.snp_certs import SnpEndorsements
from .dice import TAG_SEV_SNP, cbor_head, read_head
from .errors import EvidenceFormatError

SNP_ENDORSEMENTS_VERSION = 1
SNP_ENDORSEMENT_FIELDS = 3
MAX_SNP_ENDORSEMENTS = 1 << 20


def _error(message: str) -> EvidenceFormatError:
    return EvidenceFormatError(f"SNP endorsements: {message}", check=Check.SNP_ENDORSEMENTS)


def encode_snp_endorsements(endorsements: SnpEndorsements) -> bytes:
    """The endorsements extension value for SNP evidence (the first CRL only: the one for the chain)."""
    crl = endorsements.crls[0] if endorsements.crls else b""
    return (cbor_head(6, TAG_SEV_SNP) + cbor_head(4, SNP_ENDORSEMENT_FIELDS)
            + b"\x1a" + struct.pack(">I", SNP_ENDORSEMENTS_VERSION)
            + cbor2.dumps(endorsements.table.raw) + cbor2.dumps(bytes(crl)))


def decode_snp_endorsements(value: bytes) -> SnpEndorsements:
    """Parse the extension; a malformed table is a FormatError with check ``SNP_CERT_TABLE``."""
    try:
        return _decode(bytes(value))
    except EvidenceFormatError as e:
        if e.check != Check.SNP_ENDORSEMENTS:  # a truncated head, found by the shared CBOR reader
            raise _error(e.message) from None
        raise


def _decode(value: bytes) -> SnpEndorsements:
    if len(value) > MAX_SNP_ENDORSEMENTS:
        raise _error(f"{len(value)} bytes exceed {MAX_SNP_ENDORSEMENTS}")
    major, tag, _, pos = read_head(value, 0, "SNP endorsements")
    if major != 6 or tag != TAG_SEV_SNP:
        raise _error(f"not CBOR tag {TAG_SEV_SNP:#x} (the SNP evidence tag)")
    major, count, _, vpos = read_head(value, pos, "SNP endorsements")
    if major != 4 or count != SNP_ENDORSEMENT_FIELDS:
        raise _error(f"not an array of {SNP_ENDORSEMENT_FIELDS} entries")
    vmajor, version, width, _ = read_head(value, vpos, "SNP endorsements version")
    if vmajor != 0 or width != 26:
        raise _error("the version must be a 32-bit unsigned integer (1a xx xx xx xx)")
    if version != SNP_ENDORSEMENTS_VERSION:
        raise _error(f"unsupported version {version}")
    try:
        items = cbor2.loads(value[pos:], allow_indefinite=False, max_depth=2)
    except Exception:  # noqa: BLE001 - cbor2 raises a mix of types on garbage
        raise _error("not valid CBOR") from None
    if not isinstance(items, (list, tuple)) or len(items) != count or not all(isinstance(i, bytes) for i in items[1:]):
        raise _error("the certificate table and CRL must be byte strings")
    return SnpEndorsements.parse(items[1], (items[2],))
