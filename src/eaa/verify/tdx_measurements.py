"""The measurements of a TDX quote: a frozen dataclass that is also a read-only mapping, as
:mod:`eaa.verify.measurements` explains."""

from __future__ import annotations

from ..records import record
from .measurements import Measurements


@record(slots=True, eq=False)  # equality is the mapping's: equal to a dict of the same items
class TdxMeasurements(Measurements):
    """What a verified TDX quote's TD report says of the TD and of the TDX module it runs on."""

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
