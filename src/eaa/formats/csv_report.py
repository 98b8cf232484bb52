"""The Hygon CSV attestation report, as far as rats-tls reads it without verifying it.

``csv_evidence`` (rats-tls ``include/rats-tls/csv.h``) is the 4096-byte ``csv_attestation_report``
followed by the HSK/CEK certificates. The firmware XORs every 32-bit word of the report from
``user_pubkey_digest`` up to (not including) ``anonce`` with ``anonce``; rats-tls undoes that and hands
VM_ID, VM_VERSION, MEASURE and POLICY to the application's callback, whichever verifier ran. eaa does
the same for a peer accepted under ``nullverifier``: these are claims, not verified measurements (the
report's SM2 signature and Hygon's chain are not checked). Like rats-tls, which copies the evidence into
a zeroed buffer, a short evidence reads as zero-filled.
"""

from __future__ import annotations

from ..records import record

REPORT_SIZE = 4096
ANONCE_OFFSET = 0xBC
_FIELDS = {"user_pubkey_digest": (0x00, 32), "vm_id": (0x20, 16), "vm_version": (0x30, 16), "user_data": (0x40, 64),
           "mnonce": (0x80, 16), "measure": (0x90, 32), "policy": (0xB0, 4)}


@record
class CsvReport:
    """The fields rats-tls reads from a Hygon CSV report, unmasked but unverified: claims, not measurements."""

    vm_id: bytes
    vm_version: bytes
    user_data: bytes  # report_data: SHA256(claims) in [0:32]
    measure: bytes
    policy: int
    anonce: int

    def claims(self) -> dict[str, str | int]:
        """What rats-tls gives its callback for CSV evidence (``rtls_evidence_t.csv``)."""
        return {"vm_id": self.vm_id.hex(), "vm_version": self.vm_version.hex(), "measure": self.measure.hex(),
                "policy": self.policy}


def parse_csv_report(evidence: bytes) -> CsvReport:
    """The report's fields with the anonce mask removed (no signature is checked)."""
    raw = bytes(evidence[:REPORT_SIZE]).ljust(REPORT_SIZE, b"\x00")
    anonce = int.from_bytes(raw[ANONCE_OFFSET:ANONCE_OFFSET + 4], "little")
    mask = anonce.to_bytes(4, "little")
    clear = bytes(b ^ mask[i % 4] for i, b in enumerate(raw[:ANONCE_OFFSET]))

    def field(name: str) -> bytes:
        off, size = _FIELDS[name]
        return clear[off:off + size]

    return CsvReport(field("vm_id"), field("vm_version"), field("user_data"), field("measure"),
                     int.from_bytes(field("policy"), "little"), anonce)
