"""The names of each role in an Intel-shaped PCK PKI, derived from its root's name.

Intel's QVL accepts collateral only from certificates with the right *names* in the right places: the
TCB info and QE identity from "Intel SGX TCB Signing" directly under the root, the PCK leaf "Intel SGX
PCK Certificate" under "Intel SGX PCK Processor CA" or "... Platform CA". A chain checked by keys alone
lets any certificate under the root sign anything: a key stolen from one out-of-date platform's PCK
could vouch for every platform's TCB.

Every role's name is the root's name with its common name changed, keeping every other attribute and
every string type, so names are compared as exact DER. Intel's root "CN=Intel SGX Root CA, O=Intel
Corporation, L=Santa Clara, ST=CA, C=US" gives Intel's names; the simulated platform's root "EAA
SIMULATION SGX Root CA" gives its SIMULATION names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from cryptography import x509
from cryptography.x509.oid import NameOID

ROOT_SUFFIX = "Root CA"
TCB_SIGNING = "TCB Signing"
PCK_LEAF = "PCK Certificate"
PCK_CA_KINDS = {"PCK Processor CA": "processor", "PCK Platform CA": "platform"}


# A NamedTuple, not a dataclass: an internal record, and defining a frozen dataclass costs a one-shot
# command's start several times more.
class PkiNames(NamedTuple):
    """DER subjects a chain under one root must have, role by role."""

    root: bytes
    tcb_signing: bytes
    pck_leaf: bytes
    pck_cas: Mapping[bytes, str]  # PCK CA subject -> "processor" | "platform"


def pki_names(root: x509.Name) -> PkiNames | None:
    """The role names under ``root``, or None when the root's name is not ``<prefix>Root CA``."""
    rdns = list(root.rdns)
    spots = [(i, a) for i, rdn in enumerate(rdns) for a in rdn if a.oid == NameOID.COMMON_NAME]
    if len(spots) != 1 or len(rdns[spots[0][0]]) != 1:
        return None
    index, cn = spots[0]
    value = cn.value if isinstance(cn.value, str) else ""
    if not value.endswith(ROOT_SUFFIX):
        return None
    prefix = value[:-len(ROOT_SUFFIX)]

    def named(role: str) -> bytes:
        changed = list(rdns)
        changed[index] = x509.RelativeDistinguishedName(
            [x509.NameAttribute(NameOID.COMMON_NAME, prefix + role, _type=cn._type)])
        return x509.Name(changed).public_bytes()

    return PkiNames(root.public_bytes(), named(TCB_SIGNING), named(PCK_LEAF),
                    MappingProxyType({named(role): kind for role, kind in PCK_CA_KINDS.items()}))
