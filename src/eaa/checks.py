"""Stable identifiers of the individual verification and appraisal checks.

An error's ``code`` says what kind of failure it is; its ``check`` says which of these checks failed.
They are part of the interface: ``--json`` output, shelter's report and the daemons' error replies
carry them, and tests assert on them rather than on message text. Never rename one; add new ones.
"""

from __future__ import annotations

from enum import StrEnum


class Check(StrEnum):
    # Quote.
    QE_VENDOR_ID = "QE_VENDOR_ID"  # the quote's QE vendor is Intel's
    # Certificate chains, one set per role (see eaa.pki.roles).
    PCK_CHAIN = "PCK_CHAIN"  # PCK chain: signatures up to a trusted root, CA flags
    PCK_CHAIN_SHAPE = "PCK_CHAIN_SHAPE"  # exactly [PCK leaf, PCK CA, root]
    PCK_LEAF_SUBJECT = "PCK_LEAF_SUBJECT"  # the leaf is the PKI's "SGX PCK Certificate", not a CA
    PCK_CA_SUBJECT = "PCK_CA_SUBJECT"  # its issuer is the PKI's PCK Processor or Platform CA, under the root
    PCK_CA_CONSTRAINTS = "PCK_CA_CONSTRAINTS"  # that CA is a CA with path length 0, as issued
    PCK_ISSUER_NAME = "PCK_ISSUER_NAME"  # each certificate's issuer name is its issuer's subject
    TCB_INFO_CHAIN = "TCB_INFO_CHAIN"
    TCB_INFO_CHAIN_SHAPE = "TCB_INFO_CHAIN_SHAPE"  # exactly [TCB Signing, root]
    TCB_INFO_SIGNER = "TCB_INFO_SIGNER"  # signed by the PKI's TCB Signing certificate, not a CA
    QE_IDENTITY_CHAIN = "QE_IDENTITY_CHAIN"
    QE_IDENTITY_CHAIN_SHAPE = "QE_IDENTITY_CHAIN_SHAPE"
    QE_IDENTITY_SIGNER = "QE_IDENTITY_SIGNER"
    PCK_CRL_CHAIN = "PCK_CRL_CHAIN"
    PCK_CRL_CHAIN_SHAPE = "PCK_CRL_CHAIN_SHAPE"  # exactly [PCK CA, root]
    PCK_CRL_ISSUER = "PCK_CRL_ISSUER"  # issued by the CA that issued the PCK leaf
    PCK_CRL_SIGNATURE = "PCK_CRL_SIGNATURE"
    ROOT_CA_CRL_ISSUER = "ROOT_CA_CRL_ISSUER"  # issued by the trusted root
    ROOT_CA_CRL_SIGNATURE = "ROOT_CA_CRL_SIGNATURE"
    ROOT_NAMES = "ROOT_NAMES"  # the trusted root's name says which PKI (Intel's, a simulation's) it heads
    SAME_ROOT = "SAME_ROOT"  # PCK chain and every collateral chain lead to the same root
    CRL_MISSING = "CRL_MISSING"
    ROOT_CA_REVOKED = "ROOT_CA_REVOKED"
    CA_REVOKED = "CA_REVOKED"  # an intermediate or signing certificate is on the root CA CRL
    # Signed collateral.
    TCB_INFO_SIGNATURE = "TCB_INFO_SIGNATURE"
    QE_IDENTITY_SIGNATURE = "QE_IDENTITY_SIGNATURE"
    COLLATERAL_STATUS = "COLLATERAL_STATUS"  # only statuses Intel's QVL knows
    # QE report and quote.
    QE_REPORT_SIGNATURE = "QE_REPORT_SIGNATURE"
    QE_REPORT_DATA = "QE_REPORT_DATA"
    QE_IDENTITY_ID = "QE_IDENTITY_ID"
    QE_MRSIGNER = "QE_MRSIGNER"
    QE_ISVPRODID = "QE_ISVPRODID"
    QE_MISCSELECT = "QE_MISCSELECT"
    QE_ATTRIBUTES = "QE_ATTRIBUTES"
    QE_TCB_LEVEL = "QE_TCB_LEVEL"
    ATTESTATION_KEY = "ATTESTATION_KEY"
    QUOTE_SIGNATURE = "QUOTE_SIGNATURE"
    # Platform TCB.
    FMSPC = "FMSPC"
    PCE_ID = "PCE_ID"
    TCB_INFO_TEE = "TCB_INFO_TEE"
    TCB_LEVEL = "TCB_LEVEL"
    TDX_MODULE = "TDX_MODULE"
    TDX_MODULE_TCB_LEVEL = "TDX_MODULE_TCB_LEVEL"
    COLLATERAL_EXPIRED = "COLLATERAL_EXPIRED"
    COLLATERAL_NOT_YET_VALID = "COLLATERAL_NOT_YET_VALID"
    # Appraisal policy (eaa.policy).
    POLICY_STATUS = "POLICY_STATUS"
    POLICY_DEBUG = "POLICY_DEBUG"
    POLICY_EXPIRED_COLLATERAL = "POLICY_EXPIRED_COLLATERAL"
    POLICY_REFERENCE = "POLICY_REFERENCE"
    TD_ATTRIBUTES_RESERVED = "TD_ATTRIBUTES_RESERVED"
    SEPT_VE_DISABLE = "SEPT_VE_DISABLE"
    XFAM_FIXED_BITS = "XFAM_FIXED_BITS"
    MR_SERVICETD = "MR_SERVICETD"
    SGX_PROVISION_KEY = "SGX_PROVISION_KEY"
    SGX_KSS = "SGX_KSS"
    SGX_MODE64 = "SGX_MODE64"
    # SEV-SNP certificates (eaa.verify.snp); those that came with the evidence are checked like any others.
    SNP_CERT_TABLE = "SNP_CERT_TABLE"  # the certificate table (host's, or carried with the evidence) parses
    SNP_ENDORSEMENTS = "SNP_ENDORSEMENTS"  # the SNP endorsements (extension or relay) are well formed
    SNP_ARK_TRUSTED = "SNP_ARK_TRUSTED"  # the chain ends in a trusted ARK (AMD's pinned, or a given anchor)
    SNP_ASK_SIGNATURE = "SNP_ASK_SIGNATURE"  # the ASK/ASVK is signed by that ARK
    SNP_VEK_SIGNATURE = "SNP_VEK_SIGNATURE"  # the VCEK/VLEK is signed by that ASK/ASVK
