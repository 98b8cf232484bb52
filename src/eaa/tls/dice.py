"""TCG DICE certificate extensions as rats-tls writes them (interoperable RA-TLS).

* evidence, OID ``2.23.133.5.4.9``: ``tag(T)([bstr raw_evidence, bstr claims_buffer])``
* endorsements, OID ``2.23.133.5.4.2``: ``tag(60000)([uint32 version, bstr tcb_info, bstr tcb_info_issuer_chain,
  bstr pck_crl, bstr root_ca_crl, bstr pck_crl_issuer_chain, bstr qe_identity, bstr qe_identity_issuer_chain])``

Heads are minimal except the endorsements version, which libcbor always writes (and the C parser
requires) as a 32-bit integer ``1a xx xx xx xx``. Decoding reads only the first CBOR item; byte
strings come back exactly as received.
"""

from __future__ import annotations

import struct

import cbor2

from ..collateral.bundle import Collateral, crl_to_der
from ..errors import CollateralInvalid, EaaError, FormatError, UnsupportedQuoteFormat
from ..evidence import CSV, SEV, SEV_SNP, SGX_ECDSA, SGX_LA, TDX_ECDSA, TEE_REPORT, UNVERIFIABLE
from ..formats.signed_json import join_signed
from ..formats.x509_errors import PARSE_ERRORS
from ..records import record
from .errors import EvidenceFormatError, UnknownEvidenceTag, UnsupportedEvidenceType

OID_TAGGED_EVIDENCE = "2.23.133.5.4.9"
OID_ENDORSEMENT_MANIFEST = "2.23.133.5.4.2"

TAG_SGX_TDX_QUOTE = 60000  # Intel SGX/TDX ECDSA quote (IANA)
TAG_TEE_REPORT = 60001
TAG_SGX_LA_REPORT = 60002
TAG_SEV_SNP = 0x1A7504
TAG_SEV = 0x1A7505
TAG_CSV = 0x1A7506
TAG_MIN, TAG_MAX = TAG_SGX_TDX_QUOTE, TAG_CSV

EVIDENCE_TAGS = {SGX_ECDSA: TAG_SGX_TDX_QUOTE, TDX_ECDSA: TAG_SGX_TDX_QUOTE, SGX_LA: TAG_SGX_LA_REPORT,
                 SEV_SNP: TAG_SEV_SNP}

_OTHER_TAGS = {TAG_TEE_REPORT: TEE_REPORT, TAG_SEV: SEV, TAG_CSV: CSV}

MAX_EVIDENCE_SIZE = 1 << 20
ENDORSEMENTS_VERSION_SGX = 3
ENDORSEMENTS_VERSION_TDX = 4
ENDORSEMENT_FIELDS = 8  # a 9th (creation datetime) is accepted and ignored


# ---------- CBOR heads (for the few places where exact bytes matter) ----------
def cbor_head(major: int, value: int) -> bytes:
    """The minimal-length CBOR head, as libcbor and cbor2 write it."""
    mt = major << 5
    if value < 24:
        return bytes([mt | value])
    if value < 0x100:
        return bytes([mt | 24, value])
    if value < 0x10000:
        return bytes([mt | 25]) + struct.pack(">H", value)
    if value < 0x100000000:
        return bytes([mt | 26]) + struct.pack(">I", value)
    return bytes([mt | 27]) + struct.pack(">Q", value)


def read_head(data: bytes, pos: int, what: str) -> tuple[int, int, int, int]:
    """(major type, argument, additional-info width code, next position) of the head at ``pos``."""
    if pos >= len(data):
        raise EvidenceFormatError(f"{what}: truncated CBOR")
    ib = data[pos]
    major, info = ib >> 5, ib & 0x1F
    pos += 1
    if info < 24:
        return major, info, info, pos
    sizes = {24: 1, 25: 2, 26: 4, 27: 8}
    if info not in sizes:
        raise EvidenceFormatError(f"{what}: indefinite or reserved CBOR head {ib:#04x}")
    n = sizes[info]
    if pos + n > len(data):
        raise EvidenceFormatError(f"{what}: truncated CBOR head")
    return major, int.from_bytes(data[pos:pos + n], "big"), info, pos + n


