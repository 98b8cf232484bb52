"""The real attesters (sgx_ecdsa, tdx_ecdsa, sev_snp) against fake TEE interface trees.

Each interface is faked where the attester meets it: Gramine's /dev/attestation as plain files,
configfs-tsm as a directory whose instances a test subclass fills in (a plain directory cannot
generate reports), Occlum's /dev/sgx and /dev/sev-guest through an ioctl function that plays the
driver by reading and filling the ctypes buffers. Quotes come from the simulated TEE, so the
evidence also verifies end to end.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from eaa.attest import occlum, sev_guest
from eaa.attest.configfs_tsm import MAX_BLOB, PROVIDER_SEV, PROVIDER_TDX, REPORT_DIR, ConfigfsTsm, TsmUnavailable
from eaa.attest.errors import AttestationError, ConcurrentReportRequest, EvidenceMismatch, TeeInterfaceError
from eaa.attest.gramine import GramineUnavailable
from eaa.attest.null import NullAttester
from eaa.attest.occlum import GenDcapQuoteArg, OcclumDcap
from eaa.attest.registry import NoTeeFound, attesters
from eaa.attest.sev_guest import SevGuestDevice, SnpGuestRequestIoctl, SnpReportReq
from eaa.attest.sgx import SgxEcdsaAttester
from eaa.attest.snp import SevSnpAttester, SnpAttestation
from eaa.attest.tdx import TdxEcdsaAttester
from eaa.errors import ConfigError, EaaError, FormatError
from eaa.evidence import SEV_SNP, SGX_ECDSA, TDX_ECDSA, Evidence
from eaa.formats.snp_certs import ARK_GUID, ASK_GUID, VCEK_GUID, SnpEndorsements, parse_cert_table
from eaa.sim import SimPlatform, TrustedSimulation, init_platform
from eaa.tls.session import select_attester
from eaa.verify.registry import verifiers

RD = bytes(range(64))
OTHER_RD = b"\xee" * 64


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimPlatform:
    return init_platform(tmp_path_factory.mktemp("sim") / "platform")


@pytest.fixture(scope="module")
def sgx_quote(sim: SimPlatform) -> bytes:
    return sim.make_sgx_quote(RD)


@pytest.fixture(scope="module")
def tdx_quote(sim: SimPlatform) -> bytes:
    return sim.make_tdx_quote(RD)


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------------------------------------
# Gramine: /dev/attestation


def gramine_tree(root: Path, *, attestation_type: str = "dcap", quote: bytes | None = None) -> Path:
    d = root / "dev" / "attestation"
    d.mkdir(parents=True)
    (d / "attestation_type").write_text(attestation_type + "\n")
    (d / "user_report_data").write_bytes(bytes(64))
    if quote is not None:
        (d / "quote").write_bytes(quote)
    return d


def test_gramine_quote_is_returned_after_writing_the_report_data(tmp_path: Path, sgx_quote: bytes) -> None:
    d = gramine_tree(tmp_path, quote=sgx_quote)
    att = attesters.select("sgx_ecdsa", root=tmp_path)
    assert isinstance(att, SgxEcdsaAttester) and att.backend == "Gramine"
    assert (att.name, att.evidence_type) == ("sgx_ecdsa", SGX_ECDSA)
    ev = att.collect_evidence(RD)
    assert ev == Evidence(SGX_ECDSA, sgx_quote, RD, None, simulated=False)
    assert (d / "user_report_data").read_bytes() == RD


def test_gramine_short_report_data_is_zero_padded(tmp_path: Path, sim: SimPlatform) -> None:
    d = gramine_tree(tmp_path, quote=sim.make_sgx_quote(b"nonce"))
    ev = SgxEcdsaAttester(tmp_path).collect_evidence(b"nonce")
    assert ev.report_data == b"nonce" + bytes(59)
    assert (d / "user_report_data").read_bytes() == b"nonce" + bytes(59)
    with pytest.raises(ConfigError, match="at most 64"):
        SgxEcdsaAttester(tmp_path).collect_evidence(bytes(65))


def test_gramine_quote_over_other_report_data_fails_closed(tmp_path: Path, sim: SimPlatform) -> None:
    gramine_tree(tmp_path, quote=sim.make_sgx_quote(OTHER_RD))
    with pytest.raises(EvidenceMismatch, match="other report data") as e:
        SgxEcdsaAttester(tmp_path).collect_evidence(RD)
    assert e.value.code == "EVIDENCE_MISMATCH" and isinstance(e.value, AttestationError)


@pytest.mark.parametrize("content,error,match", [
    (b"not a quote at all", EvidenceMismatch, "not a DCAP quote"),
    (b"", TeeInterfaceError, "empty quote"),
])
def test_gramine_garbage_or_empty_quote_fails(tmp_path: Path, content: bytes, error: type, match: str) -> None:
    gramine_tree(tmp_path, quote=content)
    with pytest.raises(error, match=match):
        SgxEcdsaAttester(tmp_path).collect_evidence(RD)


def test_gramine_tdx_quote_is_not_sgx_evidence(tmp_path: Path, tdx_quote: bytes) -> None:
    gramine_tree(tmp_path, quote=tdx_quote)
    with pytest.raises(EvidenceMismatch, match="TDX quote; expected a SGX"):
        SgxEcdsaAttester(tmp_path).collect_evidence(RD)


def test_gramine_missing_quote_file_is_an_interface_error(tmp_path: Path) -> None:
    gramine_tree(tmp_path, quote=None)
    with pytest.raises(TeeInterfaceError, match="cannot read Gramine quote"):
        SgxEcdsaAttester(tmp_path).collect_evidence(RD)


@pytest.mark.parametrize("kind", ["none", "epid"])
def test_gramine_without_dcap_is_not_available(tmp_path: Path, sgx_quote: bytes, kind: str) -> None:
    gramine_tree(tmp_path, attestation_type=kind, quote=sgx_quote)
    with pytest.raises(GramineUnavailable, match=f"type is '{kind}'.*remote_attestation") as e:
        attesters.select("sgx_ecdsa", root=tmp_path)
    assert isinstance(e.value, ConfigError)
    # automatic selection skips it (and, on this fake tree, every other real attester), and never falls
    # back to nullattester: it says no TEE was found and which attester to name instead
    with pytest.raises(NoTeeFound, match="--attester sim_sgx_ecdsa"):
        select_attester(None, {"root": tmp_path})


def test_missing_tree_makes_every_real_attester_unavailable(tmp_path: Path) -> None:
    for name in ("sgx_ecdsa", "tdx_ecdsa", "sev_snp"):
        entry = attesters.get(name)
        assert entry.auto
        with pytest.raises(ConfigError):
            entry.make({"root": tmp_path})
    with pytest.raises(NoTeeFound, match="sgx_ecdsa: .*tdx_ecdsa: .*sev_snp: ") as e:
        select_attester(None, {"root": tmp_path, "measure_paths": [tmp_path / "app"]})
    assert e.value.exit_code == 2 and "--attester sim_sgx_ecdsa" in str(e.value)
    # nullattester is still there, but only when named
    assert isinstance(select_attester("nullattester"), NullAttester)


def test_options_are_checked_not_ignored(tmp_path: Path) -> None:
    """A misspelt option, or one the named attester does not take, is an error rather than silently dropped;
    the simulator's directory (an environment setting) only goes to the attesters that take it."""
    with pytest.raises(ConfigError, match="unknown attester option measure_path$"):
        attesters.select("sim_sgx_ecdsa", measure_path=["/x"])
    with pytest.raises(ConfigError, match="attester sgx_ecdsa does not take measure_paths"):
        attesters.select("sgx_ecdsa", root=tmp_path, measure_paths=["/x"])
    with pytest.raises(ConfigError, match="unknown attester option vmlp"):
        select_attester(None, {"root": tmp_path, "vmlp": 1})
    with pytest.raises(ConfigError, match="does not take"):
        select_attester("nullattester", {"measure_paths": ["/x"]})
    assert isinstance(select_attester("nullattester", {"sim_dir": tmp_path / "sim"}), NullAttester)


