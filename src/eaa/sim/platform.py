"""The simulated TEE platform: generated once into a private state directory, then loaded.

State directory (``$EAA_SIM_DIR``, else ``$XDG_DATA_HOME/eaa/sim``, else ``~/.local/share/eaa/sim``),
mode 0700, every file 0600, written into a temporary sibling and renamed into place so a reader never
sees a half-written platform::

    platform.json                 parameters (FMSPC, PPID, SVNs, QE and TDX module identities, TCB state)
    root_ca.key  root_ca.pem      the simulated root CA ("EAA SIMULATION SGX Root CA")
    pck_ca.key   pck_ca.pem       the PCK platform CA
    pck.key      pck.pem          the PCK leaf, with the SGX extension
    tcb_signing.key tcb_signing.pem  signs TCB info and QE identities
    qe_attestation.key td_qe_attestation.key   the SGX QE's and TD QE's attestation keys
    signer.key                    the simulated enclave signer (MRSIGNER = SHA-256 of its x||y)
    root_ca_crl.der pck_crl.der   CRLs
    sgx_tcb_info.json tdx_tcb_info.json sgx_qe_identity.json tdx_qe_identity.json   signed collateral
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from ..collateral.bundle import Collateral
from ..errors import ConfigError, FormatError
from ..formats.signed_json import split_signed
from ..pki.trust import TrustAnchor
from ..records import record
from ..timeutil import as_utc, utc_now
from . import pki, quote, tcbinfo
from .measure import measure_files, tdx_measure
from .published import collateral_from_files, root_anchor
from .state import COLLATERAL_FILES as _COLLATERAL_FILES
from .state import PLATFORM_FILE, TEES, default_sim_dir, read_state
from .state import is_platform_dir as _is_platform_dir

FORMAT_VERSION = 1
FMSPC = bytes.fromhex("00EAA5000000")
KEY_NAMES = ("root_ca", "pck_ca", "pck", "tcb_signing", "qe_attestation", "td_qe_attestation", "signer")
CERT_NAMES = ("root_ca", "pck_ca", "pck", "tcb_signing")


class PlatformExists(ConfigError):
    """The state directory already holds something; regenerating needs ``force``."""


def _utc(now: datetime | None) -> datetime:
    return as_utc(now) if now is not None else utc_now()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


# ---------------------------------------------------------------------------------------------
# generation (pure: seed, time and TCB state in; file contents out)


def generate_files(*, seed: bytes, now: datetime, tcb: str = "uptodate") -> dict[str, bytes]:
    """Every file of a new platform, a function of ``(seed, now, tcb)`` only."""
    if tcb not in tcbinfo.TCB_STATES:
        raise ConfigError(f"unknown TCB state {tcb!r} (choose from {', '.join(tcbinfo.TCB_STATES)})")
    now = _utc(now)
    pid = pki.derive_bytes(seed, "platform-id", 8).hex()
    keys = {n: pki.derive_key(seed, n) for n in KEY_NAMES}
    svns = tcbinfo.platform_svns(tcb)
    params: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "platform_id": pid,
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tcb_state": tcb,
        "fmspc": FMSPC.hex(),
        "pce_id": tcbinfo.PCE_ID.hex(),
        "ppid": pki.derive_bytes(seed, "ppid", 16).hex(),
        "sgx_type": pki.SGX_TYPE_SCALABLE,
        "platform_instance_id": pki.derive_bytes(seed, "platform-instance-id", 16).hex(),
        **svns,
        "qe_id": pki.derive_bytes(seed, "qe-id", 16).hex(),
        "qe_mrenclave": pki.derive_bytes(seed, "qe-mrenclave", 32).hex(),
        "qe_mrsigner": pki.derive_bytes(seed, "qe-mrsigner", 32).hex(),
        "td_qe_mrenclave": pki.derive_bytes(seed, "td-qe-mrenclave", 32).hex(),
        "td_qe_mrsigner": pki.derive_bytes(seed, "td-qe-mrsigner", 32).hex(),
        "mr_seam": pki.derive_bytes(seed, "mr-seam", 48).hex(),
    }

    def serial(label: str) -> int:
        return pki.derive_serial(seed, label)

    root = pki.make_ca(pki.name(pki.ROOT_CN, pid), keys["root_ca"], None, keys["root_ca"], serial("root_ca"), now,
                       path_length=1)
    pck_ca = pki.make_ca(pki.name(pki.PCK_CA_CN, pid), keys["pck_ca"], root, keys["root_ca"], serial("pck_ca"), now,
                         path_length=0)
    ext = pki.sgx_extension_der(
        ppid=bytes.fromhex(params["ppid"]), tcb_components=params["tcb_components"], pce_svn=params["pce_svn"],
        cpu_svn=bytes.fromhex(params["cpu_svn"]), pce_id=tcbinfo.PCE_ID, fmspc=FMSPC, sgx_type=params["sgx_type"],
        platform_instance_id=bytes.fromhex(params["platform_instance_id"]),
        configuration={"dynamic_platform": False, "cached_keys": True, "smt_enabled": True},
    )
    pck = pki.make_leaf(pki.name(pki.PCK_CN, pid), keys["pck"], pck_ca, keys["pck_ca"], serial("pck"), now,
                        [pki.sgx_extension(ext)])
    tcb_signing = pki.make_leaf(pki.name(pki.TCB_SIGNING_CN, pid), keys["tcb_signing"], root, keys["root_ca"],
                                serial("tcb_signing"), now)
    revoked = tcbinfo.TCB_STATES[tcb][1]
    # The PCK CRL always lists another (fictitious) platform's PCK, so it is never trivially empty.
    pck_revoked = [serial("revoked-other-pck")] + ([pck.serial_number] if revoked else [])
    root_crl = pki.make_crl(root, keys["root_ca"], [], 1, now)
    pck_crl = pki.make_crl(pck_ca, keys["pck_ca"], pck_revoked, 1, now)

    files: dict[str, bytes] = {PLATFORM_FILE: (json.dumps(params, indent=1) + "\n").encode()}
    for n, key in keys.items():
        files[f"{n}.key"] = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    for n, cert in (("root_ca", root), ("pck_ca", pck_ca), ("pck", pck), ("tcb_signing", tcb_signing)):
        files[f"{n}.pem"] = _pem(cert)
    files["root_ca_crl.der"] = root_crl.public_bytes(Encoding.DER)
    files["pck_crl.der"] = pck_crl.public_bytes(Encoding.DER)
    for tee in TEES:
        tcb_name, qe_name = _COLLATERAL_FILES[tee]
        body = tcbinfo.tcb_info_body(tee, fmspc=FMSPC, now=now)
        files[tcb_name] = tcbinfo.signed_response("tcbInfo", body, keys["tcb_signing"]).encode()
        mrsigner = bytes.fromhex(params["td_qe_mrsigner" if tee == "tdx" else "qe_mrsigner"])
        body = tcbinfo.qe_identity_body(tee, mrsigner=mrsigner, now=now)
        files[qe_name] = tcbinfo.signed_response("enclaveIdentity", body, keys["tcb_signing"]).encode()
    return files


# ---------------------------------------------------------------------------------------------
# the state directory


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_state(sim_dir: Path, files: Mapping[str, bytes], *, force: bool = False) -> None:
    """Write ``files`` as the state directory ``sim_dir`` atomically (a complete platform or none)."""
    d = Path(os.path.abspath(sim_dir))
    try:
        d.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.new-", dir=d.parent))
    except OSError as e:
        raise ConfigError(f"cannot create the simulated platform in {d.parent}: {e.strerror}") from None
    try:
        os.chmod(tmp, 0o700)
        for name, data in files.items():
            _write_private(tmp / name, data)
        _fsync_dir(tmp)
        if d.is_symlink() or (d.exists() and not d.is_dir()):
            raise ConfigError(f"{d} exists and is not a directory")
        if d.exists() and any(d.iterdir()):
            if not force:
                raise PlatformExists(f"a simulated platform already exists in {d} (use --force to regenerate it)")
            if not _is_platform_dir(d):
                raise ConfigError(f"refusing to replace {d}: it is not a simulated platform directory")
            old = Path(tempfile.mkdtemp(prefix=f".{d.name}.old-", dir=d.parent))
            os.rename(d, old / "sim")
            try:
                os.rename(tmp, d)
            except OSError:
                os.rename(old / "sim", d)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, d)  # replaces a missing or empty directory
            except OSError as e:
                if d.exists() and any(d.iterdir()):  # another process won the race
                    raise PlatformExists(f"a simulated platform already exists in {d}") from None
                raise ConfigError(f"cannot create the simulated platform {d}: {e.strerror}") from None
        _fsync_dir(d.parent)
    except OSError as e:
        raise ConfigError(f"cannot write the simulated platform {d}: {e.strerror}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def init_platform(sim_dir: str | os.PathLike[str] | None = None, *, tcb: str = "uptodate", force: bool = False,
                  now: datetime | None = None, seed: bytes | None = None) -> SimPlatform:
    """Generate a new platform into ``sim_dir`` (default :func:`default_sim_dir`) and load it.

    ``now`` (default: the current time, UTC) is the creation time every validity window starts from;
    ``seed`` (default: 32 fresh random bytes) determines every key, serial number and identifier.
    """
    d = Path(sim_dir) if sim_dir is not None else default_sim_dir()
    files = generate_files(seed=os.urandom(32) if seed is None else seed, now=_utc(now), tcb=tcb)
    write_state(d, files, force=force)
    return SimPlatform.load(d)


def load_platform(sim_dir: str | os.PathLike[str] | None = None, *, create: bool = True,
                  now: datetime | None = None) -> SimPlatform:
    """Load the platform in ``sim_dir`` (default :func:`default_sim_dir`); generate it on first use if ``create``.

    ``now`` is the creation time used only when the platform has to be generated (default: the current time).
    """
    d = Path(sim_dir) if sim_dir is not None else default_sim_dir()
    if _is_platform_dir(d):
        return SimPlatform.load(d)
    if not create:
        raise ConfigError(f"no simulated platform in {d} (run 'eaa sim init')")
    try:
        return init_platform(d, now=now)
    except PlatformExists:
        if _is_platform_dir(d):  # created concurrently by someone else
            return SimPlatform.load(d)
        raise ConfigError(f"{d} exists and is not a simulated platform directory") from None


# ---------------------------------------------------------------------------------------------
# the loaded platform


def _fixed_hex(params: Mapping[str, Any], key: str, size: int) -> bytes:
    try:
        raw = bytes.fromhex(params[key])
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"simulated platform parameter {key!r} is missing or not hex", field=key) from None
    if len(raw) != size:
        raise FormatError(f"simulated platform parameter {key!r} must be {size} bytes", field=key)
    return raw


@record
class PlatformParams:
    """The simulated platform's identity and TCB as ``platform.json`` records them, sizes checked on load."""

    platform_id: str
    created: str
    tcb_state: str
    fmspc: bytes
    pce_id: bytes
    ppid: bytes
    sgx_type: int
    tcb_components: tuple[int, ...]
    pce_svn: int
    cpu_svn: bytes
    tee_tcb_svn: bytes
    qe_id: bytes
    qe_mrenclave: bytes
    qe_mrsigner: bytes
    td_qe_mrenclave: bytes
    td_qe_mrsigner: bytes
    mr_seam: bytes

    @classmethod
    def from_json(cls, text: bytes) -> PlatformParams:
        try:
            p = json.loads(text)
        except ValueError:
            raise FormatError("platform.json is not JSON", field=PLATFORM_FILE) from None
        if not isinstance(p, dict) or p.get("format") != FORMAT_VERSION:
            raise FormatError(f"platform.json is not format {FORMAT_VERSION}", field=PLATFORM_FILE)
        comps = p.get("tcb_components")
        if not (isinstance(comps, list) and len(comps) == 16 and all(isinstance(c, int) for c in comps)):
            raise FormatError("platform.json tcb_components must be 16 integers", field="tcb_components")
        if p.get("tcb_state") not in tcbinfo.TCB_STATES or not isinstance(p.get("pce_svn"), int):
            raise FormatError("platform.json has a bad tcb_state or pce_svn", field=PLATFORM_FILE)
        return cls(
            platform_id=str(p.get("platform_id", "")), created=str(p.get("created", "")), tcb_state=p["tcb_state"],
            fmspc=_fixed_hex(p, "fmspc", 6), pce_id=_fixed_hex(p, "pce_id", 2), ppid=_fixed_hex(p, "ppid", 16),
            sgx_type=int(p.get("sgx_type", 0)), tcb_components=tuple(comps), pce_svn=p["pce_svn"],
            cpu_svn=_fixed_hex(p, "cpu_svn", 16), tee_tcb_svn=_fixed_hex(p, "tee_tcb_svn", 16),
            qe_id=_fixed_hex(p, "qe_id", 16), qe_mrenclave=_fixed_hex(p, "qe_mrenclave", 32),
            qe_mrsigner=_fixed_hex(p, "qe_mrsigner", 32), td_qe_mrenclave=_fixed_hex(p, "td_qe_mrenclave", 32),
            td_qe_mrsigner=_fixed_hex(p, "td_qe_mrsigner", 32), mr_seam=_fixed_hex(p, "mr_seam", 48),
        )


