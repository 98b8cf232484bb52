"""The TD report bodies of TDX quotes: TD report 1.0 (v4), 1.5 and 1.5ex (v5).

Layouts: DCAP ``sgx_quote_4.h`` / ``sgx_quote_5.h`` (see shared/docs/dcap-reference.md §1.2). The body
keeps its exact ``raw`` bytes, because the quote signature and the measurements are over bytes.
"""

from __future__ import annotations

from ..errors import FormatError
from ..records import record
from .reader import Reader
from .report_body import TD_ATTR_DEBUG, TD_REPORT10_SIZE, TD_REPORT15_SIZE, TD_REPORT15EX_SIZE


@record(slots=True)
class TdReportBody:
    """TD report 1.0 (584 B), 1.5 (648 B) or 1.5ex (885 B); later fields are None when absent."""

    body_type: int
    tee_tcb_svn: bytes
    mr_seam: bytes
    mrsigner_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmr: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None
    mr_servicetd: bytes | None
    ex: dict[str, bytes | int] | None
    raw: bytes

    @property
    def td_attributes_int(self) -> int:
        return int.from_bytes(self.td_attributes, "little")

    @property
    def debug(self) -> bool:
        return bool(self.td_attributes_int & TD_ATTR_DEBUG)

    @classmethod
    def parse(cls, data: bytes, body_type: int = 2, context: str = "td_report") -> TdReportBody:
        expected = {2: TD_REPORT10_SIZE, 3: TD_REPORT15_SIZE, 4: TD_REPORT15EX_SIZE}.get(body_type)
        if expected is None:
            raise FormatError(f"unknown TD report body type {body_type}", field=context)
        if len(data) != expected:
            raise FormatError(
                f"TD report body type {body_type} must be {expected} bytes, got {len(data)}", field=context, offset=0
            )
        d = bytes(data)
        r = Reader(d, 584, context=context)
        tee_tcb_svn, mr_seam, mrsigner_seam = d[0:16], d[16:64], d[64:112]
        seam_attributes, td_attributes, xfam = d[112:120], d[120:128], d[128:136]
        mr_td, mr_config_id, mr_owner, mr_owner_config = d[136:184], d[184:232], d[232:280], d[280:328]
        rtmr = (d[328:376], d[376:424], d[424:472], d[472:520])
        report_data = d[520:584]
        tee_tcb_svn2 = mr_servicetd = None
        ex: dict[str, bytes | int] | None = None
        if body_type >= 3:
            tee_tcb_svn2 = r.take(16, "tee_tcb_svn2")
            mr_servicetd = r.take(48, "mr_servicetd")
        if body_type == 4:
            ex = {
                "vmid": r.u8("vmid"),
                "td_id": r.take(32, "td_id"),
                "dev_info": r.take(48, "dev_info"),
                "init_service_td_hash": r.take(48, "init_service_td_hash"),
                "init_service_td_attributes": r.take(8, "init_service_td_attributes"),
                "init_cpu_svn": r.take(16, "init_cpu_svn"),
                "init_tee_tcb_svn": r.take(16, "init_tee_tcb_svn"),
                "init_tee_fmspc": r.take(12, "init_tee_fmspc"),
                "cur_service_td_hash": r.take(48, "cur_service_td_hash"),
                "cur_service_td_attributes": r.take(8, "cur_service_td_attributes"),
            }
        return cls(
            body_type, tee_tcb_svn, mr_seam, mrsigner_seam, seam_attributes, td_attributes, xfam, mr_td,
            mr_config_id, mr_owner, mr_owner_config, rtmr, report_data, tee_tcb_svn2, mr_servicetd, ex, d,
        )
