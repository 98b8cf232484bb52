"""Every message between shelter, inclavared and the workload (DESIGN.md "Protocol"), built and parsed here.

Two legs: shelter -> inclavared (``GETENCLAVEINFO`` requests; ``ENCLAVEINFO`` and ``ERROR`` replies) and
inclavared -> workload (v1: a hello answered by ``MRENCLAVE || MRSIGNER || message``; v2: ``GETEVIDENCE``
answered by one ``EVIDENCE`` line). Each message has its builder and its parser side by side, and one
nonce rule (:data:`NONCE_SIZE`, :func:`parse_nonce`) serves both legs; tests/test_protocol.py round-trips
every one of them.

v1 is byte-compatible with Inclavare's inclavared/shelter: the request ``{"type":"GETENCLAVEINFO"}``
and the sorted-key ENCLAVEINFO reply carrying the workload's self-reported MRENCLAVE/MRSIGNER.

v2 adds freshness and end-to-end checking: one JSON object per line; the verifier's 32-byte nonce
travels to the workload, whose fresh evidence binds ``SHA256(claims)`` where the claims hold the
nonce and the hash of its TLS key. Every party that relays the evidence can re-verify it, so shelter
does not have to trust inclavared's verdict.

The evidence's endorsements travel with it: DCAP collateral as ``collateral`` (Intel QVL JSON), the
SEV-SNP certificate table (and any AMD CRL) as ``snp_certificates``:
``{"cert_table": "<base64 of the table as the host gave it>", "crls": ["<base64 DER>", ...]}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..collateral.bundle import Collateral
from ..errors import EaaError, IdentityMismatch, ProtocolError
from ..evidence import SEV_SNP, Evidence
from ..records import record
from ..tls.claims import NONCE, decode_claims
from ..verify.result import VerificationResult
from ..verify.verifier import Verifier

if TYPE_CHECKING:  # imported where used: only SEV-SNP evidence needs it
    from ..formats.snp_certs import SnpEndorsements

GETENCLAVEINFO = "GETENCLAVEINFO"
GETEVIDENCE = "GETEVIDENCE"
V1_REQUEST = b'{"type":"GETENCLAVEINFO"}'
V1_UPSTREAM_HELLO = b"hello from inclavared"
V1_REPLY_ID = "123456"
NONCE_SIZE = 32
MAX_REQUEST = 4096  # a request is a few dozen bytes; anything near this is abuse
MAX_REPLY = 4 << 20  # evidence with a PCK chain and collateral stays well below
SNP_CERTIFICATES = "snp_certificates"
MAX_SNP_CRLS = 4


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(obj: dict[str, Any], key: str, *, required: bool = True) -> bytes | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise ProtocolError(f"message lacks {key!r}")
        return None
    if not isinstance(v, str):
        raise ProtocolError(f"{key!r} must be base64 text")
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{key!r} is not valid base64") from None


def parse_json_line(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProtocolError(f"{what} is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} is not a JSON object")
    return obj


def parse_nonce(value: Any) -> bytes:
    """A nonce as every message of both legs writes it: exactly NONCE_SIZE bytes of hex, no blanks."""
    if not isinstance(value, str) or len(value) != 2 * NONCE_SIZE:
        raise ProtocolError(f"nonce must be {NONCE_SIZE} bytes of hex")
    try:
        return binascii.unhexlify(value)  # unlike bytes.fromhex, no white space that would shorten it
    except (binascii.Error, ValueError):
        raise ProtocolError("nonce is not hex") from None


def snp_certificates_obj(endorsements: SnpEndorsements) -> dict[str, Any]:
    """The ``snp_certificates`` member: the table exactly as the host gave it, and the CRLs."""
    return {"cert_table": _b64(endorsements.table.raw), "crls": [_b64(c) for c in endorsements.crls]}


def parse_snp_certificates(value: Any) -> SnpEndorsements:
    """Parse ``snp_certificates``; a table that does not parse keeps its check (``SNP_CERT_TABLE``)."""
    from ..formats.snp_certs import SnpEndorsements

    if not isinstance(value, dict):
        raise ProtocolError("snp_certificates must be an object")
    table = _unb64(value, "cert_table") or b""
    crls = value.get("crls", [])
    if not isinstance(crls, list) or len(crls) > MAX_SNP_CRLS:
        raise ProtocolError(f"snp_certificates.crls must be a list of at most {MAX_SNP_CRLS} base64 CRLs")
    ders = [_unb64({"crl": c}, "crl") or b"" for c in crls]
    try:
        return SnpEndorsements.parse(table, ders)
    except EaaError as e:
        raise ProtocolError(f"snp_certificates are malformed: {e}", check=e.check) from None


# ---- shelter -> inclavared: framing ----

def request_complete(buf: bytes) -> bool:
    """Whether ``buf`` is a whole request: a v1 request has no newline, so a complete JSON object or a
    line ends it. A ProtocolError once it exceeds the size limit."""
    if len(buf) > MAX_REQUEST:
        raise ProtocolError(f"request exceeds {MAX_REQUEST} bytes")
    if buf.endswith(b"\n"):
        return True
    try:
        json.loads(buf)
        return True
    except (ValueError, UnicodeDecodeError):
        return False


# ---- shelter -> inclavared ----

@record
class Request:
    """A parsed shelter request: protocol version 1, or version 2 with the verifier's nonce."""

    version: int
    nonce: bytes | None  # v2 only


