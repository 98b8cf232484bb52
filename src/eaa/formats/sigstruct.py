"""SGX SIGSTRUCT (enclave signature structure, 1808 bytes): the enclave's expected identity.

Reference values come from here: MRENCLAVE is ENCLAVEHASH and MRSIGNER is SHA-256 of the signer's
RSA modulus as stored (little-endian), exactly what the CPU puts in the report. Intel SGX SDK
signed enclaves embed it in their metadata; Gramine's ``.sig`` file is the bare structure.
"""

from __future__ import annotations

import hashlib

from ..errors import FormatError
from ..records import record

SIGSTRUCT_SIZE = 1808
HEADER1 = bytes.fromhex("06000000e10000000000010000000000")
HEADER2 = bytes.fromhex("01010000600000006000000001000000")
METADATA_MAGIC = (0x86A80294635D0E4C).to_bytes(8, "little")
METADATA_CSS_OFFSET = 64


@record(slots=True)
class SigStruct:
    """A decoded SIGSTRUCT and its exact 1808 bytes: the identity the enclave's signer expects the CPU to measure."""

    vendor: int
    date: int
    modulus: bytes
    exponent: int
    misc_select: int
    misc_mask: int
    isv_family_id: bytes
    attributes: bytes
    attribute_mask: bytes
    enclave_hash: bytes
    isv_ext_prod_id: bytes
    isv_prod_id: int
    isv_svn: int
    raw: bytes

    @property
    def mrenclave(self) -> bytes:
        return self.enclave_hash

    @property
    def mrsigner(self) -> bytes:
        return hashlib.sha256(self.modulus).digest()

    @property
    def debug_allowed(self) -> bool:
        """Whether the signer left the DEBUG attribute unmasked (a debug launch would still match)."""
        return not self.attribute_mask[0] & 0x02

    @classmethod
    def parse(cls, data: bytes) -> SigStruct:
        if len(data) != SIGSTRUCT_SIZE:
            raise FormatError(f"SIGSTRUCT must be {SIGSTRUCT_SIZE} bytes, got {len(data)}", field="sigstruct")
        if data[0:16] != HEADER1:
            raise FormatError("not a SIGSTRUCT (HEADER mismatch)", field="header", offset=0)
        if data[24:40] != HEADER2:
            raise FormatError("not a SIGSTRUCT (HEADER2 mismatch)", field="header2", offset=24)
        def u32(o: int) -> int:
            return int.from_bytes(data[o:o + 4], "little")

        def u16(o: int) -> int:
            return int.from_bytes(data[o:o + 2], "little")

        return cls(
            vendor=u32(16), date=u32(20), modulus=bytes(data[128:512]), exponent=u32(512),
            misc_select=u32(900), misc_mask=u32(904), isv_family_id=bytes(data[912:928]),
            attributes=bytes(data[928:944]), attribute_mask=bytes(data[944:960]),
            enclave_hash=bytes(data[960:992]), isv_ext_prod_id=bytes(data[992:1008]),
            isv_prod_id=u16(1024), isv_svn=u16(1026), raw=bytes(data),
        )


def sigstruct_from_enclave(image: bytes) -> SigStruct:
    """The SIGSTRUCT inside an Intel SGX SDK signed enclave (``metadata_t.enclave_css``)."""
    pos = image.find(METADATA_MAGIC)
    while pos >= 0:
        start = pos + METADATA_CSS_OFFSET
        css = image[start:start + SIGSTRUCT_SIZE]
        if len(css) == SIGSTRUCT_SIZE and css[0:16] == HEADER1 and css[24:40] == HEADER2:
            return SigStruct.parse(css)
        pos = image.find(METADATA_MAGIC, pos + 1)
    raise FormatError("no SGX metadata with a SIGSTRUCT found: not a signed SGX enclave", field="enclave")
