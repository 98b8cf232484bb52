"""Collateral validators given certificates, chains and CRLs with one changed byte raise only typed errors.

cryptography parses names, keys and extensions on first use, and reports an unknown version with an
exception of its own; these checks make sure that none of that reaches a PCCS or a verifier untyped.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable

import pytest

from _vectors import require_vectors
from eaa.collateral import kds
from eaa.collateral import validate as v
from eaa.errors import EaaError
from eaa.pki.trust import default_anchors
from eaa.services.pccs.records import signed_response
from test_pccs_support import vector_case


def _every_change_is_typed(data: bytes, check: Callable[[bytes], object], samples: int = 250) -> None:
    rng = random.Random(len(data))
    escaped = []
    for p in sorted(set(rng.sample(range(len(data)), min(samples, len(data)))) | {0, len(data) - 1}):
        m = bytearray(data)
        m[p] ^= 0x01 if p % 2 else 0x20
        try:
            check(bytes(m))
        except EaaError:
            continue
        except Exception as e:  # noqa: BLE001 - what this test looks for
            escaped.append(f"{p}: {type(e).__name__}: {e}")
    assert not escaped, escaped[:5]


def test_kds_chain_and_vcek() -> None:
    d = require_vectors() / "snp-go-sev-guest"
    chain, vcek = (d / "ask_ark_milan.pem").read_bytes(), (d / "vcek.testcer").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # VCEKs have serial number 0
        kc = kds.validate_cert_chain(chain, "Milan")
        kds.validate_vek(vcek, kc, "Milan")
        _every_change_is_typed(chain, lambda m: kds.validate_cert_chain(m, "Milan"))
        _every_change_is_typed(vcek, lambda m: kds.validate_vek(m, kc, "Milan"))


@pytest.mark.filterwarnings("ignore::UserWarning")  # cryptography on a mangled country name, when quoting it
@pytest.mark.parametrize("part", ["tcb_info", "tcb_info_issuer_chain", "pck_crl", "pck_crl_issuer_chain",
                                  "root_ca_crl"])
def test_intel_collateral(part: str) -> None:
    c = vector_case("dcap-qvl/sgx_v3").collateral
    anchors = default_anchors()
    tcb = signed_response("tcbInfo", c.tcb_info, c.tcb_info_signature)
    assert c.pck_crl is not None and c.root_ca_crl is not None
    checks: dict[str, tuple[bytes, Callable[[bytes], object]]] = {
        "tcb_info": (tcb, lambda m: v.validate_tcb_info(m, c.tcb_info_issuer_chain, anchors)),
        "tcb_info_issuer_chain": (c.tcb_info_issuer_chain.encode(),
                                  lambda m: v.validate_tcb_info(tcb, m.decode("latin-1"), anchors)),
        "pck_crl": (c.pck_crl, lambda m: v.validate_pck_crl(m, c.pck_crl_issuer_chain, anchors)),
        "pck_crl_issuer_chain": (c.pck_crl_issuer_chain.encode(),
                                 lambda m: v.validate_pck_crl(c.pck_crl or b"", m.decode("latin-1"), anchors)),
        "root_ca_crl": (c.root_ca_crl, lambda m: v.validate_root_ca_crl(m, anchors)),
    }
    data, check = checks[part]
    check(data)  # the original is valid
    _every_change_is_typed(data, check)
