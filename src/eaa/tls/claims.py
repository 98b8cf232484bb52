"""The DICE claims buffer: a CBOR map ``{"pubkey-hash": bstr(CBOR [alg, hash]), <custom claims>...}``.

Encoding reproduces rats-tls (libcbor ≥ 0.10): a definite map in insertion order, text keys, byte
string values, ``pubkey-hash`` first. Decoding reads only the first CBOR item (older libcbor pads the
buffer with garbage that is nevertheless covered by the report-data hash) and insists on definite
lengths, text keys, byte-string values and no duplicate keys, as the C verifier does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import field
from types import MappingProxyType

import cbor2

from ..errors import ConfigError
from ..records import record
from .errors import ClaimsError, PubkeyHashMismatch

PUBKEY_HASH = "pubkey-hash"
NONCE = "nonce"

# IANA "Named Information Hash Algorithm" ids used by rats-tls (src/include/rats-tls/hash.h).
HASH_SHA256 = 1
HASH_SHA384 = 7
HASH_SHA512 = 8
HASH_ALGORITHMS = {HASH_SHA256: "sha256", HASH_SHA384: "sha384", HASH_SHA512: "sha512"}
_HASH_SIZES = {HASH_SHA256: 32, HASH_SHA384: 48, HASH_SHA512: 64}

MAX_DEPTH = 8


def _hash(alg: int, data: bytes) -> bytes:
    return hashlib.new(HASH_ALGORITHMS[alg], data).digest()


def encode_pubkey_hash(spki_der: bytes, alg: int = HASH_SHA256) -> bytes:
    """``CBOR [alg, bstr hash(SPKI)]``, the value of the ``pubkey-hash`` claim."""
    if alg not in HASH_ALGORITHMS:
        raise ConfigError(f"unsupported pubkey-hash algorithm id {alg}")
    return cbor2.dumps([alg, _hash(alg, spki_der)])


def encode_claims(spki_der: bytes, custom_claims: Mapping[str, bytes] | None = None,
                  *, hash_alg: int = HASH_SHA256) -> bytes:
    """The claims buffer binding ``spki_der``, followed by the custom claims in the caller's order."""
    claims: dict[str, bytes] = {PUBKEY_HASH: encode_pubkey_hash(spki_der, hash_alg)}
    for name, value in (custom_claims or {}).items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"claim names must be non-empty text, not {name!r}")
        if name == PUBKEY_HASH:
            raise ConfigError(f"{PUBKEY_HASH!r} is reserved; it is computed from the certificate key")
        if isinstance(value, str):
            value = value.encode()
        if not isinstance(value, (bytes, bytearray)):
            raise ConfigError(f"claim {name!r} must be bytes, not {type(value).__name__}")
        claims[name] = bytes(value)
    return cbor2.dumps(claims)


@record
class Claims:
    """A decoded claims buffer. ``raw`` holds the exact bytes the hash is taken over."""

    raw: bytes
    pubkey_hash_alg: int
    pubkey_hash: bytes
    custom: Mapping[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "custom", MappingProxyType(dict(self.custom)))

    @property
    def digest(self) -> bytes:
        """SHA-256 over the claims buffer exactly as received: what report_data[0:32] must hold."""
        return hashlib.sha256(self.raw).digest()

    def check_key(self, spki_der: bytes) -> None:
        """Raise :class:`PubkeyHashMismatch` unless ``pubkey-hash`` is the hash of ``spki_der``."""
        if _hash(self.pubkey_hash_alg, spki_der) != self.pubkey_hash:
            raise PubkeyHashMismatch("the claims pubkey-hash does not match the certificate's public key: "
                                     "the evidence is bound to another key")


def _loads_first(data: bytes, what: str) -> object:
    try:
        return cbor2.loads(data, allow_indefinite=False, allow_duplicate_keys=False, max_depth=MAX_DEPTH)
    except Exception as e:  # cbor2 raises several types (CBORDecodeError, ValueError, RecursionError ...)
        raise ClaimsError(f"{what} is not valid CBOR: {e}") from None


def decode_claims(raw: bytes) -> Claims:
    """Decode the first CBOR item of ``raw`` as a claims map; trailing bytes are ignored (not dropped)."""
    raw = bytes(raw)
    obj = _loads_first(raw, "claims buffer")
    if not isinstance(obj, dict):
        raise ClaimsError("claims buffer is not a CBOR map")
    custom: dict[str, bytes] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise ClaimsError(f"claim name {key!r} is not a text string")
        if not isinstance(value, bytes):
            raise ClaimsError(f"claim {key!r} is not a byte string")
        if key != PUBKEY_HASH:
            custom[key] = value
    if PUBKEY_HASH not in obj:
        raise ClaimsError(f"claims buffer lacks {PUBKEY_HASH!r}")
    ph = _loads_first(obj[PUBKEY_HASH], PUBKEY_HASH)
    if not isinstance(ph, (list, tuple)) or len(ph) != 2:
        raise ClaimsError(f"{PUBKEY_HASH!r} is not a 2-element array")
    alg, digest = ph
    if not isinstance(alg, int) or isinstance(alg, bool) or alg not in HASH_ALGORITHMS:
        raise ClaimsError(f"{PUBKEY_HASH!r} uses unsupported hash algorithm {alg!r}")
    if not isinstance(digest, bytes) or len(digest) != _HASH_SIZES[alg]:
        raise ClaimsError(f"{PUBKEY_HASH!r} digest has the wrong size for {HASH_ALGORITHMS[alg]}")
    return Claims(raw, alg, digest, custom)
