"""Appraisal policies (Intel PCCS ``PUT/GET /appraisalpolicy``): signed policy JWTs kept per FMSPC.

Intel's PCCS stores each uploaded policy under the SHA-384 of its text, files it by FMSPC and by
the TEE its ``class_id`` names (SGX, TDX 1.0, TDX 1.5), and serves the default policies of an
FMSPC joined with commas. eaa-pccs does the same, keeping each policy as one more record kind so
SQLite, PostgreSQL, export and import carry it unchanged. The policy's signature is the
appraisal engine's business (as in Intel's PCCS, which checks only its shape).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from ...records import record
from .errors import BadRequest
from .platforms import FMSPC_DIGITS, check_hex
from .records import APPRAISAL, Record

MAX_POLICY = 1 << 20
CLASS_IDS = {
    "3123ec35-8d38-4ea5-87a5-d6c48b567570": 0,  # SGX
    "9eec018b-7481-4b1c-8e1a-9f7c0c8c777f": 1,  # TDX 1.0
    "f708b97f-0fb2-4e6b-8b03-8a5bcd1221d3": 2,  # TDX 1.5
}
TDQE_CLASS_ID = "3769258c-75e6-4bc7-8d72-d2b0e224cad2"


def fmspc_param(value: object) -> str:
    checked = check_hex(value, "fmspc", size=FMSPC_DIGITS)
    assert checked is not None  # not optional: check_hex raised otherwise
    return checked


@record
class AppraisalPolicy:
    """A signed appraisal policy JWT as ``PUT /appraisalpolicy`` uploads it, filed by FMSPC and by the TEE its
    ``class_id`` names."""

    fmspc: str
    policy: str
    is_default: bool
    policy_type: int

    @property
    def id(self) -> str:
        """Intel's id: ``sha384(policy)`` in hex."""
        return hashlib.sha384(self.policy.encode("utf-8")).hexdigest()

    @classmethod
    def parse(cls, obj: Any) -> AppraisalPolicy:
        """Intel's APPRAISAL_POLICY_REG_SCHEMA and getPolicyTypeByClassId; every failure is a 400."""
        if not isinstance(obj, dict):
            raise BadRequest("the appraisal policy must be a JSON object")
        is_default = obj.get("is_default")
        if not isinstance(is_default, bool):
            raise BadRequest("is_default must be true or false")
        fmspc = fmspc_param(obj.get("fmspc"))
        policy = obj.get("policy")
        if not isinstance(policy, str) or not policy or len(policy) > MAX_POLICY:
            raise BadRequest("policy must be a non-empty string (a signed policy JWT)")
        return cls(fmspc, policy, is_default, policy_type(policy))

    def to_record(self, now: float) -> Record:
        meta = {"default": "true" if self.is_default else "false", "type": str(self.policy_type)}
        return Record(APPRAISAL, f"{self.fmspc}/{self.id}", self.policy.encode("utf-8"), meta, None, now, "import")


def policy_type(policy: str) -> int:
    """0 SGX, 1 TDX 1.0, 2 TDX 1.5, from the first known ``class_id`` of the payload's policy array."""
    parts = policy.split(".")
    if len(parts) < 2:
        raise BadRequest("policy is not a JWT (header.payload.signature)")
    try:
        seg = parts[1] + "=" * (-len(parts[1]) % 4)
        payload = json.loads(base64.urlsafe_b64decode(seg.encode("ascii")))
        inner = json.loads(payload["policy_payload"]) if isinstance(payload, dict) else None
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error, RecursionError):
        raise BadRequest("the policy payload is not the JSON Intel's appraisal policies carry") from None
    array = inner.get("policy_array") if isinstance(inner, dict) else None
    if not isinstance(array, list):
        raise BadRequest("the policy payload has no policy_array")
    for item in array:
        env = item.get("environment") if isinstance(item, dict) else None
        class_id = env.get("class_id") if isinstance(env, dict) else None
        if not isinstance(class_id, str):
            raise BadRequest("a policy of the policy_array has no environment.class_id")
        cid = class_id.lower()
        if cid in CLASS_IDS:
            return CLASS_IDS[cid]
        if cid != TDQE_CLASS_ID:
            raise BadRequest("unknown policy class_id")
    raise BadRequest("the policy names no SGX or TDX class_id")


def policy_from_record(rec: Record) -> AppraisalPolicy:
    fmspc, _, pid = rec.key.partition("/")
    try:
        text = rec.body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("appraisal policy record is not text") from None
    pol = AppraisalPolicy(fmspc_param(fmspc), text, rec.meta.get("default") == "true", policy_type(text))
    if pol.id != pid:
        raise BadRequest("appraisal policy record key does not match its content")
    return pol
