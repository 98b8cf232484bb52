"""The ``sev_snp`` verifier plugin (rats-tls priority 42): finds the certificates for a report, then
verifies it (:func:`eaa.verify.snp.verify_snp_report`).

A simulated platform it is told to trust arrives as an object (``simulation``, made by ``eaa.sim``): its
ARK joins AMD's and its certificates serve its own chip, and verification never imports the simulator.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509

from ..checks import Check
from ..collateral.kds import KdsClient, check_product
from ..errors import CollateralMissing, ConfigError, EaaError, FormatError, UntrustedRoot
from ..evidence import SEV_SNP
from ..formats.snp_certs import SnpCertTable, SnpEndorsements
from ..formats.snp_report import SnpReport, TcbVersion, normalize_product
from ..formats.snp_vek import load_vek_certificate, vek_extensions
from ..pki.amd import AnchorInput, anchor_certificate, common_name, find_issuer
from .result import VerificationResult
from .snp import DEFAULT_V2_PRODUCT, TEE, signer_of, verify_snp_report
from .snp_collateral import SnpCollateral, SnpCollateralSource, default_kds_url
from .verifier import SimulationTrust, UntrustedSimulationHint

if TYPE_CHECKING:
    from ..collateral.bundle import Collateral


class SevSnpVerifier:
    """rats-tls ``sev_snp`` (priority 42): SEV-SNP reports, certificates from a source or AMD's KDS.

    Options: ``amd_anchors`` (AMD ARK certificates to trust instead of the pinned ones; ``trust_anchors``
    are used only for the ARK-named certificates among them, as they usually hold Intel roots),
    ``collateral_source`` (see :data:`SnpCollateralSource`; sources meant for DCAP are ignored), ``kds``
    (a :class:`KdsClient`, a KDS/eaa-pccs base URL, or False for no network; default: the configured PCCS,
    else AMD's KDS, see :func:`default_kds_url`), ``product`` (Milan/Genoa/Turin; a v2 report that does
    not say is taken as go-sev-guest's default, Milan), ``check_crl`` (default True: AMD's CRL must be
    found and checked; False records the opt-out in the result), ``simulation`` (a simulated platform to
    trust too: its ARK and its chip's certificates), ``untrusted_simulation`` (one that is not, to refuse
    its reports saying so), ``strict`` (expired or not yet valid certificates fail).
    """

    name = "sev_snp"
    evidence_types: tuple[str, ...] = (SEV_SNP,)

    def __init__(self, *, amd_anchors: Sequence[AnchorInput] | None = None,
                 trust_anchors: Sequence[AnchorInput] | None = None, collateral_source: SnpCollateralSource = None,
                 kds: KdsClient | str | bool | None = None, product: str | None = None, strict: bool = False,
                 check_crl: bool = True, simulation: SimulationTrust | None = None,
                 untrusted_simulation: UntrustedSimulationHint | None = None) -> None:
        if amd_anchors is not None:
            self.anchors: tuple[AnchorInput, ...] | None = tuple(amd_anchors)
        else:
            arks = tuple(a for a in (trust_anchors or ()) if common_name(anchor_certificate(a)).startswith("ARK-"))
            self.anchors = arks or None
        self.collateral_source = collateral_source
        try:
            self.product = normalize_product(product) if product is not None else None
        except FormatError as e:
            raise ConfigError(f"sev_snp: {e}") from None
        self.strict = strict
        self.check_crl = check_crl
        if kds is not None and not isinstance(kds, (KdsClient, str, bool)):
            raise ConfigError(f"kds must be a KdsClient, a URL or a boolean, not {type(kds).__name__}")
        self._kds_option = kds
        self._kds: KdsClient | None = kds if isinstance(kds, KdsClient) else None
        self._kds_lock = threading.Lock()
        self._sim = simulation.snp() if simulation is not None else None
        self._untrusted_sim = untrusted_simulation if simulation is None else None

    # ---- trust ----
    def _anchors(self) -> tuple[Sequence[AnchorInput] | None, bool]:
        """(anchors, also_pinned) for verification: the simulated ARK joins AMD's, never replaces them."""
        if self._sim is None:
            return self.anchors, False
        return (*(self.anchors or ()), self._sim.anchor()), self.anchors is None

    # ---- collateral ----
    def _kds_client(self) -> KdsClient | None:
        if isinstance(self.collateral_source, KdsClient):
            return self.collateral_source
        if self._kds_option is False:
            return None
        with self._kds_lock:  # one client (and its cache) per verifier, however many threads verify
            if self._kds is None:
                if isinstance(self._kds_option, str):
                    url, verify = self._kds_option, True
                else:
                    url, verify = default_kds_url()
                arks = [anchor_certificate(a) for a in self.anchors] if self.anchors is not None else None
                self._kds = KdsClient(url, trusted_arks=arks, verify=verify)
            return self._kds

    def _from_source(self, source: Any, report: bytes) -> SnpCollateral | None:
        if source is None or isinstance(source, KdsClient):
            return None
        if isinstance(source, SnpCollateral):
            return source
        if isinstance(source, SnpEndorsements):
            return SnpCollateral.from_endorsements(source)
        if isinstance(source, SnpCertTable):
            return SnpCollateral.from_cert_table(source)
        if isinstance(source, (str, os.PathLike)):
            return SnpCollateral.from_path(source)
        if callable(source):
            try:
                result = source(TEE, report)
            except FormatError:  # a source written for quotes, handed an SNP report: not ours to use
                return None
            return None if callable(result) else self._from_source(result, report)
        return None  # DCAP collateral and other kinds are not SNP certificates

    def _has_chain(self, vek: x509.Certificate, pool: Sequence[x509.Certificate]) -> bool:
        """Whether ``pool`` (with the anchors) holds an intermediate and ARK for ``vek``, by names."""
        ask = find_issuer(vek, pool)
        if ask is None:
            return False
        anchors = [anchor_certificate(a) for a in self.anchors] if self.anchors is not None else []
        return find_issuer(ask, pool) is not None or any(a.subject == ask.issuer for a in anchors)

    def _complete(self, report: SnpReport, have: SnpCollateral, product: str | None) -> bool:
        """Whether ``have`` holds a VEK for ``report``, its chain and (when revocation is checked) a CRL."""
        if not have.veks or (self.check_crl and not have.crls):
            return False
        vek = have.select_vek(report, product)
        return vek is not None and self._has_chain(vek, have.chain)

    def _simulated(self, report: SnpReport) -> SnpCollateral | None:
        """The trusted simulated platform's certificates, when this report is its chip's.

        A report of the simulated chip is refused at once when the simulation is not trusted, rather than
        asking AMD's KDS for a chip that does not exist.
        """
        if self._sim is None:
            hint = self._untrusted_sim
            if hint is not None and hint.snp_chip_id() == report.chip_id:
                raise UntrustedRoot("the report comes from the simulated SEV-SNP platform, whose ARK is not trusted "
                                    "(use --trust-sim / EAA_TRUST_SIMULATION=1 to accept simulated evidence)",
                                    check=Check.SNP_ARK_TRUSTED)
            return None
        if report.chip_id != self._sim.chip_id:
            return None
        return self._sim.collateral()  # type: ignore[no-any-return]

    def collateral_for(self, report: SnpReport, collateral: Any = None) -> SnpCollateral:
        """Certificates and CRL for ``report``: those that came with it (``collateral``), the configured
        source, the trusted simulated platform, then (VCEK, chains and CRLs) the KDS or the PCCS serving AMD's
        paths. Each source is asked only while the ones before it left something missing."""
        have = SnpCollateral(source="none")
        product = self.product or report.product
        sources: tuple[Callable[[], SnpCollateral | None], ...] = (
            lambda: self._from_source(collateral, report.raw),
            lambda: self._from_source(self.collateral_source, report.raw),
            lambda: self._simulated(report))
        for ask in sources:
            if self._complete(report, have, product):
                break
            found = ask()
            if found is not None:
                have = found if have.source == "none" else have.merged(found)
        signer = signer_of(report).lower()
        vek = have.select_vek(report, product)
        if product is None and vek is not None:
            try:  # a v2 report does not name its product; the VEK's productName does (verified later)
                product = vek_extensions(vek).product
            except EaaError:
                pass
        if product is None and not report.cpuid_fam_id:
            product = DEFAULT_V2_PRODUCT
        need_crl = self.check_crl and not have.crls
        if vek is not None and self._has_chain(vek, have.chain) and not need_crl:
            return SnpCollateral((vek,), have.chain, have.crls, have.source)
        kds = self._kds_client()
        if vek is not None and (kds is None or product is None):  # verification will say what is missing
            return SnpCollateral((vek,), have.chain, have.crls, have.source)
        if kds is None or product is None:
            why = "no KDS is configured" if kds is None else "name the product"
            raise CollateralMissing(f"no {signer.upper()} certificate chain for this SEV-SNP report: none came with "
                                    f"it ({have.source}) and it cannot be fetched: {why}")
        fetched = []
        chain: tuple[x509.Certificate, ...] = ()
        if vek is None:
            if signer == "vlek":
                raise CollateralMissing("no VLEK certificate for this SEV-SNP report: VLEKs come only from the "
                                        "host's certificate table, not from AMD's KDS")
            tcb = TcbVersion.decode(report.reported_tcb, check_product(product))
            vek = load_vek_certificate(kds.vcek(product, report.chip_id, tcb))
            fetched.append("VCEK")
        if not self._has_chain(vek, have.chain):
            kds_chain = kds.cert_chain(product, signer)
            chain = (kds_chain.ask, kds_chain.ark)
            fetched.append("cert_chain")
        crls = have.crls
        if need_crl:
            crls = (kds.crl(product, signer),)
            fetched.append("crl")
        source = f"AMD KDS {kds.base_url} ({', '.join(fetched)})"
        return SnpCollateral((vek,), chain + have.chain, crls,
                             source if have.source == "none" else f"{have.source} + {source}")

    # ---- the verifier interface ----
    def verify_evidence(self, evidence: bytes, *, evidence_type: str = SEV_SNP, report_data_hash: bytes | None = None,
                        collateral: Collateral | SnpCollateral | SnpCertTable | SnpEndorsements | None = None,
                        at: datetime | int | float | None = None) -> VerificationResult:
        from .verifier import check_report_data

        if at is None:
            raise ConfigError("the verification time is required")
        report = SnpReport.parse(evidence)
        check_report_data(report.report_data, report_data_hash)
        c = self.collateral_for(report, collateral)
        anchors, also_pinned = self._anchors()
        return verify_snp_report(report, vek=c.veks[0], chain=c.chain, at=at, trust_anchors=anchors,
                                 product=self.product, strict=self.strict, crl=c.crls if self.check_crl else None,
                                 collateral_source=c.source, require_crl=self.check_crl, also_pinned=also_pinned,
                                 revocation=None if self.check_crl else "not checked: disabled (check_crl=False, "
                                                                        "--no-crl)")
