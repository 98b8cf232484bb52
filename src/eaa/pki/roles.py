"""Which certificate may sign what: the chain shapes and names Intel's QVL requires.

Intel's QVL (``TCBSigningChain``, ``PckCertVerifier``, ``CommonVerifier``) and go-tdx-guest
(``validateCertificate``) accept:

- TCB info and QE / TD_QE identities signed by a chain of exactly [TCB Signing, root], the signer
  named "Intel SGX TCB Signing", not a CA, issued by the root;
- a PCK chain of exactly [PCK leaf, PCK Processor or Platform CA, root], the leaf named "Intel SGX PCK
  Certificate" and not a CA, its CA a CA with path length 0, issued by the root;
- a PCK CRL issuer chain of exactly [that PCK CA, root].

A chain that only verifies up to the root is not enough: every certificate under the root can sign,
so without these checks the key of one platform's PCK leaf (extractable from an out-of-date, vulnerable
platform) could sign TCB info saying every platform is up to date. Names are compared as exact DER
(:mod:`eaa.pki.names` derives them from the trusted root, so the simulated PKI is checked the
same way under its SIMULATION names).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from cryptography import x509

from ..checks import Check
from ..errors import CertificateChainError, FormatError
from ..formats.x509_errors import NAME_ERRORS
from .chain import ChainMemo, CheckedChain, check_chain_signatures, describe
from .names import PkiNames
from .trust import TrustAnchor

_TCB_SIGNING, _PCK, _PCK_CA = "TCB Signing", "PCK", "PCK CA"


# A NamedTuple, not a dataclass: an internal record, and defining a frozen dataclass costs a one-shot
# command's start several times more.
class ChainRole(NamedTuple):
    """What a chain is for: its expected shape and the check identifiers its failures carry."""

    what: str
    signer: str  # the role of the chain's first certificate
    chain: Check  # signatures, CA flags, root
    shape: Check
    name: Check  # the first certificate's name and role


TCB_INFO = ChainRole("TCB info issuer chain", _TCB_SIGNING, Check.TCB_INFO_CHAIN, Check.TCB_INFO_CHAIN_SHAPE,
                     Check.TCB_INFO_SIGNER)
QE_IDENTITY = ChainRole("QE identity issuer chain", _TCB_SIGNING, Check.QE_IDENTITY_CHAIN,
                        Check.QE_IDENTITY_CHAIN_SHAPE, Check.QE_IDENTITY_SIGNER)
PCK = ChainRole("PCK certificate chain", _PCK, Check.PCK_CHAIN, Check.PCK_CHAIN_SHAPE, Check.PCK_LEAF_SUBJECT)
PCK_CRL = ChainRole("PCK CRL issuer chain", _PCK_CA, Check.PCK_CRL_CHAIN, Check.PCK_CRL_CHAIN_SHAPE,
                    Check.PCK_CRL_ISSUER)
_LENGTH = {_TCB_SIGNING: 1, _PCK: 2, _PCK_CA: 1}  # certificates under the root


class RoleChain(NamedTuple):
    """A chain whose signatures, shape and names are checked."""

    chain: CheckedChain
    ca_kind: str | None  # "processor" | "platform" for PCK and PCK CRL issuer chains

    @property
    def signer(self) -> x509.Certificate:
        return self.chain.certs[0]

    @property
    def anchor(self) -> TrustAnchor:
        return self.chain.anchor


def check_role_chain(certs: Sequence[x509.Certificate], anchors: Sequence[TrustAnchor], role: ChainRole,
                     memo: ChainMemo | None = None) -> RoleChain:
    """Check signatures up to a trusted root, then the chain's shape and every certificate's place in it."""
    memo = memo if memo is not None else ChainMemo()
    chain = check_chain_signatures(certs, anchors, role.what, memo, check=role.chain)
    names = chain.anchor.names
    if names is None:
        raise CertificateChainError(f"{role.what}: the trusted root {chain.anchor.name!r} is not named "
                                    f"'<PKI> Root CA', so its certificates' roles are unknown", check=Check.ROOT_NAMES)
    want = _LENGTH[role.signer]
    if not chain.with_root or len(chain.certs) != want:
        shape = "PCK leaf, PCK CA, root" if role.signer == _PCK else f"{role.signer}, root"
        raise CertificateChainError(f"{role.what}: expected exactly [{shape}], got {len(certs)} certificates"
                                    f"{'' if chain.with_root else ' not ending with the root'}", check=role.shape)
    if role.signer == _TCB_SIGNING:
        signer = chain.certs[0]
        _expect_leaf(memo, signer, names.tcb_signing, names.root, role)
        return RoleChain(chain, None)
    if role.signer == _PCK:
        leaf, ca = chain.certs
        _expect_leaf(memo, leaf, names.pck_leaf, subject_der(memo, ca), role, issuer_check=Check.PCK_ISSUER_NAME)
        return RoleChain(chain, _expect_pck_ca(memo, ca, names, role, Check.PCK_CA_SUBJECT))
    return RoleChain(chain, _expect_pck_ca(memo, chain.certs[0], names, role, role.name))


def _expect_leaf(memo: ChainMemo, cert: x509.Certificate, subject: bytes, issuer: bytes, role: ChainRole, *,
                 issuer_check: Check | None = None) -> None:
    if subject_der(memo, cert) != subject:
        raise CertificateChainError(f"{role.what}: {describe(cert)} is not the {role.signer} certificate of "
                                    f"this PKI", check=role.name)
    if memo.is_ca(cert):
        raise CertificateChainError(f"{role.what}: the {role.signer} certificate must not be a CA", check=role.name)
    if issuer_der(memo, cert) != issuer:
        raise CertificateChainError(f"{role.what}: the {role.signer} certificate names another issuer",
                                    check=issuer_check or role.name)


def _expect_pck_ca(memo: ChainMemo, ca: x509.Certificate, names: PkiNames, role: ChainRole, name_check: Check) -> str:
    kind = names.pck_cas.get(subject_der(memo, ca))
    if kind is None:
        raise CertificateChainError(f"{role.what}: {describe(ca)} is neither the PCK Processor nor the PCK "
                                    f"Platform CA of this PKI", check=name_check)
    if issuer_der(memo, ca) != names.root:
        raise CertificateChainError(f"{role.what}: the PCK {kind} CA names another issuer than the root",
                                    check=Check.PCK_ISSUER_NAME if role.signer == _PCK else name_check)
    if memo.constraints(ca) != (True, 0):
        raise CertificateChainError(f"{role.what}: the PCK {kind} CA must be a CA with path length 0, as Intel "
                                    f"issues it", check=Check.PCK_CA_CONSTRAINTS)
    return kind


def subject_der(memo: ChainMemo, cert: x509.Certificate) -> bytes:
    """A certificate's subject as DER: sliced from its TBS when the memo parsed it, else re-encoded."""
    fields = memo.fields(cert)
    return fields.subject if fields is not None else _name_der(lambda: cert.subject)


def issuer_der(memo: ChainMemo, cert: x509.Certificate) -> bytes:
    fields = memo.fields(cert)
    return fields.issuer if fields is not None else _name_der(lambda: cert.issuer)


def _name_der(name: Callable[[], x509.Name]) -> bytes:
    try:
        return name().public_bytes()
    except NAME_ERRORS as e:
        raise FormatError(f"certificate has a malformed name ({e})", field="certificate") from None
