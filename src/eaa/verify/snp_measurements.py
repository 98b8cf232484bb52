"""The measurements of an SEV-SNP report: a frozen dataclass that is also a read-only mapping, as
:mod:`eaa.verify.measurements` explains."""

from __future__ import annotations

from collections.abc import Mapping

from ..records import record
from .measurements import Measurements


@record(slots=True, eq=False)  # equality is the mapping's: equal to a dict of the same items
class SnpMeasurements(Measurements):
    """What a verified SEV-SNP attestation report says of the guest, its launch and its platform's TCB."""

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
