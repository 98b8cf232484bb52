"""The SEV-SNP certificate table the host hands to the guest (configfs-tsm ``auxblob`` / EXT_REPORT).

A table of ``{GUID (16 B, RFC 4122 byte order), u32 offset, u32 length}`` entries ended by an
all-zero entry; offsets are relative to the start of the table (shared/docs/tee-interfaces.md §1d,
go-sev-guest ``abi/abi.go``). The certificates are whatever the (untrusted) host chose to supply
— typically the VCEK or VLEK and the ASK/ARK — so they are only a cache for the verifier, which
checks them against AMD's root like certificates fetched from KDS.

:class:`SnpEndorsements` is that table as it travels with an SNP report (Enclave-TLS endorsements
extension, the EAA protocol relay): the raw table exactly as the host gave it, plus AMD CRLs when the
attester has them (a real host supplies none; the simulated platform adds its ARK's CRL).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from ..checks import Check
from ..errors import FormatError
from ..records import record

VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
VLEK_GUID = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")
GUID_NAMES = {VCEK_GUID: "vcek", VLEK_GUID: "vlek", ASK_GUID: "ask", ARK_GUID: "ark"}

ENTRY_SIZE = 24
MAX_ENTRIES = 64


@record
class SnpCertificate:
    """One entry of the host's SEV-SNP certificate table: a GUID and the bytes it points to, unverified."""

    guid: uuid.UUID
    data: bytes  # usually DER, exactly as the host supplied it

    @property
    def name(self) -> str | None:
        """``vcek``/``vlek``/``ask``/``ark`` for the GUIDs AMD defines, else None."""
        return GUID_NAMES.get(self.guid)


@record
class SnpCertTable:
    """The parsed table; empty when the host supplied none (or the report came without one)."""

    entries: tuple[SnpCertificate, ...] = ()
    raw: bytes = b""

    def get(self, name: str) -> bytes | None:
        """The certificate named ``vcek``/``vlek``/``ask``/``ark``, or None when the host did not supply it."""
        for e in self.entries:
            if e.name == name:
                return e.data
        return None


def parse_cert_table(data: bytes) -> SnpCertTable:
    """Parse a certificate table; every entry must lie inside ``data``, after the table itself."""
    data = bytes(data)
    if not data.strip(b"\x00"):
        return SnpCertTable((), data)
    headers: list[tuple[uuid.UUID, int, int]] = []
    pos = 0
    while True:
        if pos + ENTRY_SIZE > len(data):
            raise FormatError("SNP certificate table has no terminating all-zero entry", offset=pos,
                              check=Check.SNP_CERT_TABLE)
        entry = data[pos:pos + ENTRY_SIZE]
        pos += ENTRY_SIZE
        if entry == bytes(ENTRY_SIZE):
            break
        if len(headers) == MAX_ENTRIES:
            raise FormatError(f"SNP certificate table has more than {MAX_ENTRIES} entries", offset=pos,
                              check=Check.SNP_CERT_TABLE)
        guid = uuid.UUID(bytes=entry[:16])
        offset = int.from_bytes(entry[16:20], "little")
        length = int.from_bytes(entry[20:24], "little")
        headers.append((guid, offset, length))
    entries = []
    seen = set()
    for i, (guid, offset, length) in enumerate(headers):
        if guid in seen:
            raise FormatError(f"SNP certificate table lists {guid} twice", field=f"entry[{i}]",
                              check=Check.SNP_CERT_TABLE)
        seen.add(guid)
        if offset < pos or offset + length > len(data):
            raise FormatError(f"SNP certificate {guid} at {offset}+{length} lies outside the table's data "
                              f"({pos}..{len(data)})", field=f"entry[{i}]", check=Check.SNP_CERT_TABLE)
        entries.append(SnpCertificate(guid, data[offset:offset + length]))
    return SnpCertTable(tuple(entries), data)


def build_cert_table(entries: Iterable[tuple[uuid.UUID, bytes]]) -> bytes:
    """A certificate table in the host's layout: the entries, the all-zero entry, then the certificates."""
    items = [(guid, bytes(blob)) for guid, blob in entries]
    pos = ENTRY_SIZE * (len(items) + 1)
    head, body = b"", b""
    for guid, blob in items:
        head += guid.bytes + (pos + len(body)).to_bytes(4, "little") + len(blob).to_bytes(4, "little")
        body += blob
    return head + bytes(ENTRY_SIZE) + body


@record
class SnpEndorsements:
    """The certificates (and CRLs) that travel with one SNP report; untrusted until the verifier checks them."""

    table: SnpCertTable
    crls: tuple[bytes, ...] = ()  # AMD CRLs, DER

    @classmethod
    def parse(cls, table: bytes, crls: Iterable[bytes] = ()) -> SnpEndorsements:
        """From the raw table and CRLs as received; a malformed table is a FormatError (SNP_CERT_TABLE)."""
        raw = bytes(table)
        parsed = parse_cert_table(raw) if raw else SnpCertTable()
        return cls(parsed, tuple(bytes(c) for c in crls if c))

    @property
    def empty(self) -> bool:
        return not self.table.entries and not self.crls
