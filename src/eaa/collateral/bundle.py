"""The verification collateral of one quote, and the file forms it is read from and written to.

The canonical in-memory form mirrors dcap-qvl's ``QuoteCollateralV3`` (PEM issuer chains, DER CRLs,
the exact signed TCB info / QE identity text and their raw signatures), so that the JSON files the
vectors and peers ship load without conversion.
"""

from __future__ import annotations

import binascii
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import CollateralMissing, FormatError
from ..formats.signed_json import join_signed, loads_strict, parse_signature_hex, split_signed
from ..formats.x509_errors import PARSE_ERRORS
from ..records import record

MAX_COLLATERAL_FILE = 16 << 20


def crl_to_der(data: bytes | str | None, field: str) -> bytes | None:
    """Accept a CRL as DER, PEM or hex-encoded DER (PCCS API v3 serves hex)."""
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    data = bytes(data)
    if not data:
        return None
    if data[:1] == b"\x30":
        return data
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        der = _pem_crl_der(text)
        if der is not None:
            return der
        from cryptography import x509

        from ..pki.trust import der_of

        try:
            return der_of(x509.load_pem_x509_crl(text))
        except PARSE_ERRORS:
            raise FormatError("CRL is not valid PEM", field=field) from None
    try:
        der = binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raise FormatError("CRL is neither DER, PEM nor hex", field=field) from None
    if der[:1] != b"\x30":
        raise FormatError("CRL is not DER", field=field)
    return der


_CRL_BEGIN, _CRL_END = b"-----BEGIN X509 CRL-----", b"-----END X509 CRL-----"


def _pem_crl_der(text: bytes) -> bytes | None:
    """The DER of one bare ``X509 CRL`` PEM block, base64-decoded rather than parsed and re-encoded by
    cryptography: the verifier parses every CRL once, from this DER, and a peer sends its CRLs as PEM
    on every handshake. Anything else (other labels, several blocks, bad base64, DER that is not one
    SEQUENCE) gives None and takes cryptography's PEM reader and its error."""
    if not (text.startswith(_CRL_BEGIN) and text.endswith(_CRL_END)):
        return None
    try:
        der = binascii.a2b_base64(b"".join(text[len(_CRL_BEGIN):-len(_CRL_END)].split()), strict_mode=True)
    except binascii.Error:
        return None
    if len(der) < 2 or der[0] != 0x30:
        return None
    size, head = der[1], 2
    if size & 0x80:
        head += size & 0x7F
        if not 3 <= head <= 6 or len(der) < head:
            return None
        size = int.from_bytes(der[2:head], "big")
    return der if head + size == len(der) else None


