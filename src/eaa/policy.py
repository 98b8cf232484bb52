"""Appraisal policy and reference values, kept apart from verification.

Verification answers "is this genuine evidence, and what is its TCB status?"; appraisal answers
"do I accept it?". Keeping them apart lets one verified result be appraised by several policies
(inclavared's and shelter's) and keeps every acceptance rule visible in one small file.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import field, replace
from pathlib import Path
from typing import Any

from .checks import Check
from .errors import ConfigError, PolicyViolation, Revoked
from .records import record
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


def _hex_list(name: str, value: Any, size: int | None = None) -> tuple[str, ...]:
    """Lower-case hex values of ``size`` bytes (default: the reference value's own size)."""
    size = _HEX_FIELDS[name] if size is None else size
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
        if len(raw) != size:
            raise ConfigError(f"reference value {name} must be {size} bytes, got {len(raw)}")
        out.append(v)
    return tuple(out)


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"reference value {name} must be a non-negative integer")
    return value


@record
class ReferenceValues:
    """Expected measurements; each hex field accepts any of several values (e.g. across an upgrade)."""

    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    isv_prod_id: int | None = None
    min_isv_svn: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ReferenceValues:
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
    def load(cls, path: str | Path) -> ReferenceValues:
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


@record
class Policy:
    """An appraisal policy (a ``[policy]`` table or JSON object): what a verified result must satisfy to be accepted."""

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
    snp: SnpPolicy = field(default_factory=lambda: SnpPolicy())

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Policy:
        pol = data.get("policy", data)
        if not isinstance(pol, Mapping):
            raise ConfigError("policy must be a table/object")
        flags = ("allow_debug", "allow_expired_collateral", "require_sept_ve_disable", "check_xfam",
                 "allow_sgx_provision_key", "allow_sgx_kss")
        known = {"accepted_statuses", "reference", "allow_td_attribute_bits", "snp", *flags}
        unknown = set(pol) - known
        if unknown:
            raise ConfigError(f"unknown key in the policy (known: {', '.join(sorted(known))})")
        statuses = pol.get("accepted_statuses", sorted(DEFAULT_ACCEPTED))
        if isinstance(statuses, str) or not isinstance(statuses, list):
            raise ConfigError("accepted_statuses must be a list")
        for s in statuses:
            if s not in ALL_STATUSES:
                raise ConfigError("unknown TCB status in accepted_statuses "
                                  f"(known: {', '.join(sorted(ALL_STATUSES))})")
        for flag in flags:
            if flag in pol and not isinstance(pol[flag], bool):
                raise ConfigError(f"{flag} must be true or false")
        ref_data = pol.get("reference", data.get("reference") if pol is not data else None) or {}
        return cls(frozenset(statuses), reference=ReferenceValues.from_mapping(ref_data),
                   allow_td_attribute_bits=_td_bits(pol.get("allow_td_attribute_bits", [])),
                   snp=SnpPolicy.from_mapping(pol.get("snp", {})),
                   **{flag: pol[flag] for flag in flags if flag in pol})

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        return cls.from_mapping(load_document(path))

    def with_reference(self, reference: ReferenceValues) -> Policy:
        merged = dict(self.reference.values)
        merged.update(reference.values)
        return replace(self, reference=ReferenceValues(
            merged,
            reference.isv_prod_id if reference.isv_prod_id is not None else self.reference.isv_prod_id,
            reference.min_isv_svn if reference.min_isv_svn is not None else self.reference.min_isv_svn))

    def violations(self, result: VerificationResult) -> list[str]:
        return [message for _, message in self.findings(result)]

    def findings(self, result: VerificationResult) -> list[tuple[str, str]]:
        """Every reason to reject ``result``, each with the check it fails (empty: acceptable)."""
        out: list[tuple[str, str]] = []
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
        if result.tee == SNP_TEE:
            out += self.snp.findings(result)
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
        out: list[tuple[Check, str]] = []
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

    def without_reference(self) -> Policy:
        return replace(self, reference=ReferenceValues())


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
            raise ConfigError(f"allow_td_attribute_bits: an entry is neither a TD attribute name "
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


# ---------------------------------------------------------------------------------------------
# SEV-SNP appraisal: go-sev-guest ``validate.go`` as policy settings
#
# A verified SNP result only says "AMD signed this report with a key for its REPORTED_TCB". Whether the
# guest, its launch policy and the platform's firmware are acceptable is appraisal, so the checks of
# go-sev-guest's ``validate.SnpAttestation`` live here, as ``[policy.snp]`` settings. The byte fields it
# compares verbatim (MEASUREMENT, HOST_DATA, FAMILY_ID, IMAGE_ID, REPORT_ID(_MA), CHIP_ID) are reference
# values like MRENCLAVE. Every violation starts with a stable identifier (``snp.<check>``) that tools
# can match; the text after it is for people.

SNP_TEE = "sev-snp"
SNP_HEX_FIELDS = {"host_data": 32, "family_id": 16, "image_id": 16, "id_key_digest": 48, "author_key_digest": 48,
                  "report_id": 32, "report_id_ma": 32, "chip_id": 64}
_HEX_FIELDS.update(SNP_HEX_FIELDS)

# Guest POLICY bits (SNP ABI "Guest Policy"): permissions a guest may have (must be allowed here) and
# restrictions a policy may require. ABI_MINOR/ABI_MAJOR (bits 7:0, 15:8) are a minimum.
SNP_GUEST_PERMISSIONS = {"smt": 16, "migrate_ma": 18, "cxl_allowed": 21}
SNP_GUEST_RESTRICTIONS = {"single_socket": 20, "mem_aes_256_xts": 22, "rapl_dis": 23, "ciphertext_hiding": 24,
                          "page_swap_disable": 25}
# PLATFORM_INFO bits: features the platform may have on, and features a policy may require.
SNP_PLATFORM_PERMISSIONS = {"smt_enabled": 0, "tsme_enabled": 1}
SNP_PLATFORM_REQUIREMENTS = {"ecc_enabled": 2, "rapl_disabled": 3, "ciphertext_hiding_enabled": 4,
                             "alias_check_complete": 5}
SNP_TCB_PARTS = ("bl", "tee", "snp", "ucode", "fmc")
_SNP_KEYS = {"min_guest_svn", "minimum_tcb", "minimum_launch_tcb", "permit_provisional_firmware", "minimum_build",
             "minimum_version", "guest_policy", "vmpl", "platform_info", "require_id_block", "require_author_key",
             "trusted_id_key_digests", "trusted_author_key_digests"}


def _snp_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"snp.{name} must be true or false")
    return value