def make_request(nonce: bytes | None) -> bytes:
    """v1 (nonce None): the exact bytes Go's json.Marshal produced; v2: one JSON line with a nonce."""
    if nonce is None:
        return V1_REQUEST
    return json.dumps({"nonce": nonce.hex(), "type": GETENCLAVEINFO, "version": 2}).encode() + b"\n"


def parse_request(data: bytes) -> Request:
    obj = parse_json_line(data, "request")
    if obj.get("type") != GETENCLAVEINFO:
        raise ProtocolError(f"unknown request type {str(obj.get('type'))[:40]!r}")
    version = obj.get("version", 1)
    if version == 1:
        return Request(1, None)
    if version != 2:
        raise ProtocolError(f"unsupported protocol version {str(version)[:20]}")
    return Request(2, parse_nonce(obj.get("nonce")))


# ---- v1 reply (inclavared -> shelter) ----

def enclaveinfo_v1(mrenclave: bytes, mrsigner: bytes, message: bytes) -> bytes:
    """The original inclavared reply: serde_json's sorted keys, compact, lowercase hex."""
    obj = {"id": V1_REPLY_ID, "message": message.decode("utf-8", "replace"), "mrenclave": mrenclave.hex(),
           "mrsigner": mrsigner.hex(), "msgtype": "ENCLAVEINFO", "version": 1}
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---- errors (inclavared -> shelter) ----

def make_error(code: str, message: str) -> bytes:
    return (json.dumps({"msgtype": "ERROR", "error_code": code, "error": message}) + "\n").encode()


def error_of(obj: dict[str, Any]) -> ProtocolError | None:
    """The error an ``ERROR`` reply reports (its code and message, shortened), or None for any other reply."""
    if obj.get("msgtype") != "ERROR":
        return None
    return ProtocolError(f"inclavared: [{str(obj.get('error_code'))[:64]}] {str(obj.get('error'))[:500]}")


# ---- inclavared -> workload, v1: a hello, answered by the workload's self-reported identity ----

IDENTITY_SIZE = 64


@record
class SgxIdentity:
    """An SGX workload's self-reported MRENCLAVE and MRSIGNER: the 64 bytes that open a v1 identity reply."""

    mrenclave: bytes
    mrsigner: bytes


def make_identity_reply(identity: SgxIdentity | None, message: bytes) -> bytes:
    """``MRENCLAVE || MRSIGNER || message`` (zeros when there is no SGX identity)."""
    if identity is None:
        return b"\x00" * IDENTITY_SIZE + message
    return identity.mrenclave + identity.mrsigner + message


