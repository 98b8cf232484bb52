"""The measurements a verification vouches for, typed per TEE.

Each is a frozen dataclass (``result.measurements.mrenclave``, checked by mypy) that is also a read-only
mapping by the same names (``result.measurements["mrenclave"]``), which is how reference values,
policies and the JSON output address them. Byte strings are lower-case hex, as reference files write
them; optional fields that are absent (None) are not in the mapping.

TDX's and SEV-SNP's are in :mod:`eaa.verify.tdx_measurements` and :mod:`eaa.verify.snp_measurements`,
loaded only by verifications of those TEEs: building a dataclass is a measurable part of a one-shot
command's start.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any

from ..records import record


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


@record(slots=True, eq=False)  # equality is the mapping's: equal to a dict of the same items
class SgxMeasurements(Measurements):
    """What a verified SGX quote's report body says of the enclave."""

    mrenclave: str
    mrsigner: str
    isv_prod_id: int
    isv_svn: int
    attributes: str
    misc_select: int
    config_svn: int
    config_id: str
