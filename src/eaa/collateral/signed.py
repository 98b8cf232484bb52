"""Signed TCB info and enclave identities, checked one way wherever they arrive.

The verifier (on every cold verification) and collateral validation (before eaa-pccs caches anything)
both take a role-checked signer chain (:mod:`eaa.pki.roles`) and the exact signed JSON bytes: the
signature is verified over those bytes first, and only then is the body parsed, by the fast reader
that trusts nothing but the signature's authenticity (every value is still checked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec

from ..checks import Check
from ..errors import CertificateChainError
from ..formats.enclave_identity import EnclaveIdentity
from ..formats.tcb_info import TcbInfo
from ..pki.chain import ChainMemo, describe, verify_raw_signature
from ..pki.roles import RoleChain

if TYPE_CHECKING:
    from cryptography import x509


def signer_key(cert: x509.Certificate, memo: ChainMemo, check: Check) -> ec.EllipticCurvePublicKey:
    """The EC key of a certificate that signs collateral or a quote (``check`` names who it should be)."""
    key = memo.public_key(cert)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CertificateChainError(f"{describe(cert)} does not hold an EC key", check=check)
    return key


def checked_tcb_info(body: str | bytes, signature: bytes, chain: RoleChain, memo: ChainMemo) -> TcbInfo:
    """TCB info whose signature by ``chain``'s signer (the TCB Signing certificate) verifies."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    verify_raw_signature(signer_key(chain.signer, memo, Check.TCB_INFO_SIGNER), signature, raw, "TCB info",
                         check=Check.TCB_INFO_SIGNATURE)
    # The text itself, not ``raw``: a DecodedText brings the value its split decoded from these characters.
    return TcbInfo.from_body(body if isinstance(body, str) else raw, signature, authenticated=True)


def checked_identity(body: str | bytes, signature: bytes, chain: RoleChain, memo: ChainMemo) -> EnclaveIdentity:
    """A QE, TD_QE or QvE identity whose signature by ``chain``'s signer verifies."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    verify_raw_signature(signer_key(chain.signer, memo, Check.QE_IDENTITY_SIGNER), signature, raw,
                         "QE identity", check=Check.QE_IDENTITY_SIGNATURE)
    return EnclaveIdentity.from_body(body if isinstance(body, str) else raw, signature, authenticated=True)