def _snp_tcb(name: str, value: Any) -> Mapping[str, int] | int | None:
    """A minimum TCB: a table of SPLs (``{bl, tee, snp, ucode, fmc}``) or a raw 64-bit TCB_VERSION."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError:
            raise ConfigError(f"snp.{name} must be a table of SPLs or a 64-bit TCB_VERSION") from None
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 1 << 64:
            raise ConfigError(f"snp.{name} must be a 64-bit TCB_VERSION")
        return value
    if not isinstance(value, Mapping) or set(value) - set(SNP_TCB_PARTS):
        raise ConfigError(f"snp.{name} takes the SPLs {', '.join(SNP_TCB_PARTS)}")
    return {k: _spl(f"{name}.{k}", v) for k, v in value.items()}


def _spl(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise ConfigError(f"snp.{name} must be an SPL from 0 to 255")
    return value


def _flags(name: str, value: Any, known: Mapping[str, int], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"snp.{name} must be a table")
    unknown = set(value) - set(known) - set(extra)
    if unknown:
        raise ConfigError(f"unknown key in snp.{name} (known: {', '.join(sorted({*known, *extra}))})")
    return {k: (_snp_bool(f"{name}.{k}", v) if k in known else v) for k, v in value.items()}


def _digests(name: str, value: Any) -> tuple[str, ...]:
    """SHA-384 key digests (ID_KEY_DIGEST / AUTHOR_KEY_DIGEST form)."""
    return _hex_list(f"snp.{name}", value, 48)


def _version(value: Any) -> tuple[int, int] | None:
    """go-sev-guest's ``minimum_version``: "major.minor"."""
    if value is None:
        return None
    parts = value.split(".") if isinstance(value, str) else []
    if len(parts) != 2 or not all(p.isdigit() and int(p) <= 255 for p in parts):
        raise ConfigError("snp.minimum_version must be \"major.minor\"")
    return int(parts[0]), int(parts[1])


def _firmware(text: Any) -> tuple[int, int, int]:
    major, minor, build = (int(x) for x in str(text).split("."))
    return major, minor, build


def _tcb_le(low: Mapping[str, int], high: Mapping[str, int]) -> bool:
    """Component-wise ``low <= high`` (go-sev-guest ``kds.TCBPartsLE``); a part one side lacks counts as 0."""
    return all(low.get(k, 0) <= high.get(k, 0) for k in set(low) | set(high))