def _check_u16(value: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
        raise ConfigError(f"{what} must be an integer from 0 to 65535, got {value!r}")
    return value


def _report_data(report_data: bytes) -> bytes:
    if not isinstance(report_data, (bytes, bytearray, memoryview)):
        raise ConfigError("report data must be bytes")
    report_data = bytes(report_data)
    if len(report_data) > 64:
        raise ConfigError(f"report data is {len(report_data)} bytes; at most 64 fit")
    return report_data.ljust(64, b"\x00")


def _measurement(given: bytes | None, paths: Iterable[str | os.PathLike[str]], size: int, what: str,
                 measure: Any) -> bytes:
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if given is not None:
        if paths:
            raise ConfigError(f"give either {what} or files to measure, not both")
        if len(given) != size:
            raise ConfigError(f"{what} must be {size} bytes, got {len(given)}")
        return bytes(given)
    return measure(paths)  # type: ignore[no-any-return]


class SimPlatform:
    """A loaded simulated platform: its PKI, its collateral, and quotes signed by its quoting enclaves."""

    def __init__(self, sim_dir: Path, params: PlatformParams, files: Mapping[str, bytes]) -> None:
        self.sim_dir = sim_dir
        self.params = params
        self._files = dict(files)
        try:
            self._keys = {n: load_pem_private_key(files[f"{n}.key"], None) for n in KEY_NAMES}
            self._certs = {n: x509.load_pem_x509_certificate(files[f"{n}.pem"]) for n in CERT_NAMES}
        except ValueError as e:
            raise FormatError(f"simulated platform {sim_dir} holds a damaged key or certificate: {e}") from None
        for n, k in self._keys.items():
            if not isinstance(k, ec.EllipticCurvePrivateKey):
                raise FormatError(f"simulated platform key {n} is not an EC key", field=f"{n}.key")
        self._signed = {}
        for tee in TEES:
            tcb_name, qe_name = _COLLATERAL_FILES[tee]
            self._signed[tee] = (split_signed(files[tcb_name], "tcbInfo"),
                                 split_signed(files[qe_name], "enclaveIdentity"))

    @classmethod
    def load(cls, sim_dir: str | os.PathLike[str]) -> SimPlatform:
        d = Path(sim_dir)
        names = [PLATFORM_FILE, "root_ca_crl.der", "pck_crl.der"]
        names += [f"{n}.key" for n in KEY_NAMES] + [f"{n}.pem" for n in CERT_NAMES]
        names += [f for pair in _COLLATERAL_FILES.values() for f in pair]
        files = read_state(d, names, "simulated platform")
        return cls(d, PlatformParams.from_json(files[PLATFORM_FILE]), files)

    # ---- PKI ----
    def _key(self, name: str) -> ec.EllipticCurvePrivateKey:
        return self._keys[name]  # type: ignore[return-value]

    @property
    def root_certificate(self) -> x509.Certificate:
        return self._certs["root_ca"]

    @property
    def pck_ca_certificate(self) -> x509.Certificate:
        return self._certs["pck_ca"]

    @property
    def pck_certificate(self) -> x509.Certificate:
        return self._certs["pck"]

    @property
    def tcb_signing_certificate(self) -> x509.Certificate:
        return self._certs["tcb_signing"]

    @property
    def root_pem(self) -> bytes:
        return _pem(self.root_certificate)

    @property
    def pck_chain_pem(self) -> bytes:
        """PCK leaf, PCK CA and root, as certification data type 5 carries them."""
        return _pem(self.pck_certificate) + _pem(self.pck_ca_certificate) + self.root_pem

    @property
    def root_ca_crl(self) -> bytes:
        return self._files["root_ca_crl.der"]

    @property
    def pck_crl(self) -> bytes:
        return self._files["pck_crl.der"]

    @cached_property
    def collateral_expires(self) -> datetime:
        """When the first piece of this platform's collateral (TCB info, QE identity, CRL) expires."""
        from ..formats.signed_json import parse_time

        times = []
        for (tcb_body, _), (qe_body, _) in self._signed.values():
            for body in (tcb_body, qe_body):
                times.append(parse_time(json.loads(body).get("nextUpdate"), "nextUpdate"))
        for crl_der in (self.root_ca_crl, self.pck_crl):
            next_update = x509.load_der_x509_crl(crl_der).next_update_utc
            if next_update is not None:
                times.append(next_update)
        return min(times)

    def collateral_expired(self, now: datetime | None = None) -> bool:
        return _utc(now) >= self.collateral_expires

    @property
    def tcb_state(self) -> str:
        return self.params.tcb_state

    @property
    def expected_status(self) -> str:
        """The TCB status a verifier reports for this platform's quotes."""
        return tcbinfo.EXPECTED_STATUS[self.params.tcb_state]

    def anchor(self) -> TrustAnchor:
        return root_anchor(self.root_certificate, self.sim_dir)

    @cached_property
    def mrsigner(self) -> bytes:
        """MRSIGNER of simulated enclaves: SHA-256 of the platform signer's public key x||y."""
        return hashlib.sha256(pki.raw_public_key(self._key("signer"))).digest()

    # ---- collateral ----
    def collateral(self, tee: str) -> Collateral:
        """The verification collateral for quotes of ``tee`` ("sgx" or "tdx")."""
        return collateral_from_files(self._files, tee, self.sim_dir)

    # ---- quotes ----
    def _quoting_enclave(self, tee: str) -> quote.QuotingEnclave:
        p = self.params
        tdx = tee == "tdx"
        return quote.QuotingEnclave(
            attestation_key=self._key("td_qe_attestation" if tdx else "qe_attestation"),
            pck_key=self._key("pck"),
            pck_chain_pem=self.pck_chain_pem,
            cpu_svn=p.cpu_svn,
            mr_enclave=p.td_qe_mrenclave if tdx else p.qe_mrenclave,
            mr_signer=p.td_qe_mrsigner if tdx else p.qe_mrsigner,
            isv_prod_id=tcbinfo.TD_QE_ISVPRODID if tdx else tcbinfo.QE_ISVPRODID,
            isv_svn=tcbinfo.TD_QE_ISVSVN if tdx else tcbinfo.QE_ISVSVN,
        )

    def make_sgx_quote(self, report_data: bytes, *, mrenclave: bytes | None = None,
                       measure_paths: Iterable[str | os.PathLike[str]] = (), isv_prod_id: int = 0, isv_svn: int = 0,
                       debug: bool = False) -> bytes:
        """An SGX v3 quote of a simulated enclave.

        ``report_data`` (at most 64 bytes, zero-padded); MRENCLAVE is ``mrenclave`` or the
        :func:`~eaa.sim.measure.measure_files` measurement of ``measure_paths``; MRSIGNER is
        :attr:`mrsigner`; ``debug`` sets the DEBUG attribute (flags bit 0x02).
        """
        body = quote.sgx_report_body(
            cpu_svn=self.params.cpu_svn, misc_select=0, attributes=quote.sgx_attributes(debug),
            mr_enclave=_measurement(mrenclave, measure_paths, 32, "MRENCLAVE", measure_files),
            mr_signer=self.mrsigner, isv_prod_id=_check_u16(isv_prod_id, "ISV prod ID"),
            isv_svn=_check_u16(isv_svn, "ISV SVN"), report_data=_report_data(report_data),
        )
        return quote.sgx_quote(self._quoting_enclave("sgx"), qe_id=self.params.qe_id, pce_svn=self.params.pce_svn,
                               body=body)

    def make_tdx_quote(self, report_data: bytes, *, mrtd: bytes | None = None,
                       measure_paths: Iterable[str | os.PathLike[str]] = (), rtmrs: Sequence[bytes] | None = None,
                       debug: bool = False) -> bytes:
        """A TDX v4 quote of a simulated TD.

        MRTD is ``mrtd`` or the :func:`~eaa.sim.measure.tdx_measure` measurement of ``measure_paths``;
        ``rtmrs`` gives up to four 48-byte RTMR values (missing ones are zero); ``debug`` sets TD
        attribute bit 0. The TDX module fields match the platform's TDX TCB info.
        """
        regs = list(rtmrs or ())
        if len(regs) > 4:
            raise ConfigError(f"a TD has four RTMRs, got {len(regs)} values")
        for i, r in enumerate(regs):
            if len(r) != 48:
                raise ConfigError(f"RTMR{i} must be 48 bytes, got {len(r)}")
        regs += [bytes(48)] * (4 - len(regs))
        body = quote.td_report10_body(
            tee_tcb_svn=self.params.tee_tcb_svn, mr_seam=self.params.mr_seam,
            mrsigner_seam=tcbinfo.TDX_MODULE_MRSIGNER, seam_attributes=tcbinfo.TDX_SEAM_ATTRIBUTES,
            td_attributes=quote.td_attributes(debug), xfam=quote.TD_XFAM,
            mr_td=_measurement(mrtd, measure_paths, 48, "MRTD", tdx_measure), rtmrs=[bytes(r) for r in regs],
            report_data=_report_data(report_data),
        )
        return quote.tdx_quote(self._quoting_enclave("tdx"), qe_id=self.params.qe_id, body=body)

    def make_quote(self, tee: str, report_data: bytes, *, measure_paths: Iterable[str | os.PathLike[str]] = (),
                   debug: bool = False) -> bytes:
        if tee == "sgx":
            return self.make_sgx_quote(report_data, measure_paths=measure_paths, debug=debug)
        if tee == "tdx":
            return self.make_tdx_quote(report_data, measure_paths=measure_paths, debug=debug)
        raise ConfigError(f"unknown TEE {tee!r} (choose sgx or tdx)")
