"""Floors: what a verification costs with all of the verifier's own work taken out.

nine_signatures  the nine signature checks of a cold DCAP verification and nothing else, keys loaded
                 and data prepared beforehand: a hard bound. Every cold verification through OpenSSL
                 makes these nine checks (PCK leaf, PCK CA, TCB Signing certificate, root CA CRL, PCK
                 CRL, TCB info, QE identity, QE report, quote), so none runs at more than this rate.
signature_floor  the quote's own signature alone: the same bound for a warm verification.
cold_floor       a cold verification reduced to its library calls: load the quote's PCK chain and the TCB
                 info and PCK CRL issuer chains (PEM), both CRLs (DER), the keys (each once), decode
                 the TCB info and QE identity JSON, and make the nine checks. No role, name, extension,
                 validity, revocation, identity or TCB check, no error mapping, inputs taken at fixed
                 offsets and on trust. Not a hard bound: a verifier can avoid some of this library work
                 (eaa slices the signed TBS bytes out of the DER instead of having them re-encoded, and
                 so executes fewer instructions than this floor on TDX v4), but it is what verifying
                 these bytes through cryptography costs when the verifier's own checks cost nothing.
peer_floor       the same for a cold attested-TLS peer check: cold_floor on the evidence and endorsements
                 of a DICE certificate, plus loading the certificate, its self-signature, its two
                 extensions (CBOR), the key hash in the claims and the claims hash in the report data.

Every floor raises if a signature or binding does not hold, so a floor cannot be timed on a shortcut.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_ALG = ec.ECDSA(hashes.SHA256())
_BODY_SIZE = {(3, 0): 384, (4, 0): 384, (4, 0x81): 584}  # (version, TEE type) -> report body size
_EVIDENCE = x509.ObjectIdentifier("2.23.133.5.4.9")
_ENDORSEMENTS = x509.ObjectIdentifier("2.23.133.5.4.2")


class FloorFailed(Exception):
    """A signature or binding a floor checks did not hold (the floor's inputs are wrong)."""


def _der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"))


def _quote_parts(raw: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes]:
    """Signed data, signature, attestation key, QE report, its signature, report data, PCK chain PEM, at fixed
    offsets (SGX v3/v4 and TDX v4; QE certification data type 6 in v4)."""
    version, _, tee = struct.unpack_from("<HHI", raw, 0)
    end = 48 + _BODY_SIZE[(version, tee)]
    signature, att_key = raw[end + 4:end + 68], raw[end + 68:end + 132]
    pos = end + 132
    if version == 4:
        pos += 6  # certification data type 6 and its size
    qe_report, qe_sig = raw[pos:pos + 384], raw[pos + 384:pos + 448]
    (auth,) = struct.unpack_from("<H", raw, pos + 448)
    pos += 450 + auth
    _, size = struct.unpack_from("<HI", raw, pos)
    report_data = raw[48 + 320:48 + 384] if tee == 0 else raw[48 + 520:48 + 584]
    return raw[:end], signature, att_key, qe_report, qe_sig, report_data, raw[pos + 6:pos + 6 + size]


def _dcap(raw: bytes, tcb_info: bytes, tcb_sig: bytes, tcb_chain: bytes, qe_identity: bytes, qe_sig: bytes,
          crl_chain: bytes, root_crl: Any, pck_crl: Any) -> tuple[list[tuple[Any, bytes, bytes]], bytes]:
    """Everything of the cold DCAP floor but the signature checks: the loads, and the nine (key, DER signature,
    signed bytes) triples; and the quote's report data. Each key is loaded once (the PCK CRL's issuer is the
    PCK CA in Intel's chains); certificates and CRLs are checked over the TBS bytes cryptography gives."""
    signed, signature, att_key, qe_report, qe_report_sig, report_data, pck_pem = _quote_parts(raw)
    leaf, ca, root = x509.load_pem_x509_certificates(pck_pem)
    tcb_signer, _ = x509.load_pem_x509_certificates(tcb_chain)
    x509.load_pem_x509_certificates(crl_chain)
    root_key, ca_key, tcb_key = root.public_key(), ca.public_key(), tcb_signer.public_key()
    json.loads(tcb_info)
    json.loads(qe_identity)
    att = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + att_key)
    return [
        (ca_key, leaf.signature, leaf.tbs_certificate_bytes),
        (root_key, ca.signature, ca.tbs_certificate_bytes),
        (root_key, tcb_signer.signature, tcb_signer.tbs_certificate_bytes),
        (root_key, root_crl.signature, root_crl.tbs_certlist_bytes),
        (ca_key, pck_crl.signature, pck_crl.tbs_certlist_bytes),
        (tcb_key, _der(tcb_sig), tcb_info),
        (tcb_key, _der(qe_sig), qe_identity),
        (leaf.public_key(), _der(qe_report_sig), qe_report),
        (att, _der(signature), signed),
    ], report_data


