"""bench/floors.py: every floor passes on real inputs and refuses a broken signature or binding, so no
benchmark row can be timed on a shortcut; bench/tls_handshake.py's floor configuration runs."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import cbor2
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from _vectors import require_vectors
from eaa.collateral.bundle import Collateral
from eaa.sim import load_platform
from eaa.sim.attesters import SimSgxEcdsaAttester
from eaa.tls.crypto import Credentials, OpenSslCrypto

BENCH = Path(__file__).resolve().parent.parent / "bench"
QUOTES = ["dcap-qvl/sgx_v3", "dcap-qvl/tdx_v4"]


def _load(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the benchmarks import floors as a sibling
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


floors = _load("floors")


def _case(vid: str) -> tuple[bytes, Collateral]:
    d = require_vectors()
    v = {v["id"]: v for v in json.loads((d / "MANIFEST.json").read_text())["vectors"]}[vid]
    return (d / v["quote"]).read_bytes(), Collateral.from_qvl_json((d / v["collateral"]["qvl_json"]).read_text())


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


def _quote_floors(raw: bytes, coll: Collateral) -> list[Callable[[], object]]:
    return [floors.cold_floor(raw, coll), floors.nine_signatures(raw, coll)]


@pytest.mark.parametrize("vid", QUOTES)
def test_quote_floors_pass_on_real_quotes(vid: str) -> None:
    raw, coll = _case(vid)
    for floor in [*_quote_floors(raw, coll), floors.signature_floor(raw)]:
        floor()


@pytest.mark.parametrize("vid", QUOTES)
def test_quote_floors_check_the_quote_signature(vid: str) -> None:
    raw, coll = _case(vid)
    signed_end = len(floors._quote_parts(raw)[0])
    bad = _flip(raw, signed_end + 4)  # first byte of the quote signature
    for floor in [*_quote_floors(bad, coll), floors.signature_floor(bad)]:
        with pytest.raises(InvalidSignature):
            floor()


@pytest.mark.parametrize("field", ["tcb_info_signature", "qe_identity_signature", "pck_crl", "root_ca_crl"])
def test_quote_floors_check_every_collateral_signature(field: str) -> None:
    raw, coll = _case(QUOTES[0])
    value = getattr(coll, field)
    bad = dataclasses.replace(coll, **{field: _flip(value, len(value) - 3)})  # inside the signature
    for floor in _quote_floors(raw, bad):
        with pytest.raises(InvalidSignature):
            floor()


def test_quote_floors_check_the_qe_report_signature() -> None:
    raw, coll = _case(QUOTES[0])
    signed_end = len(floors._quote_parts(raw)[0])
    bad = _flip(raw, signed_end + 132 + 384)  # first byte of the QE report signature
    for floor in _quote_floors(bad, coll):
        with pytest.raises(InvalidSignature):
            floor()


@pytest.fixture(scope="module")
def sim_creds(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    sim = tmp_path_factory.mktemp("floors") / "sim"
    load_platform(sim)
    return OpenSslCrypto().create_credentials(SimSgxEcdsaAttester(sim), endorsements=True)


def test_peer_floor_passes_on_an_attested_certificate(sim_creds: Credentials) -> None:
    assert len(floors.peer_floor(sim_creds.certificate.public_bytes(Encoding.DER))) == 64


def test_peer_floor_checks_the_self_signature(sim_creds: Credentials) -> None:
    der = sim_creds.certificate.public_bytes(Encoding.DER)
    with pytest.raises(InvalidSignature):
        floors.peer_floor(_flip(der, len(der) - 3))


def _resigned(cert: x509.Certificate, extensions: list[x509.Extension[x509.ExtensionType]],
              key: ec.EllipticCurvePrivateKey | None = None) -> bytes:
    """The extensions in a new certificate, by default of another key (what a thief of the evidence would
    present)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    b = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.subject).public_key(key.public_key())
         .serial_number(2).not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(hours=1)))
    for ext in extensions:
        b = b.add_extension(ext.value, ext.critical)
    return b.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def test_peer_floor_checks_the_key_binding(sim_creds: Credentials) -> None:
    cert = sim_creds.certificate
    with pytest.raises(floors.FloorFailed, match="pubkey-hash"):
        floors.peer_floor(_resigned(cert, list(cert.extensions)))


def test_tls_bench_runs_its_floor_configuration(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(BENCH / "tls_handshake.py"), "--rounds", "1", "--seconds", "0.05",
                        "--json", "--sim-dir", str(tmp_path / "sim")], capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout)["rows"]
    assert [r["mode"] for r in rows] == ["one-way", "mutual"]
    for r in rows:
        assert r["floor"]["median"] > 0 and r["cold_floor_ratio"]["median"] > 0


def test_peer_floor_checks_the_claims_hash(sim_creds: Credentials) -> None:
    """Claims the quote's report data does not hash (a custom claim added), in a certificate of the right key."""
    cert = sim_creds.certificate
    evidence_oid = x509.ObjectIdentifier("2.23.133.5.4.9")
    tagged = cbor2.loads(cert.extensions.get_extension_for_oid(evidence_oid).value.value)  # type: ignore[attr-defined]
    quote, claims = tagged.value
    changed = cbor2.dumps({**cbor2.loads(claims), "extra": b"x"})
    value = cbor2.dumps(cbor2.CBORTag(tagged.tag, [quote, changed]))
    extensions = [x509.Extension(evidence_oid, False, x509.UnrecognizedExtension(evidence_oid, value))
                  if e.oid == evidence_oid else e for e in cert.extensions]
    assert isinstance(sim_creds.private_key, ec.EllipticCurvePrivateKey)
    with pytest.raises(floors.FloorFailed, match="claims hash"):
        floors.peer_floor(_resigned(cert, extensions, sim_creds.private_key))