@record
class SnpPolicy:
    """``[policy.snp]``: what go-sev-guest's ``validate.Options`` holds, with its defaults.

    Defaults deviate from go-sev-guest's zero values in one place only: SMT is allowed (nearly every
    production guest policy sets it, and a zero default would reject them all). Debug guests are governed
    by ``allow_debug`` like every other TEE.
    """

    min_guest_svn: int = 0
    minimum_tcb: Mapping[str, int] | int | None = None
    minimum_launch_tcb: Mapping[str, int] | int | None = None
    permit_provisional_firmware: bool = False
    minimum_build: int = 0
    minimum_version: tuple[int, int] | None = None
    guest_policy: Mapping[str, Any] = field(default_factory=dict)
    vmpl: int | None = None
    platform_info: Mapping[str, bool] | None = None
    require_id_block: bool = False
    require_author_key: bool = False
    trusted_id_key_digests: tuple[str, ...] = ()
    trusted_author_key_digests: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, data: Any) -> SnpPolicy:
        if not isinstance(data, Mapping):
            raise ConfigError("policy.snp must be a table")
        unknown = set(data) - _SNP_KEYS
        if unknown:
            raise ConfigError(f"unknown key in policy.snp (known: {', '.join(sorted(_SNP_KEYS))})")
        gp = _flags("guest_policy", data.get("guest_policy", {}), {**SNP_GUEST_PERMISSIONS, **SNP_GUEST_RESTRICTIONS},
                    ("abi_major", "abi_minor"))
        for k in ("abi_major", "abi_minor"):
            if k in gp:
                _spl(f"guest_policy.{k}", gp[k])
        pi = data.get("platform_info")
        vmpl = data.get("vmpl")
        if vmpl is not None and (isinstance(vmpl, bool) or not isinstance(vmpl, int) or not 0 <= vmpl <= 3):
            raise ConfigError("snp.vmpl must be 0, 1, 2 or 3")
        return cls(
            min_guest_svn=_int("snp.min_guest_svn", data.get("min_guest_svn", 0)),
            minimum_tcb=_snp_tcb("minimum_tcb", data.get("minimum_tcb")),
            minimum_launch_tcb=_snp_tcb("minimum_launch_tcb", data.get("minimum_launch_tcb")),
            permit_provisional_firmware=_snp_bool("permit_provisional_firmware",
                                                  data.get("permit_provisional_firmware", False)),
            minimum_build=_spl("minimum_build", data.get("minimum_build", 0)),
            minimum_version=_version(data.get("minimum_version")),
            guest_policy=gp,
            vmpl=vmpl,
            platform_info=None if pi is None else _flags("platform_info", pi, {**SNP_PLATFORM_PERMISSIONS,
                                                                              **SNP_PLATFORM_REQUIREMENTS}),
            require_id_block=_snp_bool("require_id_block", data.get("require_id_block", False)),
            require_author_key=_snp_bool("require_author_key", data.get("require_author_key", False)),
            trusted_id_key_digests=_digests("trusted_id_key_digests", data.get("trusted_id_key_digests", [])),
            trusted_author_key_digests=_digests("trusted_author_key_digests",
                                                data.get("trusted_author_key_digests", [])),
        )

    def _tcb(self, value: Mapping[str, int] | int, result: VerificationResult) -> Mapping[str, int]:
        if not isinstance(value, int):
            return value
        from .formats.snp_report import TcbVersion

        return TcbVersion.decode(value, str(result.details.get("product", "Milan"))).as_dict()

    def violations(self, result: VerificationResult) -> list[str]:
        """``snp.<check>: <why>`` for every check the result fails (validate.go's order)."""
        m = result.measurements
        out: list[tuple[str, str]] = []
        if m.get("guest_svn", 0) < self.min_guest_svn:
            out.append(("guest_svn", f"GUEST_SVN {m.get('guest_svn')} is below the minimum {self.min_guest_svn}"))
        out += self._policy_bits(int(m.get("policy", 0)))
        out += self._tcbs(m, result)
        out += self._firmware(m)
        if self.platform_info is not None:
            info = int(m.get("platform_info", 0))
            for name, bit in SNP_PLATFORM_PERMISSIONS.items():
                if info >> bit & 1 and not self.platform_info.get(name, False):
                    out.append((f"platform_info.{name}",
                                f"the platform has {name} set, which the policy does not allow"))
            for name, bit in SNP_PLATFORM_REQUIREMENTS.items():
                if self.platform_info.get(name, False) and not info >> bit & 1:
                    out.append((f"platform_info.{name}",
                                f"the policy requires {name}, the platform does not report it"))
        out += self._keys(m)
        if self.vmpl is not None and m.get("vmpl") != self.vmpl:
            out.append(("vmpl", f"VMPL {m.get('vmpl')} is not {self.vmpl}"))
        return [f"snp.{ident}: {why}" for ident, why in out]

    def findings(self, result: VerificationResult) -> list[tuple[str, str]]:
        """:meth:`violations` with each one's check identifier (``snp.tcb.minimum`` -> ``SNP_TCB_MINIMUM``)."""
        return [("SNP_" + v.split(":", 1)[0][4:].upper().replace(".", "_"), v) for v in self.violations(result)]

    def _policy_bits(self, policy: int) -> list[tuple[str, str]]:
        gp = self.guest_policy
        out = []
        want = (gp.get("abi_major", 0), gp.get("abi_minor", 0))
        have = (policy >> 8 & 0xFF, policy & 0xFF)
        if have < want:
            out.append(("policy.abi", f"the guest policy's ABI {have[0]}.{have[1]} is below the required "
                                      f"{want[0]}.{want[1]}"))
        for name, bit in SNP_GUEST_PERMISSIONS.items():
            if policy >> bit & 1 and not gp.get(name, name == "smt"):
                out.append((f"policy.{name}", f"the guest policy allows {name}, which this policy does not"))
        for name, bit in SNP_GUEST_RESTRICTIONS.items():
            if gp.get(name, False) and not policy >> bit & 1:
                out.append((f"policy.{name}", f"the guest policy lacks the required {name} restriction"))
        return out

    def _tcbs(self, m: Mapping[str, Any], result: VerificationResult) -> list[tuple[str, str]]:
        try:
            reported, current = m["reported_tcb_spl"], m["current_tcb_spl"]
            committed, launch = m["committed_tcb_spl"], m["launch_tcb_spl"]
        except KeyError:
            return [("tcb", "the result holds no decoded TCB values")]
        out = []
        if not _tcb_le(reported, current):  # the VEK is for REPORTED_TCB, so this is validate.go's cert <= current
            out.append(("tcb.current_below_reported", f"CURRENT_TCB {current} is below REPORTED_TCB {reported} "
                                                      "in at least one component"))
        if self.permit_provisional_firmware:
            if not _tcb_le(committed, current):
                out.append(("tcb.committed_above_current", f"COMMITTED_TCB {committed} is above CURRENT_TCB {current}"))
        elif dict(committed) != dict(current):
            out.append(("tcb.committed_not_current", f"COMMITTED_TCB {committed} is not CURRENT_TCB {current} "
                                                     "(provisional firmware is not permitted)"))
        if self.minimum_launch_tcb is not None and not _tcb_le(self._tcb(self.minimum_launch_tcb, result), launch):
            out.append(("tcb.minimum_launch", f"LAUNCH_TCB {launch} is below the minimum "
                                              f"{self._tcb(self.minimum_launch_tcb, result)}"))
        if self.minimum_tcb is not None and not _tcb_le(self._tcb(self.minimum_tcb, result), reported):
            minimum = self._tcb(self.minimum_tcb, result)
            out.append(("tcb.minimum", f"REPORTED_TCB {reported} is below the minimum {minimum}"))
        return out

    def _firmware(self, m: Mapping[str, Any]) -> list[tuple[str, str]]:
        try:
            cur, com = _firmware(m["current_firmware"]), _firmware(m["committed_firmware"])
        except (KeyError, ValueError):
            return [("firmware", "the result holds no firmware versions")]
        out = []
        if cur[2] < self.minimum_build:
            out.append(("firmware.build", f"firmware build {cur[2]} is below the minimum {self.minimum_build}"))
        if self.minimum_version is not None and cur[:2] < self.minimum_version:
            out.append(("firmware.version", f"firmware API version {cur[0]}.{cur[1]} is below the minimum "
                                            f"{self.minimum_version[0]}.{self.minimum_version[1]}"))
        if self.permit_provisional_firmware:
            if com[2] > cur[2] or com[:2] > cur[:2]:
                out.append(("firmware.committed_above_current", f"committed firmware {'.'.join(map(str, com))} is "
                                                                f"above the current {'.'.join(map(str, cur))}"))
        elif com != cur:
            out.append(("firmware.committed_not_current", f"committed firmware {'.'.join(map(str, com))} is not the "
                                                          f"current {'.'.join(map(str, cur))} (provisional firmware "
                                                          "is not permitted)"))
        return out

    def _keys(self, m: Mapping[str, Any]) -> list[tuple[str, str]]:
        author_en = bool(int(m.get("signer_info", 0)) & 1)
        if self.require_author_key and not author_en:
            return [("author_key", "the guest was launched without an author key (AUTHOR_KEY_EN is 0)")]
        if not (self.require_author_key or self.require_id_block):
            return []
        author = str(m.get("author_key_digest", ""))
        trusted_author = author_en and author in self.trusted_author_key_digests
        if self.require_author_key and not trusted_author:
            return [("author_key", f"the author key {author} is not trusted")]
        if not trusted_author and str(m.get("id_key_digest", "")) not in self.trusted_id_key_digests:
            return [("id_key", f"the ID key {m.get('id_key_digest')} is not trusted")]
        return []
