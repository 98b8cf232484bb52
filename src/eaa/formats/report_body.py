"""SGX enclave report body (also the QE report), and the sizes of every quote body type.

Layouts: DCAP ``sgx_report.h`` / ``sgx_quote_4.h`` / ``sgx_quote_5.h`` (see shared/docs/dcap-reference.md §1.2).
Each dataclass keeps its exact ``raw`` bytes, because signatures and measurements are over bytes,
never over a re-encoding. The TD report bodies are in :mod:`eaa.formats.td_report`, which only a TDX
quote loads: building a dataclass is a measurable part of a one-shot command's start.
"""

from __future__ import annotations

from ..errors import FormatError
from ..records import record

SGX_REPORT_BODY_SIZE = 384
TD_REPORT10_SIZE = 584
TD_REPORT15_SIZE = 648
TD_REPORT15EX_SIZE = 885

SGX_FLAGS_DEBUG = 0x02
SGX_FLAGS_PROVISION_KEY = 0x10
TD_ATTR_DEBUG = 0x01


@record(slots=True)
class SgxReportBody:
    """The 384-byte report body of an enclave or of the QE (sgx_report.h ``sgx_report_body_t``), and its exact bytes."""

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
    def parse(cls, data: bytes, context: str = "report_body") -> SgxReportBody:
        if len(data) != SGX_REPORT_BODY_SIZE:
            raise FormatError(
                f"SGX report body must be {SGX_REPORT_BODY_SIZE} bytes, got {len(data)}", field=context, offset=0
            )
        d = bytes(data)  # the size is checked above, so fixed offsets cannot run past the end
        return cls(
            d[0:16], int.from_bytes(d[16:20], "little"), d[32:48], d[48:64], d[64:96], d[128:160], d[192:256],
            int.from_bytes(d[256:258], "little"), int.from_bytes(d[258:260], "little"),
            int.from_bytes(d[260:262], "little"), d[304:320], d[320:384], d,
        )