def test_rats_tls_priorities() -> None:
    prio = {e.name: (e.priority, e.auto) for e in attesters.ordered()}
    assert prio["sgx_ecdsa"] == (52, True)
    assert prio["tdx_ecdsa"] == (42, True) and prio["sev_snp"] == (42, True)
    assert prio["nullattester"] == (0, False)  # only when named


def test_gramine_concurrent_requests_each_get_their_own_quote(tmp_path: Path, sim: SimPlatform,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Gramine's files hold one value per process: the attester serialises write-then-read."""
    d = gramine_tree(tmp_path, quote=b"")
    quotes = {bytes([i]) * 64: sim.make_sgx_quote(bytes([i]) * 64) for i in range(1, 7)}
    import eaa.attest.gramine as gramine

    real_write = gramine.write_all

    def write_then_quote(path: Path, data: bytes, what: str) -> None:
        real_write(path, data, what)  # the LibOS would now produce the quote for this report data
        threading.Event().wait(0.01)  # widen the window in which an unlocked reader would interleave
        (d / "quote").write_bytes(quotes[data])

    monkeypatch.setattr(gramine, "write_all", write_then_quote)
    att = SgxEcdsaAttester(tmp_path)
    results: dict[bytes, Evidence] = {}
    threads = [threading.Thread(target=lambda rd=rd: results.__setitem__(rd, att.collect_evidence(rd)))
               for rd in quotes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {rd: ev.data for rd, ev in results.items()} == quotes


def test_gramine_evidence_verifies_end_to_end(tmp_path: Path, sim: SimPlatform, sgx_quote: bytes) -> None:
    gramine_tree(tmp_path / "enclave", quote=sgx_quote)
    ev = attesters.select("sgx_ecdsa", root=tmp_path / "enclave").collect_evidence(RD)
    verifier = verifiers.select("sgx_ecdsa", simulation=TrustedSimulation(sim.sim_dir))
    r = verifier.verify_evidence(ev.data, evidence_type=ev.type, report_data_hash=RD[:32],
                                 collateral=ev.collateral, at=_now())
    assert r.tee == "sgx" and r.simulated and r.status == "UpToDate" and r.report_data == RD


# ---------------------------------------------------------------------------------------------
# Occlum: /dev/sgx ioctls


class FakeOcclumDriver:
    """Plays Occlum's /dev/sgx: GET_DCAP_QUOTE_SIZE, then GEN_DCAP_QUOTE into the caller's buffers."""

    def __init__(self, make_quote: Callable[[bytes], bytes], *, size: int = 8192, busy: int = 0,
                 report_len: int | None = None) -> None:
        self.make_quote = make_quote
        self.size = size
        self.busy = busy  # answer EBUSY this many times first
        self.report_len = report_len
        self.calls: list[int] = []
        self.seen_report_data: list[bytes] = []

    def __call__(self, fd: int, request: int, arg: Any) -> int:
        assert isinstance(fd, int) and fd >= 0
        self.calls.append(request)
        if self.busy:
            self.busy -= 1
            raise OSError(errno.EBUSY, "busy")
        if request == occlum.SGXIOC_GET_DCAP_QUOTE_SIZE:
            assert isinstance(arg, ctypes.c_uint32)
            arg.value = self.size
            return 0
        assert request == occlum.SGXIOC_GEN_DCAP_QUOTE and isinstance(arg, GenDcapQuoteArg)
        rd = ctypes.string_at(arg.report_data, 64)
        self.seen_report_data.append(rd)
        qlen = ctypes.cast(arg.quote_len, ctypes.POINTER(ctypes.c_uint32)).contents
        quote = self.make_quote(rd)
        if qlen.value < len(quote):
            raise OSError(errno.EINVAL, "buffer too small")
        ctypes.memmove(arg.quote_buf, quote, len(quote))
        qlen.value = self.report_len if self.report_len is not None else len(quote)
        return 0


def device_tree(root: Path, name: str) -> Path:
    """A root holding an empty ``dev/<name>``: the device node the attester opens (its ioctls are faked)."""
    (root / "dev").mkdir(parents=True, exist_ok=True)
    dev = root / "dev" / name
    dev.write_bytes(b"")
    return dev


def occlum_tree(root: Path) -> Path:
    return device_tree(root, "sgx")


def test_occlum_quote_through_ioctls(tmp_path: Path, sim: SimPlatform) -> None:
    occlum_tree(tmp_path)
    driver = FakeOcclumDriver(sim.make_sgx_quote)
    att = attesters.select("sgx_ecdsa", root=tmp_path, ioctl=driver)
    assert att.backend == "Occlum"
    ev = att.collect_evidence(b"occlum")
    assert ev.type == SGX_ECDSA and ev.report_data == b"occlum" + bytes(58)
    assert driver.seen_report_data == [ev.report_data]
    assert driver.calls == [occlum.SGXIOC_GET_DCAP_QUOTE_SIZE, occlum.SGXIOC_GEN_DCAP_QUOTE]
    assert ev.data[368:432] == ev.report_data  # REPORTDATA of the SGX v3 quote


def test_occlum_retries_ebusy(tmp_path: Path, sgx_quote: bytes) -> None:
    occlum_tree(tmp_path)
    driver = FakeOcclumDriver(lambda rd: sgx_quote, busy=3)
    ev = SgxEcdsaAttester(source=OcclumDcap(tmp_path, ioctl=driver, retry_delay=0)).collect_evidence(RD)
    assert ev.data == sgx_quote and len(driver.calls) == 5


def test_occlum_gives_up_when_always_busy(tmp_path: Path, sgx_quote: bytes) -> None:
    occlum_tree(tmp_path)
    driver = FakeOcclumDriver(lambda rd: sgx_quote, busy=10_000)
    with pytest.raises(TeeInterfaceError, match="busy after"):
        OcclumDcap(tmp_path, ioctl=driver, retry_delay=0).quote(RD)


@pytest.mark.parametrize("size,report_len,match", [
    (0, None, "quote size of 0"),
    (10 << 20, None, "quote size"),
    (8192, 0, "quote length of 0"),
    (8192, 9000, "quote length of 9000"),
])
def test_occlum_bad_sizes(tmp_path: Path, sgx_quote: bytes, size: int, report_len: int | None, match: str) -> None:
    occlum_tree(tmp_path)
    driver = FakeOcclumDriver(lambda rd: sgx_quote, size=size, report_len=report_len)
    with pytest.raises(TeeInterfaceError, match=match):
        OcclumDcap(tmp_path, ioctl=driver).quote(RD)


def test_occlum_quote_over_other_report_data_fails_closed(tmp_path: Path, sim: SimPlatform) -> None:
    occlum_tree(tmp_path)
    other = sim.make_sgx_quote(OTHER_RD)
    with pytest.raises(EvidenceMismatch, match="Occlum returned a quote over other report data"):
        SgxEcdsaAttester(tmp_path, ioctl=FakeOcclumDriver(lambda rd: other)).collect_evidence(RD)


def test_occlum_driver_error_is_typed(tmp_path: Path) -> None:
    occlum_tree(tmp_path)

    def broken(fd: int, request: int, arg: Any) -> int:
        raise OSError(errno.EIO, "I/O error")

    with pytest.raises(TeeInterfaceError, match="SGXIOC_GET_DCAP_QUOTE_SIZE failed"):
        SgxEcdsaAttester(tmp_path, ioctl=broken).collect_evidence(RD)


def test_host_sgx_driver_directory_is_not_occlum(tmp_path: Path) -> None:
    (tmp_path / "dev" / "sgx").mkdir(parents=True)
    (tmp_path / "dev" / "sgx" / "enclave").write_bytes(b"")
    with pytest.raises(ConfigError, match="is a directory"):
        attesters.select("sgx_ecdsa", root=tmp_path)


def test_gramine_is_preferred_over_occlum(tmp_path: Path, sgx_quote: bytes) -> None:
    gramine_tree(tmp_path, quote=sgx_quote)
    occlum_tree(tmp_path)
    driver = FakeOcclumDriver(lambda rd: sgx_quote)
    att = SgxEcdsaAttester(tmp_path, ioctl=driver)
    assert att.backend == "Gramine"
    att.collect_evidence(RD)
    assert driver.calls == []


# ---------------------------------------------------------------------------------------------
# configfs-tsm


class FakeTsm(ConfigfsTsm):
    """configfs-tsm on a plain directory: instances are real (unique) directories the fake fills in.

    ``generation`` is computed like the kernel's write counter (one per written attribute, plus
    ``foreign_writes`` from somebody else); ``outblob`` is precomputed, or made from the inblob
    when ``outblob`` is a function; ``bump_on_outblob`` simulates a writer racing the read.
    """

    def __init__(self, root: Path, *, provider: str = PROVIDER_TDX, reported_provider: str | None = None,
                 outblob: bytes | Callable[[bytes], bytes] = b"", auxblob: bytes | None = None,
                 foreign_writes: int = 0, bump_on_outblob: bool = False, privlevel_supported: bool = True,
                 **kw: Any) -> None:
        (root / REPORT_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
        self.reported_provider = reported_provider or provider
        self.outblob = outblob
        self.auxblob = auxblob
        self.foreign_writes = foreign_writes
        self.bump_on_outblob = bump_on_outblob
        self.privlevel_supported = privlevel_supported
        self.created: list[Path] = []
        self.removed: list[Path] = []
        self.inblobs: list[bytes] = []
        self.bumped: set[Path] = set()
        self.lock = threading.Lock()
        super().__init__(root, provider=provider, **kw)

    def _new_instance(self) -> Path:
        d = super()._new_instance()
        (d / "provider").write_text(self.reported_provider + "\n")
        (d / "inblob").write_bytes(b"")
        if self.privlevel_supported:
            (d / "privlevel").write_bytes(b"")
        if isinstance(self.outblob, bytes):
            (d / "outblob").write_bytes(self.outblob)
        if self.auxblob is not None:
            (d / "auxblob").write_bytes(self.auxblob)
        with self.lock:
            self.created.append(d)
        return d

    def _read(self, path: Path, what: str, limit: int = MAX_BLOB) -> bytes:
        d = path.parent
        if path.name == "generation":
            writes = sum(1 for a in ("inblob", "privlevel") if (d / a).exists() and (d / a).read_bytes())
            return f"{writes + self.foreign_writes + (d in self.bumped)}\n".encode()
        if path.name == "outblob":
            if self.bump_on_outblob:
                self.bumped.add(d)
            if callable(self.outblob):
                return self.outblob((d / "inblob").read_bytes())
        return super()._read(path, what, limit)

    def _remove_instance(self, instance: Path) -> None:
        with self.lock:
            self.inblobs.append((instance / "inblob").read_bytes())
            self.removed.append(instance)
        shutil.rmtree(instance)


def tsm_root(tmp_path: Path) -> Path:
    return tmp_path / "td"


def test_tdx_quote_from_configfs_tsm(tmp_path: Path, tdx_quote: bytes) -> None:
    tsm = FakeTsm(tsm_root(tmp_path), outblob=tdx_quote)
    assert len(tsm.created) == 1 and tsm.removed == tsm.created  # the provider probe cleaned up
    att = TdxEcdsaAttester(tsm=tsm)
    ev = att.collect_evidence(RD)
    assert ev == Evidence(TDX_ECDSA, tdx_quote, RD)
    assert tsm.inblobs[-1] == RD
    assert tsm.removed == tsm.created and not any(p.exists() for p in tsm.created)
    assert list((tsm_root(tmp_path) / REPORT_DIR.lstrip("/")).iterdir()) == []


def test_tdx_evidence_verifies_end_to_end(tmp_path: Path, sim: SimPlatform, tdx_quote: bytes) -> None:
    ev = TdxEcdsaAttester(tsm=FakeTsm(tsm_root(tmp_path), outblob=tdx_quote)).collect_evidence(RD)
    verifier = verifiers.select("tdx_ecdsa", simulation=TrustedSimulation(sim.sim_dir))
    r = verifier.verify_evidence(ev.data, evidence_type=ev.type, report_data_hash=RD[:32], collateral=None,
                                 at=_now())
    assert r.tee == "tdx" and r.simulated and r.report_data == RD


def test_tsm_provider_mismatch(tmp_path: Path, tdx_quote: bytes) -> None:
    with pytest.raises(TsmUnavailable, match="provider is 'sev_guest', not 'tdx_guest'"):
        FakeTsm(tsm_root(tmp_path), reported_provider=PROVIDER_SEV, outblob=tdx_quote)
    # the provider changing under a constructed attester is caught per request, too
    tsm = FakeTsm(tsm_root(tmp_path), reported_provider=PROVIDER_SEV, outblob=tdx_quote, probe=False)
    with pytest.raises(EvidenceMismatch, match="provider is 'sev_guest'"):
        TdxEcdsaAttester(tsm=tsm).collect_evidence(RD)
    assert tsm.removed == tsm.created and not any(p.exists() for p in tsm.created)


def test_tsm_generation_change_while_reading(tmp_path: Path, tdx_quote: bytes) -> None:
    tsm = FakeTsm(tsm_root(tmp_path), outblob=tdx_quote, bump_on_outblob=True)
    with pytest.raises(ConcurrentReportRequest, match="moved from 1 to 2") as e:
        TdxEcdsaAttester(tsm=tsm).collect_evidence(RD)
    assert e.value.code == "TSM_GENERATION_CHANGED"
    assert tsm.removed == tsm.created and not any(p.exists() for p in tsm.created)


def test_tsm_foreign_write_before_reading(tmp_path: Path, tdx_quote: bytes) -> None:
    tsm = FakeTsm(tsm_root(tmp_path), outblob=tdx_quote, foreign_writes=1)
    with pytest.raises(ConcurrentReportRequest, match="generation is 2 after our 1 write"):
        TdxEcdsaAttester(tsm=tsm).collect_evidence(RD)
    assert tsm.removed == tsm.created


def test_tsm_report_data_mismatch(tmp_path: Path, sim: SimPlatform) -> None:
    tsm = FakeTsm(tsm_root(tmp_path), outblob=sim.make_tdx_quote(OTHER_RD))
    with pytest.raises(EvidenceMismatch, match="other report data"):
        TdxEcdsaAttester(tsm=tsm).collect_evidence(RD)
    assert tsm.removed == tsm.created


@pytest.mark.parametrize("blob,error", [(b"", TeeInterfaceError), (b"\x04\x00garbage", EvidenceMismatch)])
def test_tsm_empty_or_garbage_outblob(tmp_path: Path, blob: bytes, error: type) -> None:
    tsm = FakeTsm(tsm_root(tmp_path), outblob=blob)
    with pytest.raises(error):
        TdxEcdsaAttester(tsm=tsm).collect_evidence(RD)
    assert tsm.removed == tsm.created


def test_tdx_provider_returning_an_sgx_quote_fails(tmp_path: Path, sgx_quote: bytes) -> None:
    with pytest.raises(EvidenceMismatch, match="SGX quote; expected a TDX"):
        TdxEcdsaAttester(tsm=FakeTsm(tsm_root(tmp_path), outblob=sgx_quote)).collect_evidence(RD)


def test_tsm_concurrent_requests_use_separate_instances(tmp_path: Path, sim: SimPlatform) -> None:
    quotes = {bytes([i]) * 64: sim.make_tdx_quote(bytes([i]) * 64) for i in range(1, 9)}
    tsm = FakeTsm(tsm_root(tmp_path), outblob=lambda inblob: quotes[inblob])
    att = TdxEcdsaAttester(tsm=tsm)
    results: dict[bytes, bytes] = {}
    barrier = threading.Barrier(len(quotes))

    def run(rd: bytes) -> None:
        barrier.wait()
        results[rd] = att.collect_evidence(rd).data

    threads = [threading.Thread(target=run, args=(rd,)) for rd in quotes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == quotes
    assert len(set(tsm.created)) == len(tsm.created) == len(quotes) + 1  # + the provider probe
    assert sorted(tsm.removed) == sorted(tsm.created)


def test_real_instance_handling_on_a_plain_directory(tmp_path: Path) -> None:
    """Without the fake: mkdir works, but a plain directory has no provider → unavailable, and no leftovers."""
    report_dir = tmp_path / REPORT_DIR.lstrip("/")
    report_dir.mkdir(parents=True)
    with pytest.raises(TsmUnavailable, match="provider unreadable"):
        ConfigfsTsm(tmp_path, provider=PROVIDER_TDX)
    assert list(report_dir.iterdir()) == []
    with pytest.raises(ConfigError):
        attesters.select("tdx_ecdsa", root=tmp_path)
    with pytest.raises(NoTeeFound):
        select_attester(None, {"root": tmp_path})


def test_tdx_guest_device_without_configfs_explains_why(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "tdx_guest").write_bytes(b"")
    with pytest.raises(ConfigError, match="only a local TDREPORT"):
        attesters.select("tdx_ecdsa", root=tmp_path)


def test_tsm_instance_creation_errors_are_unavailable(tmp_path: Path) -> None:
    class NoProvider(ConfigfsTsm):
        def _new_instance(self) -> Path:
            raise OSError(errno.ENXIO, "No such device or address")

    class NotRoot(ConfigfsTsm):
        def _new_instance(self) -> Path:
            raise OSError(errno.EACCES, "Permission denied")

    (tmp_path / REPORT_DIR.lstrip("/")).mkdir(parents=True)
    with pytest.raises(TsmUnavailable, match="no TSM provider"):
        NoProvider(tmp_path, provider=PROVIDER_TDX)
    with pytest.raises(TsmUnavailable, match="needs root"):
        NotRoot(tmp_path, provider=PROVIDER_TDX)
    # after a successful probe, the same failure during a request is an interface error
    with pytest.raises(TeeInterfaceError, match="no TSM provider"):
        NoProvider(tmp_path, provider=PROVIDER_TDX, probe=False).report(RD)


def test_tsm_rmdir_failure_is_logged_not_raised(tmp_path: Path, tdx_quote: bytes,
                                                caplog: pytest.LogCaptureFixture) -> None:
    class Sticky(FakeTsm):
        def _remove_instance(self, instance: Path) -> None:
            raise OSError(errno.EBUSY, "Device or resource busy")

    tsm = Sticky(tsm_root(tmp_path), outblob=tdx_quote)
    with caplog.at_level(logging.WARNING, logger="eaa.attest.configfs_tsm"):
        assert TdxEcdsaAttester(tsm=tsm).collect_evidence(RD).data == tdx_quote
    assert "cannot remove configfs-tsm report instance" in caplog.text


def test_tsm_rejects_oversized_inblob_and_bad_privlevel(tmp_path: Path) -> None:
    tsm = FakeTsm(tsm_root(tmp_path), outblob=b"x")
    with pytest.raises(ValueError):
        tsm.report(bytes(65))
    with pytest.raises(ConfigError, match="privilege level"):
        FakeTsm(tsm_root(tmp_path), privlevel=4)


# ---------------------------------------------------------------------------------------------
# SEV-SNP


def snp_report(report_data: bytes = RD, *, vmpl: int = 0, version: int = 2, size: int = 0x4A0) -> bytes:
    r = bytearray(0x4A0)
    r[0:4] = version.to_bytes(4, "little")
    r[0x30:0x34] = vmpl.to_bytes(4, "little")
    r[0x50:0x90] = report_data
    r[0x90:0xC0] = b"\x5a" * 48  # measurement
    return bytes(r[:size]) if size <= 0x4A0 else bytes(r) + bytes(size - 0x4A0)


def cert_table(certs: list[tuple[uuid.UUID, bytes]], *, terminate: bool = True, pad: int = 0) -> bytes:
    table_len = 24 * (len(certs) + (1 if terminate else 0))
    head, body, off = b"", b"", table_len
    for guid, data in certs:
        head += guid.bytes + off.to_bytes(4, "little") + len(data).to_bytes(4, "little")
        body += data
        off += len(data)
    return head + (bytes(24) if terminate else b"") + body + bytes(pad)


def test_snp_report_and_certificates_from_configfs_tsm(tmp_path: Path) -> None:
    aux = cert_table([(VCEK_GUID, b"vcek-der"), (ASK_GUID, b"ask-der"), (ARK_GUID, b"ark-der")], pad=100)
    tsm = FakeTsm(tsm_root(tmp_path), provider=PROVIDER_SEV, outblob=snp_report(), auxblob=aux)
    att = SevSnpAttester(tsm=tsm)
    got = att.collect(RD)
    assert isinstance(got, SnpAttestation)
    # the host's table travels with the evidence, byte for byte (padding included)
    assert got.evidence == Evidence(SEV_SNP, snp_report(), RD, SnpEndorsements(got.certificates))
    assert got.evidence.collateral.table.raw == aux  # type: ignore[union-attr]
    assert got.certificates.get("vcek") == b"vcek-der" and got.certificates.get("ark") == b"ark-der"
    assert got.certificates.get("vlek") is None and got.certificates.raw == aux
    assert att.certificates == got.certificates
    assert att.collect_evidence(RD) == got.evidence
    assert tsm.inblobs[-1] == RD and tsm.removed == tsm.created


def test_snp_vmpl_is_written_as_privlevel_and_checked(tmp_path: Path) -> None:
    tsm = FakeTsm(tsm_root(tmp_path), provider=PROVIDER_SEV, outblob=snp_report(vmpl=2), privlevel=2)
    SevSnpAttester(tsm=tsm, vmpl=2).collect_evidence(RD)  # generation 2: privlevel + inblob
    tsm = FakeTsm(tsm_root(tmp_path), provider=PROVIDER_SEV, outblob=snp_report(vmpl=0), privlevel=1)
    with pytest.raises(EvidenceMismatch, match="VMPL 0; VMPL 1 was requested"):
        SevSnpAttester(tsm=tsm, vmpl=1).collect_evidence(RD)
    tsm = FakeTsm(tsm_root(tmp_path), provider=PROVIDER_SEV, outblob=snp_report(), privlevel=1,
                  privlevel_supported=False)
    with pytest.raises(TeeInterfaceError, match="privilege level"):
        SevSnpAttester(tsm=tsm, vmpl=1).collect_evidence(RD)


@pytest.mark.parametrize("report,match", [
    (snp_report(OTHER_RD), "other report data"),
    (snp_report(size=0x4A0 - 1), "1183 bytes"),
    (snp_report(size=0x4A0 + 32), "1216 bytes"),
    (snp_report(version=1), "version 1"),
])
def test_snp_report_is_checked(tmp_path: Path, report: bytes, match: str) -> None:
    tsm = FakeTsm(tsm_root(tmp_path), provider=PROVIDER_SEV, outblob=report)
    with pytest.raises(EvidenceMismatch, match=match):
        SevSnpAttester(tsm=tsm).collect_evidence(RD)
    assert tsm.removed == tsm.created


def test_snp_malformed_certificate_table_is_dropped_with_a_warning(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    aux = cert_table([(VCEK_GUID, b"vcek")], terminate=False)
    tsm = FakeTsm(tsm_root(tmp_path), provider=PROVIDER_SEV, outblob=snp_report(), auxblob=aux)
    with caplog.at_level(logging.WARNING, logger="eaa.attest.snp"):
        got = SevSnpAttester(tsm=tsm).collect(RD)
    assert got.certificates.entries == () and got.certificates.raw == aux
    assert "malformed SNP certificate table" in caplog.text


def test_snp_on_a_tdx_guest_is_unavailable(tmp_path: Path, tdx_quote: bytes) -> None:
    root = tsm_root(tmp_path)
    FakeTsm(root, provider=PROVIDER_TDX, outblob=tdx_quote)  # creates the report dir
    with pytest.raises(ConfigError, match="sev_snp: .*provider unreadable.*sev-guest does not exist"):
        attesters.select("sev_snp", root=root)


class FakeSevGuest:
    """Plays /dev/sev-guest SNP_GET_REPORT: reads snp_report_req, writes MSG_REPORT_RSP."""

    def __init__(self, *, status: int = 0, busy: int = 0, report: Callable[[bytes, int], bytes] | None = None,
                 size: int = 0x4A0) -> None:
        self.status = status
        self.busy = busy
        self.report = report or (lambda rd, vmpl: snp_report(rd, vmpl=vmpl))
        self.size = size
        self.requests: list[tuple[bytes, int]] = []

    def __call__(self, fd: int, request: int, arg: Any) -> int:
        if request == sev_guest.SNP_GET_EXT_REPORT:  # a kernel without it (tests/test_snp_ext_report.py has one)
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")
        assert request == sev_guest.SNP_GET_REPORT and isinstance(arg, SnpGuestRequestIoctl)
        assert arg.msg_version == 1
        req = SnpReportReq.from_buffer_copy(ctypes.string_at(arg.req_data, ctypes.sizeof(SnpReportReq)))
        assert bytes(req.rsvd) == bytes(28) and req.vmpl <= 3
        if self.busy:
            self.busy -= 1
            arg.exitinfo2 = 2 << 32  # SNP_GUEST_VMM_ERR_BUSY
            raise OSError(errno.EIO, "Input/output error")
        rd = bytes(req.user_data)
        self.requests.append((rd, req.vmpl))
        resp = self.status.to_bytes(4, "little") + self.size.to_bytes(4, "little") + bytes(24)
        resp += self.report(rd, req.vmpl)
        ctypes.memmove(arg.resp_data, resp, len(resp))
        return 0


def sev_guest_tree(root: Path) -> Path:
    return device_tree(root, "sev-guest")


def test_snp_falls_back_to_dev_sev_guest(tmp_path: Path) -> None:
    sev_guest_tree(tmp_path)
    driver = FakeSevGuest()
    att = attesters.select("sev_snp", root=tmp_path, ioctl=driver)
    assert isinstance(att, SevSnpAttester) and att.backend == "/dev/sev-guest"
    got = att.collect(b"snp")
    rd = b"snp" + bytes(61)
    assert got.evidence == Evidence(SEV_SNP, snp_report(rd), rd)
    assert got.certificates.entries == ()
    assert driver.requests == [(rd, 0)]


def test_dev_sev_guest_vmpl_and_busy_retry(tmp_path: Path) -> None:
    sev_guest_tree(tmp_path)
    driver = FakeSevGuest(busy=2)
    dev = SevGuestDevice(tmp_path, ioctl=driver, retry_delay=0)
    ev = SevSnpAttester(device=dev, vmpl=1).collect_evidence(RD)
    assert ev.data == snp_report(RD, vmpl=1) and driver.requests == [(RD, 1)]


@pytest.mark.parametrize("driver,match", [
    (FakeSevGuest(status=0x16), "status 0x16 \\(invalid parameter\\)"),
    (FakeSevGuest(size=0x4A0 - 4), "1180-byte report"),
    (FakeSevGuest(busy=1000), "VMM error 0x2"),
    (FakeSevGuest(report=lambda rd, vmpl: snp_report(OTHER_RD)), None),
])
def test_dev_sev_guest_failures_are_typed(tmp_path: Path, driver: FakeSevGuest, match: str | None) -> None:
    sev_guest_tree(tmp_path)
    att = SevSnpAttester(device=SevGuestDevice(tmp_path, ioctl=driver, retry_delay=0))
    if match is None:
        with pytest.raises(EvidenceMismatch, match="other report data"):
            att.collect_evidence(RD)
    else:
        with pytest.raises(TeeInterfaceError, match=match):
            att.collect_evidence(RD)


def test_configfs_tsm_is_preferred_over_dev_sev_guest(tmp_path: Path) -> None:
    root = tsm_root(tmp_path)
    sev_guest_tree(root)
    tsm = FakeTsm(root, provider=PROVIDER_SEV, outblob=snp_report())
    assert SevSnpAttester(tsm=tsm).backend == "configfs-tsm (sev_guest)"


# ---- the certificate table itself ----

def test_cert_table_parsing() -> None:
    assert parse_cert_table(b"").entries == () and parse_cert_table(bytes(4096)).entries == ()
    t = parse_cert_table(cert_table([(VCEK_GUID, b"a" * 10), (uuid.UUID(int=7), b"b")], pad=4000))
    assert [(e.name, e.data) for e in t.entries] == [("vcek", b"a" * 10), (None, b"b")]
    with pytest.raises(FormatError, match="terminating"):
        parse_cert_table(cert_table([(VCEK_GUID, b"a")], terminate=False))
    with pytest.raises(FormatError, match="twice"):
        parse_cert_table(cert_table([(VCEK_GUID, b"a"), (VCEK_GUID, b"b")]))
    bad = bytearray(cert_table([(VCEK_GUID, b"abc")]))
    bad[20:24] = (1000).to_bytes(4, "little")  # length past the end
    with pytest.raises(FormatError, match="outside"):
        parse_cert_table(bytes(bad))
    bad = bytearray(cert_table([(VCEK_GUID, b"abc")]))
    bad[16:20] = (0).to_bytes(4, "little")  # pointing into the table itself
    with pytest.raises(FormatError, match="outside"):
        parse_cert_table(bytes(bad))


def test_every_attestation_error_is_an_eaa_error_with_a_code() -> None:
    for cls in (AttestationError, TeeInterfaceError, ConcurrentReportRequest, EvidenceMismatch):
        assert issubclass(cls, EaaError) and cls.code and cls("x").exit_code == 13
