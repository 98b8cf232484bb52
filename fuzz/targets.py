"""Fuzz targets: every reader of untrusted bytes, with the one contract they all share.

A target either returns or raises an :class:`eaa.errors.EaaError` (a typed, one-line refusal). Any other
exception is a bug: a traceback for a user, a dropped connection with no ERROR line, a dead daemon. The
same targets run briefly under hypothesis in ``make test`` (tests/test_fuzz_short.py) and for as long as
asked, coverage-guided, under atheris with ``make fuzz`` (fuzz/run.py).

Seeds come from the shared vectors (real quotes, reports, collateral) and from a simulated platform
created from a fixed seed at a fixed time, so every run starts from the same corpus.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from eaa.collateral.bundle import Collateral
from eaa.collateral.qcnl import parse_qcnl
from eaa.errors import EaaError
from eaa.formats.enclave_identity import EnclaveIdentity
from eaa.formats.pck_extensions import parse_sgx_extension
from eaa.formats.quote import decode_quote_text, parse_quote
from eaa.formats.snp_report import parse_snp_report
from eaa.formats.tbs import read_tbs
from eaa.formats.tcb_info import TcbInfo
from eaa.services import protocol
from eaa.tls.claims import decode_claims
from eaa.tls.dice import decode_endorsements, decode_evidence
from eaa.tls.peer import PeerVerifier

ROOT = Path(__file__).resolve().parent.parent
VECTORS = Path(os.environ.get("EAA_VECTORS", ROOT.parent / "shared" / "vectors"))
T0 = datetime(2031, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
AT = datetime(2031, 3, 5, tzinfo=timezone.utc)
MAX_INPUT = 1 << 16


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], object]
    seeds: Callable[[], list[bytes]]


def check(target: Target, data: bytes) -> None:
    """Run ``target`` on ``data``; a typed refusal is fine, anything else propagates (a bug)."""
    try:
        target.run(data)
    except EaaError:
        pass


# ---- seeds ----

def _manifest() -> list[dict]:
    path = VECTORS / "MANIFEST.json"
    return json.loads(path.read_text())["vectors"] if path.exists() else []


def _vector_files(kind: str) -> list[bytes]:
    out = []
    for v in _manifest():
        rel = v.get(kind)
        if isinstance(rel, str) and (VECTORS / rel).is_file():
            out.append((VECTORS / rel).read_bytes())
    return out


def _collaterals() -> list[Collateral]:
    out = []
    for v in _manifest():
        rel = v.get("collateral", {}).get("qvl_json") if isinstance(v.get("collateral"), dict) else None
        if rel and (VECTORS / rel).is_file():
            out.append(Collateral.from_qvl_json((VECTORS / rel).read_text()))
    return out


@lru_cache(maxsize=1)
def _platform():  # type: ignore[no-untyped-def]
    from eaa.sim.platform import init_platform

    return init_platform(Path(tempfile.mkdtemp(prefix="eaa-fuzz-")) / "sim", now=T0, seed=b"\x5a" * 32)


@lru_cache(maxsize=1)
def _attested_certificates() -> tuple[bytes, ...]:
    """Enclave-TLS certificates of the simulated platform: DICE with and without endorsements, legacy."""
    from eaa.sim.attesters import SimSgxEcdsaAttester, SimTdxEcdsaAttester
    from eaa.tls.crypto import OpenSslCrypto

    plat = _platform()
    crypto = OpenSslCrypto()
    out = []
    for attester in (SimSgxEcdsaAttester(platform=plat, mrenclave=b"\x11" * 32), SimTdxEcdsaAttester(platform=plat)):
        for fmt, endorse in (("dice", False), ("dice", True), ("legacy", False)):
            cred = crypto.create_credentials(attester, cert_format=fmt, endorsements=endorse, now=T0)
            out.append(cred.certificate.public_bytes(Encoding.DER))
    return tuple(out)


def _snp_reports() -> list[bytes]:
    names = ["snp-go-sev-guest/attestation.bin", "snp-trustee/snp-report-genoa.bin", "snp-trustee/test-report.bin",
             "snp-trustee/test-vlek-report.bin"]
    return [(VECTORS / n).read_bytes()[:1184] for n in names if (VECTORS / n).is_file()]


def _sgx_extension() -> bytes:
    from eaa.formats.pck_extensions import sgx_extension_value

    value = sgx_extension_value(_platform().pck_certificate)
    assert value is not None
    return value


def _quote_seeds() -> list[bytes]:
    plat = _platform()
    return _vector_files("quote")[:6] + [plat.make_sgx_quote(b"q"), plat.make_tdx_quote(b"q")]


def _signed(key: str) -> list[bytes]:
    out = []
    for c in _collaterals()[:4] + [_platform().collateral("sgx"), _platform().collateral("tdx")]:
        body, sig = (c.tcb_info, c.tcb_info_signature) if key == "tcbInfo" else (c.qe_identity, c.qe_identity_signature)
        out.append(('{"' + key + '":' + body + ',"signature":"' + sig.hex() + '"}').encode())
    return out


def _extension_values(oid_suffix: bytes) -> list[bytes]:
    from eaa.tls.peercert import parse_certificate

    out = []
    for der in _attested_certificates():
        cert = parse_certificate(der)
        for ext in cert.extensions:
            if ext.oid.endswith(oid_suffix.decode()):
                out.append(ext.value)
    return out


def _protocol_seeds() -> list[bytes]:
    return [protocol.make_request(b"\x01" * protocol.NONCE_SIZE), protocol.make_request(None),
            b'{"type":"GETENCLAVEINFO","version":2,"nonce":"' + b"ab" * 32 + b'"}\n',
            protocol.enclaveinfo_v1(b"\x01" * 32, b"\x02" * 32, b"hello"),
            protocol.enclaveinfo_v2(b"\x01" * 32, None, protocol.Verdict(False, "X", "y", None))]


def _qcnl_seeds() -> list[bytes]:
    return [b'{"pccs_url": "https://localhost:8081/sgx/certification/v4/", "use_secure_cert": false,'
            b' "retry_times": 6, "retry_delay": 10, "collateral_service": "https://api.trustedservices.intel.com/"}',
            b"PCCS_URL=https://localhost:8081/sgx/certification/v3/\nUSE_SECURE_CERT=FALSE\n",
            b'{ // comment\n "pccs_url": "https://pccs:8081/sgx/certification/v4/", "local_pck_url": "http://x/" }']


# ---- runners ----

def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _protocol(data: bytes) -> None:
    for parse in (protocol.parse_request, protocol.parse_enclaveinfo_v2, protocol.parse_enclaveinfo_v1):
        try:
            parse(data)
        except EaaError:
            pass
    protocol.WorkloadEvidence.from_workload_reply(data, None)


def _peer_certificate(data: bytes) -> None:
    """The whole Enclave-TLS peer check: parsing, evidence and claims extraction, binding, verification."""
    from eaa.sim.platform import SimPlatform  # noqa: F401 - the platform below is created once

    plat = _platform()
    for verifier in ("nullverifier", None):
        try:
            PeerVerifier(verifier=verifier, trust_anchors=[plat.anchor()], at=AT, cache_size=0,
                         collateral=lambda tee, _q: plat.collateral(tee)).verify_certificate(data)
        except EaaError:
            pass


def _evidence(data: bytes) -> None:
    tagged = decode_evidence(data)
    decode_claims(tagged.claims)


TARGETS = {t.name: t for t in [
    Target("quote", lambda d: parse_quote(decode_quote_text(d)), _quote_seeds),
    Target("snp_report", parse_snp_report, lambda: _snp_reports()),
    Target("tcb_info", TcbInfo.from_response, lambda: _signed("tcbInfo")),
    Target("enclave_identity", EnclaveIdentity.from_response, lambda: _signed("enclaveIdentity")),
    Target("collateral_json", lambda d: Collateral.from_qvl_json(d),
           lambda: [c.to_qvl_json().encode() for c in _collaterals()[:3]]),
    Target("sgx_extension", parse_sgx_extension, lambda: [_sgx_extension()]),
    Target("tbs", read_tbs, lambda: [der[4:] for der in _attested_certificates()[:2]]),
    Target("dice_evidence", _evidence, lambda: _extension_values(b"2.23.133.5.4.9")),
    Target("endorsements", decode_endorsements, lambda: _extension_values(b"2.23.133.5.4.2")),
    Target("peer_certificate", _peer_certificate, lambda: list(_attested_certificates())),
    Target("protocol", _protocol, _protocol_seeds),
    Target("qcnl", lambda d: parse_qcnl(_text(d)), _qcnl_seeds),
]}
