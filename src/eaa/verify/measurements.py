"""The measurements a verification vouches for, typed per TEE.

Each is a frozen dataclass (``result.measurements.mrenclave``, checked by mypy) that is also a read-only
mapping by the same names (``result.measurements["mrenclave"]``), which is how reference values,
policies and the JSON output address them. Byte strings are lower-case hex, as reference files write
them; optional fields that are absent (None) are not in the mapping.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any


class Measurements(Mapping[str, Any]):
    """The mapping view shared by every TEE's measurements: each field that is set, by its name."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        if key in self._names():
            value = getattr(self, key)
            if value is not None:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._names() if getattr(self, name) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        names: tuple[str, ...] | None = cls.__dict__.get("_field_names")
        if names is None:
            names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
            type.__setattr__(cls, "_field_names", names)
        return names


@dataclass(frozen=True, slots=True, eq=False)  # equality is the mapping's: equal to a dict of the same items
class SgxMeasurements(Measurements):
    mrenclave: str
    mrsigner: str
    isv_prod_id: int
    isv_svn: int
    attributes: str
    misc_select: int
    config_svn: int
    config_id: str


@dataclass(frozen=True, slots=True, eq=False)  # equality is the mapping's: equal to a dict of the same items
class TdxMeasurements(Measurements):
    mrtd: str
    rtmr0: str
    rtmr1: str
    rtmr2: str
    rtmr3: str
    mr_seam: str
    mrsigner_seam: str
    td_attributes: str
    xfam: str
    mr_config_id: str
    mr_owner: str
    mr_owner_config: str
    tee_tcb_svn: str
    mr_servicetd: str | None = None  # TDX 1.5 quotes (v5 body) only


@dataclass(frozen=True, slots=True, eq=False)  # equality is the mapping's: equal to a dict of the same items
class SnpMeasurements(Measurements):
    measurement: str
    host_data: str
    id_key_digest: str
    author_key_digest: str
    policy: int
    vmpl: int
    guest_svn: int
    family_id: str
    image_id: str
    chip_id: str
    report_id: str
    report_id_ma: str
    platform_info: int
    signer_info: int
    reported_tcb: str  # "0x" and 16 hex digits, as the report encodes it
    reported_tcb_spl: Mapping[str, int]  # the same TCB by component (SPLs), for the product line
    current_tcb: str
    current_tcb_spl: Mapping[str, int]
    committed_tcb: str
    committed_tcb_spl: Mapping[str, int]
    launch_tcb: str
    launch_tcb_spl: Mapping[str, int]
    current_firmware: str  # "major.minor.build"
    committed_firmware: str
    launch_mit_vector: int | None = None  # report version 5
    current_mit_vector: int | None = None
