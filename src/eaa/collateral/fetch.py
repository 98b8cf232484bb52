"""Everything a quote needs to be verified, fetched from the configured PCCS.

Verifiers call :func:`fetch_collateral_for_quote` whenever the caller supplied no collateral: the
quote itself says what to ask for (its TEE, and through the PCK certificate its FMSPC and issuing
CA; for certification data types 1-3 the QE ID, CPUSVN, PCESVN and PCE-ID that select the PCK
certificate), so nothing but the quote and the QCNL configuration is needed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from cryptography import x509

from ..errors import ConfigError, UnsupportedCertificationData
from ..formats.quote import CERT_PCK_CHAIN, Quote, parse_quote
from ..formats.x509_errors import PARSE_ERRORS
from ..pki.trust import TrustAnchor
from .bundle import Collateral
from .errors import CorruptCollateral
from .pcs import PcsClient
from .qcnl import load_qcnl
from .validate import pck_certificate_info

_default_lock = threading.Lock()
_default_clients: dict[tuple[object, ...], PcsClient] = {}

# Certification data types 1-3 carry the PPID: cleartext, RSA-2048- or RSA-3072-encrypted.
_ENCRYPTED_PPID_TYPES = (2, 3)


def default_client(anchors: Sequence[TrustAnchor] | None = None) -> PcsClient:
    """One shared client per configuration and anchor set, so its memory cache serves the whole process."""
    config = load_qcnl()
    if config is None:
        raise ConfigError("no PCCS configured: set EAA_PCCS_URL or pccs_url in /etc/sgx_default_qcnl.conf")
    key = (config, tuple(a.fingerprint for a in anchors) if anchors else None)
    with _default_lock:
        client = _default_clients.get(key)
        if client is None:
            client = _default_clients[key] = PcsClient.from_config(config, anchors=anchors)
        return client


def fetch_collateral_for_quote(quote_bytes: bytes | Quote, client: PcsClient | None = None, *,
                               anchors: Sequence[TrustAnchor] | None = None) -> Collateral:
    """Fetch (or take from the caches) the TCB info, QE identity, CRLs and, if needed, the PCK certificate."""
    quote = quote_bytes if isinstance(quote_bytes, Quote) else parse_quote(quote_bytes)
    if client is None:
        client = default_client(anchors)
    cd = quote.certification_data
    pck_chain: str | None = None
    if cd.cert_type == CERT_PCK_CHAIN:
        pems = cd.pem_chain
        if not pems:
            raise CorruptCollateral("the quote's certification data holds no PEM certificate")
        try:
            leaf = x509.load_pem_x509_certificate(pems[0])
        except PARSE_ERRORS:
            raise CorruptCollateral("the quote's PCK certificate is not valid PEM") from None
        info = pck_certificate_info(leaf)
        fmspc, ca = info.fmspc.hex(), info.ca_type
    else:
        ppid = cd.ppid_info
        if ppid is None:
            raise UnsupportedCertificationData(
                f"certification data type {cd.cert_type} names no PCK certificate to fetch")
        pck = client.pck_certificate(
            qeid=quote.header.user_data[:16].hex(),
            cpusvn=ppid.cpu_svn.hex(),
            pcesvn=ppid.pce_svn.to_bytes(2, "little").hex(),
            pceid=(ppid.pce_id or b"\x00\x00").hex(),
            encrypted_ppid=ppid.ppid.hex() if cd.cert_type in _ENCRYPTED_PPID_TYPES else None,
        )
        fmspc, ca, pck_chain = pck.fmspc, pck.ca_type, pck.chain_pem
    tcb = client.tcb_info(quote.tee, fmspc)
    qe = client.qe_identity(quote.tee)
    pck_crl = client.pck_crl(ca)
    root_crl = client.root_ca_crl()
    return Collateral.from_pcs_parts(
        tcb_info_response=tcb.text,
        qe_identity_response=qe.text,
        tcb_info_issuer_chain=tcb.issuer_chain,
        qe_identity_issuer_chain=qe.issuer_chain,
        pck_crl_issuer_chain=pck_crl.issuer_chain,
        root_ca_crl=root_crl.der,
        pck_crl=pck_crl.der,
        pck_certificate_chain=pck_chain,
    )
