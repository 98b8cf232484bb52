"""Appraisal policy and reference values, kept apart from verification.

Verification answers "is this genuine evidence, and what is its TCB status?"; appraisal answers
"do I accept it?". Keeping them apart lets one verified result be appraised by several policies
(inclavared's and shelter's) and keeps every acceptance rule visible in one small file.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .checks import Check
from .errors import ConfigError, PolicyViolation, Revoked
from .verify.result import ALL_STATUSES, REVOKED, SW_HARDENING_NEEDED, UP_TO_DATE, VerificationResult

DEFAULT_ACCEPTED = frozenset({UP_TO_DATE, SW_HARDENING_NEEDED})
_HEX_FIELDS = {"mrenclave": 32, "mrsigner": 32, "mrtd": 48, "rtmr0": 48, "rtmr1": 48, "rtmr2": 48, "rtmr3": 48,
               "measurement": 48, "mr_servicetd": 48}
MAX_POLICY_FILE = 1 << 20

# TD attributes (TDX module ABI; go-tdx-guest validate.go, dcap-qvl validate_attrs). Only DEBUG,
# SEPT_VE_DISABLE, PKS and PERFMON may be set ("tdAttributesFixed0"); anything else is refused unless the
# policy names it. DEBUG has its own setting (allow_debug).
TD_ATTRIBUTE_BITS = {"DEBUG": 0, "HGS_PLUS_PROF": 4, "PERF_PROF": 5, "PMT_PROF": 6, "SEPT_VE_DISABLE": 28,
                     "MIGRATABLE": 29, "PKS": 30, "KL": 31, "PERFMON": 63}
TD_ATTRIBUTES_FIXED0 = 1 << 0 | 1 << 28 | 1 << 30 | 1 << 63
TD_SEPT_VE_DISABLE = 1 << 28
# XFAM: bits of xfamFixed1 must be set, bits outside xfamFixed0 must be clear (go-tdx-guest validate.go).
XFAM_FIXED1 = 0x00000003
XFAM_FIXED0 = 0x0006DBE7
# SGX ATTRIBUTES.FLAGS (SDK arch.h): an application enclave has no business with the provisioning key, and
# KSS changes what its identity means (ISVEXTPRODID, ISVFAMILYID, CONFIGID).
SGX_FLAGS_PROVISION_KEY = 0x10
SGX_FLAGS_KSS = 0x80


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
            raise ConfigError(f"reference value {name} is not hex: {v!r}") from None
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
                raise ConfigError(f"unknown reference value {key!r}")
        return cls(values, prod, svn)

    @classmethod
    def load(cls, path: str | Path) -> "ReferenceValues":
        data = load_document(path)
        return cls.from_mapping(data.get("reference", data))

    def is_empty(self) -> bool:
        return not self.values and self.isv_prod_id is None and self.min_isv_svn is None

    def mismatches(self, result: VerificationResult) -> list[str]:
        """Every way the result differs from these values (empty: it matches)."""
        return [message for _, message in self.findings(result)]

    def findings(self, result: VerificationResult) -> list[tuple[Check, str]]:
        """Each mismatch with the check it fails."""
        out = []
        m = result.measurements
        for key, allowed in self.values.items():
            got = m.get(key)
            check = Check.MR_SERVICETD if key == "mr_servicetd" else Check.POLICY_REFERENCE
            if got is None:
                out.append((check, f"{key} is not measured by {result.tee} evidence"))
            elif got.lower() not in allowed:
                out.append((check, f"{key} mismatch: got {got}, expected {' or '.join(allowed)}"))
        if self.isv_prod_id is not None and m.get("isv_prod_id") != self.isv_prod_id:
            out.append((Check.POLICY_REFERENCE,
                        f"isv_prod_id mismatch: got {m.get('isv_prod_id')}, expected {self.isv_prod_id}"))
        if self.min_isv_svn is not None:
            svn = m.get("isv_svn")
            if not isinstance(svn, int) or svn < self.min_isv_svn:
                out.append((Check.POLICY_REFERENCE, f"isv_svn {svn} is below the minimum {self.min_isv_svn}"))
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
    # TDX: TD attribute bits allowed beyond DEBUG/SEPT_VE_DISABLE/PKS/PERFMON; SEPT_VE_DISABLE required
    # (without it the host can inject #VE on EPT violations); XFAM within its fixed bits.
    allow_td_attribute_bits: frozenset[int] = frozenset()
    require_sept_ve_disable: bool = True
    check_xfam: bool = True
    # SGX ATTRIBUTES.FLAGS.
    allow_sgx_provision_key: bool = False
    allow_sgx_kss: bool = False

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "Policy":
        pol = data.get("policy", data)
        if not isinstance(pol, Mapping):
            raise ConfigError("policy must be a table/object")
        flags = ("allow_debug", "allow_expired_collateral", "require_sept_ve_disable", "check_xfam",
                 "allow_sgx_provision_key", "allow_sgx_kss")
        known = {"accepted_statuses", "reference", "allow_td_attribute_bits", *flags}
        unknown = set(pol) - known
        if unknown:
            raise ConfigError(f"unknown policy keys: {', '.join(sorted(unknown))}")
        statuses = pol.get("accepted_statuses", sorted(DEFAULT_ACCEPTED))
        if isinstance(statuses, str) or not isinstance(statuses, list):
            raise ConfigError("accepted_statuses must be a list")
        for s in statuses:
            if s not in ALL_STATUSES:
                raise ConfigError(f"unknown TCB status {s!r} in accepted_statuses")
        for flag in flags:
            if flag in pol and not isinstance(pol[flag], bool):
                raise ConfigError(f"{flag} must be true or false")
        ref_data = pol.get("reference", data.get("reference") if pol is not data else None) or {}
        return cls(frozenset(statuses), reference=ReferenceValues.from_mapping(ref_data),
                   allow_td_attribute_bits=_td_bits(pol.get("allow_td_attribute_bits", [])),
                   **{flag: pol[flag] for flag in flags if flag in pol})

    @classmethod
    def load(cls, path: str | Path) -> "Policy":
        return cls.from_mapping(load_document(path))

    def with_reference(self, reference: ReferenceValues) -> "Policy":
        merged = dict(self.reference.values)
        merged.update(reference.values)
        return dataclasses.replace(self, reference=ReferenceValues(
            merged,
            reference.isv_prod_id if reference.isv_prod_id is not None else self.reference.isv_prod_id,
            reference.min_isv_svn if reference.min_isv_svn is not None else self.reference.min_isv_svn))

    def violations(self, result: VerificationResult) -> list[str]:
        return [message for _, message in self.findings(result)]

    def findings(self, result: VerificationResult) -> list[tuple[Check, str]]:
        """Every reason to reject ``result``, each with the check it fails (empty: acceptable)."""
        out = []
        if result.status not in self.accepted_statuses:
            out.append((Check.POLICY_STATUS, f"TCB status {result.status} is not accepted"
                        f" (accepted: {', '.join(sorted(self.accepted_statuses))})"))
        if result.debug and not self.allow_debug:
            out.append((Check.POLICY_DEBUG, "debug enclave/TD is not accepted"))
        if result.collateral_expired and not self.allow_expired_collateral:
            out.append((Check.POLICY_EXPIRED_COLLATERAL, "collateral has expired"))
        if result.details.get("not_yet_valid") and not self.allow_expired_collateral:
            out.append((Check.POLICY_EXPIRED_COLLATERAL, "collateral is not yet valid (is this clock behind?)"))
        if result.tee == "tdx":
            out += self._td_findings(result.measurements)
        elif result.tee == "sgx":
            out += self._sgx_findings(result.measurements)
        out += self.reference.findings(result)
        return out

    def _td_findings(self, m: Mapping[str, Any]) -> list[tuple[Check, str]]:
        out = []
        attributes = _le_int(m, "td_attributes")
        if attributes is not None:
            allowed = TD_ATTRIBUTES_FIXED0 | sum(1 << b for b in self.allow_td_attribute_bits)
            extra = attributes & ~allowed
            if extra:
                out.append((Check.TD_ATTRIBUTES_RESERVED, f"TD attributes set bits the policy does not allow: "
                            f"{', '.join(_td_bit_name(b) for b in range(64) if extra >> b & 1)}"))
            if self.require_sept_ve_disable and not attributes & TD_SEPT_VE_DISABLE:
                out.append((Check.SEPT_VE_DISABLE, "the TD does not set SEPT_VE_DISABLE"))
        xfam = _le_int(m, "xfam")
        if self.check_xfam and xfam is not None and (xfam & XFAM_FIXED1 != XFAM_FIXED1 or xfam & ~XFAM_FIXED0):
            out.append((Check.XFAM_FIXED_BITS, f"XFAM {xfam:#x} is outside its fixed bits"))
        servicetd = m.get("mr_servicetd")
        if isinstance(servicetd, str) and "mr_servicetd" not in self.reference.values and servicetd.strip("0"):
            out.append((Check.MR_SERVICETD, "MR_SERVICETD is not zero and no reference value names it"))
        return out

    def _sgx_findings(self, m: Mapping[str, Any]) -> list[tuple[Check, str]]:
        out = []
        flags = _le_int(m, "attributes", 8)
        if flags is None:
            return out
        if flags & SGX_FLAGS_PROVISION_KEY and not self.allow_sgx_provision_key:
            out.append((Check.SGX_PROVISION_KEY, "the enclave has access to the provisioning key"))
        if flags & SGX_FLAGS_KSS and not self.allow_sgx_kss:
            out.append((Check.SGX_KSS, "the enclave uses key separation and sharing (KSS)"))
        return out

    def appraise(self, result: VerificationResult) -> None:
        """Raise one typed error naming every violation (its check: the first one's), or return when the
        result is acceptable."""
        problems = self.findings(result)
        if problems:
            cls = Revoked if result.status == REVOKED else PolicyViolation
            raise cls("; ".join(message for _, message in problems), check=problems[0][0])

    def check(self, result: VerificationResult) -> None:
        """The Enclave-TLS hook. A result of ``nullverifier`` (tee "none") exists only when that verifier
        was named, which is the user's explicit choice to accept a peer without evidence."""
        if result.tee == "none" and self.reference.is_empty():
            return
        self.appraise(result)

    def without_reference(self) -> "Policy":
        return dataclasses.replace(self, reference=ReferenceValues())


def _td_bits(value: Any) -> frozenset[int]:
    """``allow_td_attribute_bits``: bit names (``MIGRATABLE``) or numbers (0-63)."""
    if not isinstance(value, list):
        raise ConfigError("allow_td_attribute_bits must be a list of bit names or numbers")
    bits = set()
    for v in value:
        if isinstance(v, str) and v.upper() in TD_ATTRIBUTE_BITS:
            bits.add(TD_ATTRIBUTE_BITS[v.upper()])
        elif isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 64:
            bits.add(v)
        else:
            raise ConfigError(f"allow_td_attribute_bits: {v!r} is neither a TD attribute name "
                              f"({', '.join(TD_ATTRIBUTE_BITS)}) nor a bit number 0-63")
    return frozenset(bits)


def _td_bit_name(bit: int) -> str:
    return next((name for name, b in TD_ATTRIBUTE_BITS.items() if b == bit), f"bit {bit}")


def _le_int(m: Mapping[str, Any], key: str, size: int | None = None) -> int | None:
    """A little-endian integer measurement given as hex (the first ``size`` bytes of it)."""
    value = m.get(key)
    if not isinstance(value, str):
        return None
    raw = bytes.fromhex(value)
    return int.from_bytes(raw[:size] if size else raw, "little")


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
