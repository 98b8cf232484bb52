"""Intel's signed collateral JSON: ``{"tcbInfo": {...}, "signature": "<hex r||s>"}``.

The signature covers the exact bytes of the inner object as delivered, so we locate that object's
span in the original text instead of re-serialising it. Duplicate keys are rejected: two parsers
that disagree on which duplicate wins is how signed JSON gets forged.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from ..errors import FormatError

_WS = " \t\r\n"
_decoder = json.JSONDecoder()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise FormatError(f"duplicate JSON key {k!r}", field=k)
        out[k] = v
    return out


def loads_strict(text: str, what: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except FormatError:
        raise
    except (ValueError, RecursionError) as e:
        raise FormatError(f"{what} is not valid JSON: {e}", field=what) from None


class DecodedText(str):
    """Text whose JSON value was decoded where it was found: :func:`split_signed` decodes the inner object to
    know where it ends, and a verifier that then authenticates these exact characters takes that value
    instead of decoding the same text again (a cold TLS peer check used to decode its peer's TCB info and
    QE identity twice). The value was decoded as :func:`loads_fast` decodes, so only authenticated text
    may use it; anything else is parsed strictly as before. Read-only by convention: the value is shared
    by every reader of the text."""

    value: Any


def _decoded(text: str, value: Any) -> DecodedText:
    out = DecodedText(text)
    out.value = value
    return out


def load_body(body: str | bytes, *, authenticated: bool, what: str) -> dict[str, Any]:
    """The inner object of signed collateral as a dict.

    Bytes whose signature was already verified cannot carry duplicate keys Intel did not sign, so
    they take the fast parser (or the value already decoded from them); anything else is parsed strictly.
    """
    if authenticated:
        obj = body.value if type(body) is DecodedText else loads_fast(body, what)
    else:
        obj = loads_strict(utf8_text(body, what, what), what)
    if not isinstance(obj, dict):
        raise FormatError(f"{what} is not a JSON object", field=what)
    return obj


def utf8_text(data: str | bytes | bytearray, what: str, field: str) -> str:
    if not isinstance(data, (bytes, bytearray)):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{what} is not UTF-8", field=field) from None


def loads_fast(text: str | bytes, what: str) -> Any:
    """The stdlib's C decoder without the duplicate-key hook, which calls back into Python for every
    object. (orjson parses Intel's TCB info in half the time, about 30 us, but importing it costs a
    one-shot ``eaa verify-quote`` some 3 ms: it loads ``dataclasses``, ``uuid`` and ``platform``.)"""
    try:
        return json.loads(utf8_text(text, what, what))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise FormatError(f"{what} is not valid JSON: {e}", field=what) from None


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def top_level_spans(text: str, what: str) -> dict[str, tuple[int, int]]:
    """Character spans of each top-level member value of a JSON object."""
    spans: dict[str, tuple[int, int]] = {}
    i = _skip(text, 0)
    if i >= len(text) or text[i] != "{":
        raise FormatError(f"{what} is not a JSON object", field=what, offset=i)
    i = _skip(text, i + 1)
    if i < len(text) and text[i] == "}":
        return spans
    while True:
        try:
            key, i = _decoder.raw_decode(text, i)
            if not isinstance(key, str):
                raise ValueError("object key is not a string")
            i = _skip(text, i)
            if i >= len(text) or text[i] != ":":
                raise ValueError("expected ':'")
            i = _skip(text, i + 1)
            start = i
            _, i = _decoder.raw_decode(text, i)
        except ValueError as e:
            raise FormatError(f"{what} is not valid JSON: {e}", field=what, offset=i) from None
        if key in spans:
            raise FormatError(f"duplicate JSON key {key!r}", field=what, offset=start)
        spans[key] = (start, i)
        i = _skip(text, i)
        if i < len(text) and text[i] == ",":
            i = _skip(text, i + 1)
            continue
        if i < len(text) and text[i] == "}":
            if _skip(text, i + 1) != len(text):
                raise FormatError(f"trailing data after {what}", field=what, offset=i + 1)
            return spans
        raise FormatError(f"{what} is not valid JSON: expected ',' or '}}'", field=what, offset=i)


_SIGNATURE_MEMBER = ',"signature":"'


def _split_compact(text: str, body_key: str) -> tuple[DecodedText, str] | None:
    """(inner object text with its decoded value, signature hex) of a response written exactly as Intel's
    PCS and rats-tls write it, ``{"<key>":{...},"signature":"<hex>"}``, or None for any other layout.

    The inner object must be one complete JSON value (the C decoder checks that, where the strict reader
    would decode it a second time in Python only to find where it ends) and the signature plain hex, so
    the text is an object with exactly these two members: what :func:`top_level_spans` would find."""
    prefix = '{"' + body_key + '":'
    if not (text.startswith(prefix) and text.endswith('"}')):
        return None
    cut = text.rfind(_SIGNATURE_MEMBER)
    if cut <= len(prefix):
        return None
    body, sig = text[len(prefix):cut], text[cut + len(_SIGNATURE_MEMBER):-2]
    if not (body[:1] == "{" and sig.isascii() and sig.isalnum()):
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return _decoded(body, value), sig


def split_signed(text: str | bytes, body_key: str) -> tuple[str, bytes]:
    """Return (exact inner object text, signature bytes) of a PCS response. The text is a
    :class:`DecodedText` when the response has the usual compact layout."""
    text = utf8_text(text, f"{body_key} response", body_key)
    compact = _split_compact(text, body_key)
    if compact is not None:
        return compact[0], parse_signature_hex(compact[1])
    spans = top_level_spans(text, body_key)
    if body_key not in spans or "signature" not in spans:
        raise FormatError(f"response lacks {body_key!r} or 'signature'", field=body_key)
    body = text[slice(*spans[body_key])]
    sig = loads_strict(text[slice(*spans["signature"])], "signature")
    return body, parse_signature_hex(sig)


def join_signed(body_key: str, body: str, signature: bytes) -> str:
    """The PCS response ``{"<key>":<body>,"signature":"<hex r||s>"}`` around the body exactly as signed: the
    inverse of :func:`split_signed`, and the compact layout its shortcut reads."""
    return '{"' + body_key + '":' + body + _SIGNATURE_MEMBER + signature.hex() + '"}'


def parse_signature_hex(sig: Any) -> bytes:
    if not isinstance(sig, str):
        raise FormatError("signature is not a hex string", field="signature")
    try:
        raw = bytes.fromhex(sig)
    except ValueError:
        raise FormatError("signature is not hex", field="signature") from None
    if len(raw) != 64:
        raise FormatError(f"signature must be 64 bytes (r||s), got {len(raw)}", field="signature")
    return raw


# RFC 3339 date-time (section 5.6), as Intel writes issueDate, nextUpdate and tcbDate. datetime.fromisoformat
# alone also takes "2024-01-01", "20240101T000000" or a time without zone, which no PCS response holds.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def parse_time(value: Any, field: str) -> datetime:
    """An RFC 3339 date-time with its zone, on a real calendar day, in UTC."""
    if not isinstance(value, str):
        raise FormatError("timestamp is not a string", field=field)
    if _RFC3339.fullmatch(value) is None:
        raise FormatError(f"timestamp {value[:40]!r} is not an RFC 3339 date-time", field=field)
    try:
        dt = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise FormatError(f"bad timestamp {value!r}", field=field) from None
    return dt.astimezone(timezone.utc)


def valid_times(values: Any) -> bool:
    """Whether every value is one :func:`parse_time` accepts; for fast paths, which fall back to the
    field-by-field readers (that name the defect) when it says no. Each distinct value is checked once:
    TCB levels share a handful of dates."""
    try:
        for value in set(values):
            parse_time(value, "")
    except (FormatError, TypeError):  # TypeError: an unhashable value
        return False
    return True


def get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if type(obj) is dict:  # the common case first: present and of exactly the wanted type
        v = obj.get(key, _MISSING)
        if type(v) is kind:
            return v
    if not isinstance(obj, dict) or key not in obj:
        raise FormatError(f"missing {key!r}", field=f"{where}.{key}")
    v = obj[key]
    if kind is int and isinstance(v, bool):
        raise FormatError(f"{key!r} has the wrong type", field=f"{where}.{key}")
    if not isinstance(v, kind):
        raise FormatError(f"{key!r} has the wrong type", field=f"{where}.{key}")
    return v


_MISSING = object()


def svn(value: Any, field: str) -> int:
    """A security version number: a non-negative integer (not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError("SVN must be a non-negative integer", field=field)
    return value


def advisory_ids(level: dict[str, Any], field: str) -> tuple[str, ...]:
    """A TCB level's ``advisoryIDs``: a list of strings, absent meaning none."""
    adv = level.get("advisoryIDs", [])
    if not isinstance(adv, list) or not all(isinstance(a, str) for a in adv):
        raise FormatError("advisoryIDs must be a list of strings", field=field)
    return tuple(adv)


def get_hex(obj: dict[str, Any], key: str, size: int | None, where: str) -> bytes:
    s = get(obj, key, str, where)
    try:
        raw = bytes.fromhex(s)
    except ValueError:
        raise FormatError(f"{key!r} is not hex", field=f"{where}.{key}") from None
    if size is not None and len(raw) != size:
        raise FormatError(f"{key!r} must be {size} bytes, got {len(raw)}", field=f"{where}.{key}")
    return raw
