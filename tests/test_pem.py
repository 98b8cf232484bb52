"""The one PEM splitter: every reader of a certificate chain sees the same blocks."""

from __future__ import annotations

from eaa.formats.pem import PEM_BEGIN, PEM_END, pem_blocks, pem_bodies
from eaa.formats.quote import CERT_PCK_CHAIN, CertificationData


def test_blocks_in_order_noise_and_unterminated_block_left_out() -> None:
    data = (b"junk\n" + PEM_BEGIN + b"\nQUFB\n" + PEM_END + b"\r\n\x00"
            + PEM_BEGIN + b"QkJC" + PEM_END + PEM_BEGIN + b"Q0ND")
    assert pem_bodies(data) == [b"\nQUFB\n", b"QkJC"]
    assert pem_blocks(data) == [PEM_BEGIN + b"\nQUFB\n" + PEM_END + b"\n", PEM_BEGIN + b"QkJC" + PEM_END + b"\n"]
    assert pem_bodies(b"") == [] and pem_bodies(PEM_END + PEM_BEGIN) == []


def test_quote_certification_data_uses_it() -> None:
    data = PEM_BEGIN + b"QUFB" + PEM_END + b"\x00" * 8
    assert CertificationData(CERT_PCK_CHAIN, data).pem_chain == pem_blocks(data)
    assert CertificationData(1, data).pem_chain == []
