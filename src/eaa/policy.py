"""Appraisal policy and reference values, kept apart from verification.

Verification answers "is this genuine evidence, and what is its TCB status?"; appraisal answers
"do I accept it?". Keeping them apart lets one verified result be appraised by several policies
(inclavared's and shelter's) and keeps every acceptance rule visible in one small file.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import ConfigError, PolicyViolation, Revoked
from .verify.result import ALL_STATUSES, REVOKED, SW_HARDENING_NEEDED, UP_TO_DATE, VerificationResult

DEFAULT_ACCEPTED = frozenset({UP_TO_DATE, SW_HARDENING_NEEDED})
_HEX_FIELDS = {"mrenclave": 32, "mrsigner": 32, "mrtd": 48, "rtmr0": 48, "rtmr1": 48, "rtmr2": 48, "rtmr3": 48,
               "measurement": 48}
MAX_POLICY_FILE = 1 << 20


def _hex_list(name: str, value: Any) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"reference value {name} must be a hex string or a list of them")
    out = []
    for v in values:
        v = v.lower().removeprefix("0x")
        try:
            raw = bytes.fromhex(v)
        except ValueError:
            raise ConfigError(f"reference value {name} is not hex") from None  # the value is not echoed
        if len(raw) != _HEX_FIELDS[name]:
            raise ConfigError(f"reference value {name} must be {_HEX_FIELDS[name]} bytes, got {len(raw)}")
        out.append(v)
    return tuple(out)


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"reference value {name} must be a non-negative integer")
    return value


@dataclass(frozen=True)
class ReferenceValues:
    """Expected measurements; each hex field accepts any of several values (e.g. across an upgrade)."""

    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    isv_prod_id: int | None = None
    min_isv_svn: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "ReferenceValues":
        values: dict[str, tuple[str, ...]] = {}
        prod = svn = None
        for key, value in data.items():
            if key in _HEX_FIELDS:
                values[key] = _hex_list(key, value)
            elif key == "isv_prod_id":
                prod = _int(key, value)
            elif key in ("isv_svn", "min_isv_svn"):
                svn = _int(key, value)
            else:
                raise ConfigError("unknown key in the reference values (known: "
                                  f"{', '.join([*_HEX_FIELDS, 'isv_prod_id', 'min_isv_svn'])})")
        return cls(values, prod, svn)

    @classmethod
    def load(cls, path: str | Path) -> "ReferenceValues":
        data = load_document(path)
        return cls.from_mapping(data.get("reference", data))

    def is_empty(self) -> bool:
        return not self.values and self.isv_prod_id is None and self.min_isv_svn is None

    def mismatches(self, result: VerificationResult) -> list[str]:
        """Every way the result differs from these values (empty: it matches)."""
        out = []
        m = result.measurements
        for key, allowed in self.values.items():
            got = m.get(key)
            if got is None:
                out.append(f"{key} is not measured by {result.tee} evidence")
            elif got.lower() not in allowed:
                out.append(f"{key} mismatch: got {got}, expected {' or '.join(allowed)}")
        if self.isv_prod_id is not None and m.get("isv_prod_id") != self.isv_prod_id:
            out.append(f"isv_prod_id mismatch: got {m.get('isv_prod_id')}, expected {self.isv_prod_id}")
        if self.min_isv_svn is not None:
            svn = m.get("isv_svn")
            if not isinstance(svn, int) or svn < self.min_isv_svn:
                out.append(f"isv_svn {svn} is below the minimum {self.min_isv_svn}")
        return out

    def to_toml(self) -> str:
        lines = [f'{k} = "{v[0]}"' if len(v) == 1 else f"{k} = {json.dumps(list(v))}" for k, v in self.values.items()]
        if self.isv_prod_id is not None:
            lines.append(f"isv_prod_id = {self.isv_prod_id}")
        if self.min_isv_svn is not None:
            lines.append(f"min_isv_svn = {self.min_isv_svn}")
        return "[reference]\n" + "\n".join(lines) + "\n"

    def to_json(self) -> str:
        d: dict[str, Any] = {k: (v[0] if len(v) == 1 else list(v)) for k, v in self.values.items()}
        if self.isv_prod_id is not None:
            d["isv_prod_id"] = self.isv_prod_id
        if self.min_isv_svn is not None:
            d["min_isv_svn"] = self.min_isv_svn
        return json.dumps({"reference": d}, indent=1, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Policy:
    accepted_statuses: frozenset[str] = DEFAULT_ACCEPTED
    allow_debug: bool = False
    allow_expired_collateral: bool = False
    reference: ReferenceValues = field(default_factory=ReferenceValues)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "Policy":
        pol = data.get("policy", data)
        if not isinstance(pol, Mapping):
            raise ConfigError("policy must be a table/object")
        known = {"accepted_statuses", "allow_debug", "allow_expired_collateral", "reference"}
        unknown = set(pol) - known
        if unknown:
            raise ConfigError(f"unknown key in the policy (known: {', '.join(sorted(known))})")
        statuses = pol.get("accepted_statuses", sorted(DEFAULT_ACCEPTED))
        if isinstance(statuses, str) or not isinstance(statuses, list):
            raise ConfigError("accepted_statuses must be a list")
        for s in statuses:
            if s not in ALL_STATUSES:
                raise ConfigError(f"unknown TCB status in accepted_statuses (known: {', '.join(sorted(ALL_STATUSES))})")
        for flag in ("allow_debug", "allow_expired_collateral"):
            if not isinstance(pol.get(flag, False), bool):
                raise ConfigError(f"{flag} must be true or false")
        ref_data = pol.get("reference", data.get("reference") if pol is not data else None) or {}
        return cls(frozenset(statuses), pol.get("allow_debug", False), pol.get("allow_expired_collateral", False),
                   ReferenceValues.from_mapping(ref_data))

    @classmethod
    def load(cls, path: str | Path) -> "Policy":
        return cls.from_mapping(load_document(path))

    def with_reference(self, reference: ReferenceValues) -> "Policy":
        merged = dict(self.reference.values)
        merged.update(reference.values)
        return Policy(self.accepted_statuses, self.allow_debug, self.allow_expired_collateral,
                      ReferenceValues(merged,
                                      reference.isv_prod_id if reference.isv_prod_id is not None
                                      else self.reference.isv_prod_id,
                                      reference.min_isv_svn if reference.min_isv_svn is not None
                                      else self.reference.min_isv_svn))

    def violations(self, result: VerificationResult) -> list[str]:
        out = []
        if result.status not in self.accepted_statuses:
            out.append(f"TCB status {result.status} is not accepted"
                       f" (accepted: {', '.join(sorted(self.accepted_statuses))})")
        if result.debug and not self.allow_debug:
            out.append("debug enclave/TD is not accepted")
        if result.collateral_expired and not self.allow_expired_collateral:
            out.append("collateral has expired")
        if result.details.get("not_yet_valid") and not self.allow_expired_collateral:
            out.append("collateral is not yet valid (is this clock behind?)")
        out += self.reference.mismatches(result)
        return out

    def appraise(self, result: VerificationResult) -> None:
        """Raise one typed error naming every violation, or return when the result is acceptable."""
        problems = self.violations(result)
        if problems:
            cls = Revoked if result.status == REVOKED else PolicyViolation
            raise cls("; ".join(problems))


    def check(self, result: VerificationResult) -> None:
        """The Enclave-TLS hook. A result of ``nullverifier`` (tee "none") exists only when that verifier
        was named, which is the user's explicit choice to accept a peer without evidence."""
        if result.tee == "none" and self.reference.is_empty():
            return
        self.appraise(result)

    def without_reference(self) -> "Policy":
        return Policy(self.accepted_statuses, self.allow_debug, self.allow_expired_collateral)


def load_document(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_POLICY_FILE:
            raise ConfigError(f"{p} is too large")
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {p}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p} is not UTF-8 text") from None
    try:
        data = json.loads(text) if p.suffix == ".json" or text.lstrip().startswith("{") else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p} is neither valid JSON nor TOML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a table/object")
    return data


def reference_from_pairs(pairs: Iterable[tuple[str, str | None]]) -> ReferenceValues:
    """Reference values from command-line flags such as ``--mrenclave``; unset flags are skipped."""
    return ReferenceValues.from_mapping({k: v for k, v in pairs if v})
