"""What an attester is: produces evidence of one type (:mod:`eaa.evidence`) binding given report data."""

from __future__ import annotations

from typing import Protocol

from ..evidence import Evidence


class Attester(Protocol):
    name: str
    evidence_type: str

    def collect_evidence(self, report_data: bytes) -> Evidence:
        """Produce fresh evidence whose report data is ``report_data`` (at most 64 bytes, zero-padded)."""
        ...