def parse_identity_reply(data: bytes) -> tuple[SgxIdentity, bytes] | None:
    """Split a v1 identity reply; None when ``data`` is too short to hold one."""
    if len(data) < IDENTITY_SIZE:
        return None
    return SgxIdentity(data[:32], data[32:64]), data[64:]


# ---- inclavared -> workload, v2: GETEVIDENCE, answered by one EVIDENCE line ----

def make_evidence_request(nonce: bytes) -> bytes:
    if len(nonce) != NONCE_SIZE:
        raise ProtocolError(f"nonce must be {NONCE_SIZE} bytes")
    return json.dumps({"nonce": nonce.hex(), "type": GETEVIDENCE, "version": 2}).encode() + b"\n"


def parse_evidence_request(data: bytes) -> bytes | None:
    """The nonce of a v2 request, or None when ``data`` is not one (a v1 message, answered the v1 way)."""
    text = data.strip()
    if not text.startswith(b"{"):
        return None
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(obj, dict) or obj.get("version") != 2:
        return None
    return parse_nonce(obj.get("nonce"))


def make_evidence_reply(nonce: bytes, evidence: Evidence, claims: bytes) -> bytes:
    """The workload's answer: its fresh evidence, the claims whose hash it binds, and its endorsements."""
    obj: dict[str, Any] = {
        "version": 2,
        "msgtype": "EVIDENCE",
        "nonce": nonce.hex(),
        "evidence_type": evidence.type,
        "evidence": _b64(evidence.data),
        "claims": _b64(claims),
        **endorsements_obj(evidence.collateral),
        "simulated": evidence.simulated,
    }
    return (json.dumps(obj, sort_keys=True) + "\n").encode()


# ---- the workload's evidence, as relayed ----

@record
class WorkloadEvidence:
    """The workload's fresh evidence for one nonce, with its claims and endorsements, as relayed so that every
    hop can verify it again."""

    evidence_type: str
    evidence: bytes
    claims: bytes
    collateral: Collateral | SnpEndorsements | None
    certificate: bytes | None  # the workload's TLS certificate (DER) as inclavared saw it
    nonce: bytes

    @classmethod
    def from_workload_reply(cls, data: bytes, certificate: bytes | None) -> WorkloadEvidence:
        obj = parse_json_line(data, "workload reply")
        if obj.get("msgtype") != "EVIDENCE" or obj.get("version") != 2:
            raise ProtocolError("workload reply is not a v2 EVIDENCE message")
        return cls.from_obj(obj, certificate)

    @classmethod
    def from_obj(cls, obj: dict[str, Any], certificate: bytes | None = None) -> WorkloadEvidence:
        if not isinstance(obj, dict):
            raise ProtocolError("workload evidence is not an object")
        etype = obj.get("evidence_type")
        if not isinstance(etype, str) or not etype or len(etype) > 32:
            raise ProtocolError("workload evidence lacks evidence_type")
        coll = obj.get("collateral")
        collateral: Collateral | SnpEndorsements | None = None
        if coll is not None:
            if not isinstance(coll, dict):
                raise ProtocolError("collateral must be an object")
            try:
                collateral = Collateral.from_qvl_json(json.dumps(coll))
            except EaaError as e:
                raise ProtocolError(f"collateral is malformed: {e}") from None
        if obj.get(SNP_CERTIFICATES) is not None:
            if etype != SEV_SNP or collateral is not None:
                raise ProtocolError("snp_certificates come only with sev_snp evidence, and instead of collateral")
            collateral = parse_snp_certificates(obj[SNP_CERTIFICATES])
        cert = _unb64(obj, "certificate", required=False) or certificate
        return cls(etype, _unb64(obj, "evidence") or b"", _unb64(obj, "claims") or b"", collateral, cert,
                   parse_nonce(obj.get("nonce")))

    def to_obj(self) -> dict[str, Any]:
        return {
            "evidence_type": self.evidence_type,
            "evidence": _b64(self.evidence),
            "claims": _b64(self.claims),
            **endorsements_obj(self.collateral),
            "certificate": _b64(self.certificate) if self.certificate else None,
            "nonce": self.nonce.hex(),
        }

    def verify(self, verifier: Verifier, nonce: bytes, *, at: datetime,
               expected_spki: bytes | None = None) -> VerificationResult:
        """Freshness and binding first (nonce in the claims, claims hashed into the evidence), then the evidence.

        ``expected_spki`` is the workload TLS key the caller saw; when given, the claims must name it.
        """
        if self.nonce != nonce:
            raise IdentityMismatch("the workload answered for another nonce (replayed or stale evidence)")
        claims = decode_claims(self.claims)
        if claims.custom.get(NONCE) != nonce:
            raise IdentityMismatch("the evidence's claims do not carry this request's nonce (replayed evidence)")
        if expected_spki is not None:
            claims.check_key(expected_spki)
        # SNP endorsements come only with sev_snp evidence (from_obj), whose verifier takes them as collateral
        return verifier.verify_evidence(self.evidence, evidence_type=self.evidence_type,
                                        report_data_hash=hashlib.sha256(self.claims).digest(),
                                        collateral=self.collateral, at=at)  # type: ignore[arg-type]