def _check(items: list[tuple[Any, bytes, bytes]]) -> None:
    for key, signature, data in items:
        key.verify(signature, data, _ALG)


def signature_floor(raw: bytes) -> Callable[[], object]:
    signed, signature, att_key, *_ = _quote_parts(raw)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + att_key)
    der = _der(signature)
    return lambda: key.verify(der, signed, _ALG)


def _collateral_parts(c: Any) -> tuple[Any, ...]:
    return (c.tcb_info.encode(), c.tcb_info_signature, c.tcb_info_issuer_chain.encode(), c.qe_identity.encode(),
            c.qe_identity_signature, c.pck_crl_issuer_chain.encode())


def nine_signatures(raw: bytes, collateral: Any) -> Callable[[], object]:
    """The nine signature checks of a cold verification alone, everything they need loaded beforehand."""
    items, _ = _dcap(raw, *_collateral_parts(collateral), x509.load_der_x509_crl(collateral.root_ca_crl),
                     x509.load_der_x509_crl(collateral.pck_crl))
    return lambda: _check(items)


def cold_floor(raw: bytes, collateral: Any) -> Callable[[], object]:
    """``collateral``: an eaa Collateral (str/bytes fields as dcap-qvl's QuoteCollateralV3 holds them)."""
    c, parts = collateral, _collateral_parts(collateral)

    def run() -> object:
        items, report_data = _dcap(raw, *parts, x509.load_der_x509_crl(c.root_ca_crl),
                                   x509.load_der_x509_crl(c.pck_crl))
        _check(items)
        return report_data

    return run


def _split(response: bytes, key: bytes) -> tuple[bytes, bytes]:
    """Body and signature of ``{"<key>":<body>,"signature":"<hex>"}`` (the layout is taken on trust)."""
    cut = response.rindex(b',"signature":"')
    return response[len(key) + 4:cut], bytes.fromhex(response[cut + 14:-2].decode())


def peer_floor(der: bytes) -> object:
    cert = x509.load_der_x509_certificate(der)
    key = cert.public_key()
    key.verify(cert.signature, cert.tbs_certificate_bytes, _ALG)
    tagged = cbor2.loads(cert.extensions.get_extension_for_oid(_EVIDENCE).value.value)
    endorsements = cbor2.loads(cert.extensions.get_extension_for_oid(_ENDORSEMENTS).value.value).value
    evidence, claims = tagged.value
    _, key_hash = cbor2.loads(cbor2.loads(claims)["pubkey-hash"])
    if key_hash != hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).digest():
        raise FloorFailed("pubkey-hash")
    tcb_response, tcb_chain, pck_crl, root_crl, crl_chain, qe_response, _ = (
        f.rstrip(b"\x00") for f in endorsements[1:8])
    tcb_info, tcb_sig = _split(tcb_response, b"tcbInfo")
    qe_identity, qe_sig = _split(qe_response, b"enclaveIdentity")
    items, report_data = _dcap(evidence, tcb_info, tcb_sig, tcb_chain, qe_identity, qe_sig, crl_chain,
                               x509.load_pem_x509_crl(root_crl), x509.load_pem_x509_crl(pck_crl))
    _check(items)
    if report_data[:32] != hashlib.sha256(claims).digest():
        raise FloorFailed("claims hash")
    return report_data
