"""Access to the shared DCAP test vectors (../shared/vectors, or $EAA_VECTORS)."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from eaa.collateral.bundle import Collateral
from eaa.formats.quote import decode_quote_text
from eaa.pki.trust import TrustAnchor, anchor_from_file

ROOT = Path(__file__).resolve().parent.parent


def vectors_dir() -> Path | None:
    env = os.environ.get("EAA_VECTORS")
    d = Path(env) if env else ROOT.parent / "shared" / "vectors"
    return d if (d / "MANIFEST.json").is_file() else None


def require_vectors() -> Path:
    d = vectors_dir()
    if d is None:
        msg = "shared test vectors not found (set EAA_VECTORS or put shared/ beside the checkout)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


@lru_cache(maxsize=1)
def manifest() -> list[dict[str, Any]]:
    d = vectors_dir()
    if d is None:
        return []
    return json.loads((d / "MANIFEST.json").read_text())["vectors"]


def vector_ids() -> list[str]:
    ids = [v["id"] for v in manifest()]
    return ids or ["<no vectors>"]


def get_vector(vid: str) -> dict[str, Any]:
    require_vectors()
    for v in manifest():
        if v["id"] == vid:
            return v
    pytest.fail(f"vector {vid} not in manifest")


def quote_bytes(v: dict[str, Any]) -> bytes:
    return decode_quote_text((require_vectors() / v["quote"]).read_bytes())


def _chain(c: Any) -> str:
    d = require_vectors()
    if isinstance(c, list):
        return "".join((d / f).read_text() for f in c)
    return (d / c).read_text()


def collateral(v: dict[str, Any]) -> tuple[Collateral, bool]:
    """(collateral, check_crl): vectors whose source ships no CRLs are checked without revocation."""
    d = require_vectors()
    c = v["collateral"]
    if "qvl_json" in c:
        return Collateral.from_qvl_json((d / c["qvl_json"]).read_text()), True
    coll = Collateral.from_pcs_parts(
        tcb_info_response=(d / c["tcb_info"]).read_bytes(),
        qe_identity_response=(d / c["qe_identity"]).read_bytes(),
        tcb_info_issuer_chain=_chain(c["tcb_info_issuer_chain"]),
        qe_identity_issuer_chain=_chain(c.get("qe_identity_issuer_chain", c["tcb_info_issuer_chain"])),
        pck_crl_issuer_chain=_chain(c["pck_crl_issuer_chain"]),
        root_ca_crl=(d / c["root_ca_crl"]).read_bytes() if "root_ca_crl" in c else None,
        pck_crl=(d / c["pck_crl"]).read_bytes() if "pck_crl" in c else None,
    )
    return coll, coll.root_ca_crl is not None


def anchors(v: dict[str, Any]) -> list[TrustAnchor] | None:
    if v.get("trusted_root_ca"):
        return [anchor_from_file(require_vectors() / v["trusted_root_ca"])]
    return None


def verifiable() -> list[str]:
    return [v["id"] for v in manifest() if v.get("expected", {}).get("result", "").startswith("ok")] or ["<none>"]