def endorsements_obj(collateral: Collateral | SnpEndorsements | None) -> dict[str, Any]:
    """``collateral`` (DCAP, QVL JSON) and, for SEV-SNP, ``snp_certificates``."""
    if collateral is None:
        return {"collateral": None}
    if isinstance(collateral, Collateral):
        return {"collateral": json.loads(collateral.to_qvl_json())}
    return {"collateral": None, SNP_CERTIFICATES: snp_certificates_obj(collateral)}


# ---- v2 reply (inclavared -> shelter) ----

@record
class Verdict:
    """inclavared's verdict on the workload's evidence, relayed in a v2 reply: reported by shelter, never relied on."""

    ok: bool
    error_code: str | None
    error: str | None
    result: dict[str, Any] | None


def enclaveinfo_v2(nonce: bytes, workload: WorkloadEvidence | None, verdict: Verdict,
                   identity: dict[str, Any] | None = None) -> bytes:
    obj: dict[str, Any] = {
        "msgtype": "ENCLAVEINFO",
        "version": 2,
        "nonce": nonce.hex(),
        "workload": workload.to_obj() if workload else None,
        "verdict": {"ok": verdict.ok, "error_code": verdict.error_code, "error": verdict.error,
                    "result": verdict.result},
    }
    if identity:
        obj.update(identity)
    return (json.dumps(obj, sort_keys=True) + "\n").encode()


@record
class EnclaveInfo:
    """A parsed v2 ``ENCLAVEINFO`` reply from inclavared, from which shelter verifies the relayed evidence itself."""

    nonce: bytes
    workload: WorkloadEvidence | None
    verdict: Verdict


def parse_enclaveinfo_v2(data: bytes) -> EnclaveInfo:
    obj = parse_json_line(data, "inclavared reply")
    if obj.get("msgtype") != "ENCLAVEINFO" or obj.get("version") != 2:
        raise ProtocolError("inclavared reply is not a v2 ENCLAVEINFO message")
    v = obj.get("verdict")
    if not isinstance(v, dict) or not isinstance(v.get("ok"), bool):
        raise ProtocolError("inclavared reply lacks a verdict")
    res = v.get("result")
    verdict = Verdict(v["ok"], _opt_str(v.get("error_code")), _opt_str(v.get("error")),
                      res if isinstance(res, dict) else None)
    w = obj.get("workload")
    workload = WorkloadEvidence.from_obj(w) if w is not None else None
    return EnclaveInfo(parse_nonce(obj.get("nonce")), workload, verdict)


def _opt_str(v: Any) -> str | None:
    return str(v)[:2000] if v is not None else None


def parse_enclaveinfo_v1(data: bytes) -> dict[str, Any]:
    obj = parse_json_line(data, "inclavared reply")
    for key in ("mrenclave", "mrsigner"):
        value = obj.get(key)
        if not isinstance(value, str) or len(value) != 64 or not all(c in "0123456789abcdefABCDEF" for c in value):
            raise ProtocolError(f"inclavared reply lacks a 32-byte hex {key}")
    return obj