def _loads(data: bytes, what: str) -> object:
    try:
        return cbor2.loads(data, allow_indefinite=False, max_depth=4)
    except Exception as e:  # noqa: BLE001 - cbor2 raises a mix of types on garbage
        raise EvidenceFormatError(f"{what} is not valid CBOR: {e}") from None


# ---------- evidence extension ----------
def check_verifiable(evidence_type: str, verifier: str) -> None:
    """Evidence eaa cannot verify is accepted only by a named nullverifier; any other verifier refuses it."""
    why = UNVERIFIABLE.get(evidence_type)
    if why is not None and verifier != "nullverifier":
        raise UnsupportedEvidenceType(why)


def encode_evidence(tag: int, evidence: bytes, claims: bytes) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(tag, [bytes(evidence), bytes(claims)]))


@record
class TaggedEvidence:
    """The decoded DICE evidence extension: the evidence, its type from the CBOR tag, the claims bytes as received."""

    tag: int
    evidence_type: str
    evidence: bytes
    claims: bytes  # exact bytes of the claims bstr


def classify_quote(quote: bytes) -> str:
    """sgx_ecdsa or tdx_ecdsa for a tag-60000 quote, from its header (rats-tls rules); EPID is refused."""
    if len(quote) < 8:
        raise EvidenceFormatError(f"quote of {len(quote)} bytes is too short for a header")
    version, akt = struct.unpack_from("<HH", quote, 0)
    tee_type = struct.unpack_from("<I", quote, 4)[0]
    if version == 3 and akt in (2, 3):
        return SGX_ECDSA
    if version in (4, 5) and tee_type == 0:
        return SGX_ECDSA
    if version in (4, 5) and tee_type == 0x81:
        return TDX_ECDSA
    if version == 2 or (version == 3 and akt == 0):
        raise UnsupportedQuoteFormat("EPID quotes are not supported")
    raise UnsupportedQuoteFormat(f"unrecognised quote header (version {version}, key type {akt}, "
                                 f"tee type {tee_type:#x})")


def evidence_type_for_tag(tag: int, evidence: bytes) -> str:
    if tag == TAG_SGX_TDX_QUOTE:
        return classify_quote(evidence)
    if tag == TAG_SGX_LA_REPORT:
        return SGX_LA
    if tag == TAG_SEV_SNP:
        return SEV_SNP
    if tag in _OTHER_TAGS:
        return _OTHER_TAGS[tag]
    raise UnknownEvidenceTag(f"unknown evidence CBOR tag {tag} ({tag:#x})")


def decode_evidence(value: bytes) -> TaggedEvidence:
    """Parse the evidence extension value; only the first CBOR item counts."""
    value = bytes(value)
    major, tag, _, pos = read_head(value, 0, "evidence extension")
    if major != 6:
        raise EvidenceFormatError("evidence extension is not a CBOR tag")
    if not TAG_MIN <= tag <= TAG_MAX or (tag not in EVIDENCE_TAGS.values() and tag not in _OTHER_TAGS):
        raise UnknownEvidenceTag(f"unknown evidence CBOR tag {tag} ({tag:#x})")
    body = _loads(value[pos:], "evidence extension")
    if not isinstance(body, (list, tuple)) or len(body) != 2:
        raise EvidenceFormatError("evidence extension is not tag(T)([evidence, claims])")
    evidence, claims = body
    if not isinstance(evidence, bytes) or not isinstance(claims, bytes):
        raise EvidenceFormatError("evidence and claims buffer must be byte strings")
    if not evidence:
        raise EvidenceFormatError("evidence is empty")
    if len(evidence) > MAX_EVIDENCE_SIZE:
        raise EvidenceFormatError(f"evidence of {len(evidence)} bytes exceeds {MAX_EVIDENCE_SIZE}")
    return TaggedEvidence(tag, evidence_type_for_tag(tag, evidence), evidence, claims)


