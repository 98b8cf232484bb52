"""SGX enclave report body (also the QE report) and the TD report bodies of TDX quotes.

Layouts: DCAP ``sgx_report.h`` / ``sgx_quote_4.h`` / ``sgx_quote_5.h`` (see shared/docs/dcap-reference.md §1.2).
Each dataclass keeps its exact ``raw`` bytes, because signatures and measurements are over bytes,
never over a re-encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormatError
from .reader import Reader

SGX_REPORT_BODY_SIZE = 384
TD_REPORT10_SIZE = 584
TD_REPORT15_SIZE = 648
TD_REPORT15EX_SIZE = 885

SGX_FLAGS_DEBUG = 0x02
SGX_FLAGS_PROVISION_KEY = 0x10
TD_ATTR_DEBUG = 0x01


@dataclass(frozen=True, slots=True)
class SgxReportBody:
    cpu_svn: bytes
    misc_select: int
    isv_ext_prod_id: bytes
    attributes: bytes
    mr_enclave: bytes
    mr_signer: bytes
    config_id: bytes
    isv_prod_id: int
    isv_svn: int
    config_svn: int
    isv_family_id: bytes
    report_data: bytes
    raw: bytes

    @property
    def flags(self) -> int:
        return int.from_bytes(self.attributes[:8], "little")

    @property
    def debug(self) -> bool:
        return bool(self.flags & SGX_FLAGS_DEBUG)

    @classmethod
    def parse(cls, data: bytes, context: str = "report_body") -> "SgxReportBody":
        if len(data) != SGX_REPORT_BODY_SIZE:
            raise FormatError(
                f"SGX report body must be {SGX_REPORT_BODY_SIZE} bytes, got {len(data)}", field=context, offset=0
            )
        r = Reader(data, context=context)
        cpu_svn = r.take(16, "cpu_svn")
        misc_select = r.u32("misc_select")
        r.take(12, "reserved1")
        isv_ext_prod_id = r.take(16, "isv_ext_prod_id")
        attributes = r.take(16, "attributes")
        mr_enclave = r.take(32, "mr_enclave")
        r.take(32, "reserved2")
        mr_signer = r.take(32, "mr_signer")
        r.take(32, "reserved3")
        config_id = r.take(64, "config_id")
        isv_prod_id = r.u16("isv_prod_id")
        isv_svn = r.u16("isv_svn")
        config_svn = r.u16("config_svn")
        r.take(42, "reserved4")
        isv_family_id = r.take(16, "isv_family_id")
        report_data = r.take(64, "report_data")
        return cls(
            cpu_svn, misc_select, isv_ext_prod_id, attributes, mr_enclave, mr_signer, config_id,
            isv_prod_id, isv_svn, config_svn, isv_family_id, report_data, bytes(data),
        )


@dataclass(frozen=True, slots=True)
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
    def parse(cls, data: bytes, body_type: int = 2, context: str = "td_report") -> "TdReportBody":
        expected = {2: TD_REPORT10_SIZE, 3: TD_REPORT15_SIZE, 4: TD_REPORT15EX_SIZE}.get(body_type)
        if expected is None:
            raise FormatError(f"unknown TD report body type {body_type}", field=context)
        if len(data) != expected:
            raise FormatError(
                f"TD report body type {body_type} must be {expected} bytes, got {len(data)}", field=context, offset=0
            )
        r = Reader(data, context=context)
        tee_tcb_svn = r.take(16, "tee_tcb_svn")
        mr_seam = r.take(48, "mr_seam")
        mrsigner_seam = r.take(48, "mrsigner_seam")
        seam_attributes = r.take(8, "seam_attributes")
        td_attributes = r.take(8, "td_attributes")
        xfam = r.take(8, "xfam")
        mr_td = r.take(48, "mr_td")
        mr_config_id = r.take(48, "mr_config_id")
        mr_owner = r.take(48, "mr_owner")
        mr_owner_config = r.take(48, "mr_owner_config")
        rtmr = (r.take(48, "rtmr0"), r.take(48, "rtmr1"), r.take(48, "rtmr2"), r.take(48, "rtmr3"))
        report_data = r.take(64, "report_data")
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
            mr_config_id, mr_owner, mr_owner_config, rtmr, report_data, tee_tcb_svn2, mr_servicetd, ex, bytes(data),
        )