@record
class Collateral:
    """The collateral that verifies one DCAP quote, in dcap-qvl's ``QuoteCollateralV3`` form: the exact signed
    JSON, PEM issuer chains and DER CRLs."""

    pck_crl_issuer_chain: str
    root_ca_crl: bytes | None
    pck_crl: bytes | None
    tcb_info_issuer_chain: str
    tcb_info: str
    tcb_info_signature: bytes
    qe_identity_issuer_chain: str
    qe_identity: str
    qe_identity_signature: bytes
    pck_certificate_chain: str | None = None

    def without_crls(self) -> Collateral:
        return replace(self, root_ca_crl=None, pck_crl=None)

    # ---- dcap-qvl QuoteCollateralV3 JSON ----
    @classmethod
    def from_qvl_json(cls, text: str | bytes) -> Collateral:
        obj = loads_strict(text.decode("utf-8", "replace") if isinstance(text, bytes) else text, "collateral")
        if not isinstance(obj, dict):
            raise FormatError("collateral JSON is not an object", field="collateral")

        def s(key: str, required: bool = True) -> str | None:
            v = obj.get(key)
            if v is None:
                if required:
                    raise CollateralMissing(f"collateral JSON lacks {key!r}")
                return None
            if not isinstance(v, str):
                raise FormatError(f"{key!r} must be a string", field=key)
            return v

        def hexbytes(key: str) -> bytes | None:
            v = obj.get(key)
            if v in (None, ""):
                return None
            if isinstance(v, list):  # serde Vec<u8> form
                try:
                    return bytes(v)
                except (TypeError, ValueError):
                    raise FormatError(f"{key!r} is not a byte list", field=key) from None
            return crl_to_der(s(key), key)

        return cls(
            pck_crl_issuer_chain=s("pck_crl_issuer_chain") or "",
            root_ca_crl=hexbytes("root_ca_crl"),
            pck_crl=hexbytes("pck_crl"),
            tcb_info_issuer_chain=s("tcb_info_issuer_chain") or "",
            tcb_info=s("tcb_info") or "",
            tcb_info_signature=parse_signature_hex(s("tcb_info_signature")),
            qe_identity_issuer_chain=s("qe_identity_issuer_chain") or "",
            qe_identity=s("qe_identity") or "",
            qe_identity_signature=parse_signature_hex(s("qe_identity_signature")),
            pck_certificate_chain=s("pck_certificate_chain", required=False),
        )

    def to_qvl_json(self) -> str:
        obj: dict[str, Any] = {
            "pck_crl_issuer_chain": self.pck_crl_issuer_chain,
            "root_ca_crl": (self.root_ca_crl or b"").hex(),
            "pck_crl": (self.pck_crl or b"").hex(),
            "tcb_info_issuer_chain": self.tcb_info_issuer_chain,
            "tcb_info": self.tcb_info,
            "tcb_info_signature": self.tcb_info_signature.hex(),
            "qe_identity_issuer_chain": self.qe_identity_issuer_chain,
            "qe_identity": self.qe_identity,
            "qe_identity_signature": self.qe_identity_signature.hex(),
        }
        if self.pck_certificate_chain:
            obj["pck_certificate_chain"] = self.pck_certificate_chain
        return json.dumps(obj, indent=1)

    # ---- PCS-style parts (full responses with "signature") ----
    @classmethod
    def from_pcs_parts(
        cls,
        *,
        tcb_info_response: str | bytes,
        qe_identity_response: str | bytes,
        tcb_info_issuer_chain: str,
        qe_identity_issuer_chain: str | None = None,
        pck_crl_issuer_chain: str = "",
        root_ca_crl: bytes | str | None = None,
        pck_crl: bytes | str | None = None,
        pck_certificate_chain: str | None = None,
    ) -> Collateral:
        tcb_body, tcb_sig = split_signed(tcb_info_response, "tcbInfo")
        qe_body, qe_sig = split_signed(qe_identity_response, "enclaveIdentity")
        return cls(
            pck_crl_issuer_chain=pck_crl_issuer_chain,
            root_ca_crl=crl_to_der(root_ca_crl, "root_ca_crl"),
            pck_crl=crl_to_der(pck_crl, "pck_crl"),
            tcb_info_issuer_chain=tcb_info_issuer_chain,
            tcb_info=tcb_body,
            tcb_info_signature=tcb_sig,
            qe_identity_issuer_chain=qe_identity_issuer_chain or tcb_info_issuer_chain,
            qe_identity=qe_body,
            qe_identity_signature=qe_sig,
            pck_certificate_chain=pck_certificate_chain,
        )

    def write_directory(self, directory: str | os.PathLike[str]) -> None:
        """Write PCS-style files that :func:`load_collateral` reads back."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "tcb_info.json").write_text(join_signed("tcbInfo", self.tcb_info, self.tcb_info_signature))
        (d / "qe_identity.json").write_text(join_signed("enclaveIdentity", self.qe_identity,
                                                        self.qe_identity_signature))
        (d / "tcb_info_issuer_chain.pem").write_text(self.tcb_info_issuer_chain)
        (d / "qe_identity_issuer_chain.pem").write_text(self.qe_identity_issuer_chain)
        (d / "pck_crl_issuer_chain.pem").write_text(self.pck_crl_issuer_chain)
        if self.root_ca_crl:
            (d / "root_ca_crl.der").write_bytes(self.root_ca_crl)
        if self.pck_crl:
            (d / "pck_crl.der").write_bytes(self.pck_crl)
        if self.pck_certificate_chain:
            (d / "pck_cert_chain.pem").write_text(self.pck_certificate_chain)
        (d / "collateral.json").write_text(self.to_qvl_json())


# File names accepted in a collateral directory: ours first, then Intel QVL sample names.
_DIR_NAMES = {
    "tcb_info": ("tcb_info.json", "tcbInfo.json"),
    "qe_identity": ("qe_identity.json", "qeIdentity.json"),
    "tcb_info_issuer_chain": ("tcb_info_issuer_chain.pem", "tcbSignChain.pem"),
    "qe_identity_issuer_chain": ("qe_identity_issuer_chain.pem",),
    "pck_crl_issuer_chain": ("pck_crl_issuer_chain.pem", "pckSignChain.pem"),
    "root_ca_crl": ("root_ca_crl.der", "rootCaCrl.der", "root_ca_crl.pem"),
    "pck_crl": ("pck_crl.der", "intermediateCaCrl.der", "pck_crl.pem"),
    "pck_certificate_chain": ("pck_cert_chain.pem", "pckCertChain.pem", "pckCertChain.assembled.pem", "pckCert.pem"),
}


def _read_limited(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_COLLATERAL_FILE:
            raise FormatError(f"{path} is larger than {MAX_COLLATERAL_FILE} bytes", field=str(path))
        return path.read_bytes()
    except OSError as e:
        raise CollateralMissing(f"cannot read {path}: {e.strerror}") from None


def load_collateral(path: str | os.PathLike[str]) -> Collateral:
    """Load collateral from a QuoteCollateralV3 JSON file or a directory of PCS-style files."""
    p = Path(path)
    if not p.exists():
        raise CollateralMissing(f"collateral {p} does not exist")
    if p.is_file():
        return Collateral.from_qvl_json(_read_limited(p))
    found: dict[str, bytes] = {}
    for key, names in _DIR_NAMES.items():
        for name in names:
            if (p / name).is_file():
                found[key] = _read_limited(p / name)
                break
    if "tcb_info" not in found or "qe_identity" not in found:
        if (p / "collateral.json").is_file():
            return Collateral.from_qvl_json(_read_limited(p / "collateral.json"))
        raise CollateralMissing(f"{p} has no tcb_info.json and qe_identity.json")
    if "tcb_info_issuer_chain" not in found:
        raise CollateralMissing(f"{p} has no tcb_info_issuer_chain.pem")

    def text(key: str) -> str | None:
        return found[key].decode("ascii", "replace") if key in found else None

    return Collateral.from_pcs_parts(
        tcb_info_response=found["tcb_info"],
        qe_identity_response=found["qe_identity"],
        tcb_info_issuer_chain=text("tcb_info_issuer_chain") or "",
        qe_identity_issuer_chain=text("qe_identity_issuer_chain"),
        pck_crl_issuer_chain=text("pck_crl_issuer_chain") or "",
        root_ca_crl=found.get("root_ca_crl"),
        pck_crl=found.get("pck_crl"),
        pck_certificate_chain=text("pck_certificate_chain"),
    )
