"""``nullattester``: no evidence at all. Only a verifier explicitly named ``nullverifier`` accepts it."""

from __future__ import annotations

from ..evidence import NULL, Evidence, pad_report_data


class NullAttester:
    name = "nullattester"
    evidence_type = NULL

    def collect_evidence(self, report_data: bytes) -> Evidence:
        return Evidence(NULL, b"", pad_report_data(report_data))