# ---------- endorsements extension ----------
def _z(text: str | bytes | None) -> bytes:
    """A C string as DCAP's QPL hands it over: the bytes and their terminating NUL."""
    if text is None:
        return b""
    data = text.encode() if isinstance(text, str) else bytes(text)
    return data + b"\x00" if data else b""


def _crl_pem(der: bytes | None) -> bytes:
    if not der:
        return b""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        return _z(x509.load_der_x509_crl(der).public_bytes(Encoding.PEM))
    except PARSE_ERRORS as e:
        raise FormatError(f"a CRL to endorse is not DER ({e})", field="endorsements") from None


def encode_endorsements(collateral: Collateral, *, version: int = ENDORSEMENTS_VERSION_SGX) -> bytes:
    """The endorsements extension value, with the version as a fixed-width uint32 (libcbor quirk)."""
    tcb_info = join_signed("tcbInfo", collateral.tcb_info, collateral.tcb_info_signature)
    qe_identity = join_signed("enclaveIdentity", collateral.qe_identity, collateral.qe_identity_signature)
    fields = [
        _z(tcb_info),
        _z(collateral.tcb_info_issuer_chain),
        _crl_pem(collateral.pck_crl),
        _crl_pem(collateral.root_ca_crl),
        _z(collateral.pck_crl_issuer_chain),
        _z(qe_identity),
        _z(collateral.qe_identity_issuer_chain),
    ]
    out = cbor_head(6, TAG_SGX_TDX_QUOTE) + cbor_head(4, ENDORSEMENT_FIELDS) + b"\x1a" + struct.pack(">I", version)
    return out + b"".join(cbor2.dumps(f) for f in fields)


@record
class Endorsements:
    """The decoded DICE endorsements extension: its version and the DCAP collateral it carries."""

    version: int
    collateral: Collateral


def _text(b: bytes) -> str:
    return b.rstrip(b"\x00").decode("utf-8", "replace")


def _crl_bytes(b: bytes) -> bytes:
    """DER is taken as is; PEM or hex text loses its C terminator."""
    return b if b[:1] == b"\x30" else b.rstrip(b"\x00")


def decode_endorsements(value: bytes) -> Endorsements:
    value = bytes(value)
    major, tag, _, pos = read_head(value, 0, "endorsements extension")
    if major != 6 or tag != TAG_SGX_TDX_QUOTE:
        raise EvidenceFormatError(f"endorsements extension must be CBOR tag {TAG_SGX_TDX_QUOTE}")
    major, count, _, vpos = read_head(value, pos, "endorsements extension")
    if major != 4 or count not in (ENDORSEMENT_FIELDS, ENDORSEMENT_FIELDS + 1):
        raise EvidenceFormatError("endorsements extension is not an array of 8 (or 9) entries")
    vmajor, _, width, _ = read_head(value, vpos, "endorsements version")
    if vmajor != 0 or width != 26:
        raise EvidenceFormatError("endorsements version must be a 32-bit unsigned integer (1a xx xx xx xx)")
    items = _loads(value[pos:], "endorsements extension")
    if not isinstance(items, (list, tuple)) or len(items) != count:
        raise EvidenceFormatError("endorsements extension is malformed")
    version = items[0]
    fields = items[1:ENDORSEMENT_FIELDS]
    if not all(isinstance(f, bytes) for f in fields):
        raise EvidenceFormatError("endorsements entries must be byte strings")
    tcb_info, tcb_chain, pck_crl, root_crl, crl_chain, qe_identity, qe_chain = fields
    try:
        collateral = Collateral.from_pcs_parts(
            tcb_info_response=_text(tcb_info),
            qe_identity_response=_text(qe_identity),
            tcb_info_issuer_chain=_text(tcb_chain),
            qe_identity_issuer_chain=_text(qe_chain) or None,
            pck_crl_issuer_chain=_text(crl_chain),
            root_ca_crl=crl_to_der(_crl_bytes(root_crl), "root_ca_crl"),
            pck_crl=crl_to_der(_crl_bytes(pck_crl), "pck_crl"),
        )
    except EaaError as e:
        raise CollateralInvalid(f"endorsements extension: {e}") from None
    return Endorsements(version, collateral)
