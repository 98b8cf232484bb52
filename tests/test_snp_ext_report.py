"""SNP_GET_EXT_REPORT on /dev/sev-guest (the report and the host's certificate table), through a fake ioctl
that behaves as the Linux sev-guest driver: whole pages only, INVALID_LEN with the size needed when the
buffer is too small; and its use where configfs-tsm returns no certificates."""

from __future__ import annotations

import ctypes
import errno
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from eaa.attest import sev_guest
from eaa.attest.configfs_tsm import PROVIDER_SEV
from eaa.attest.errors import TeeInterfaceError
from eaa.attest.registry import attesters
from eaa.attest.sev_guest import SevGuestDevice, SnpExtReportReq, SnpGuestRequestIoctl
from eaa.attest.snp import SevSnpAttester
from eaa.formats.snp_certs import ARK_GUID, ASK_GUID, VCEK_GUID
from eaa.verify.registry import verifiers
from test_attest_real import FakeTsm, cert_table, device_tree, snp_report, tsm_root

RD = bytes(range(64))


class FakeExtSevGuest:
    """/dev/sev-guest answering SNP_GET_EXT_REPORT with ``table`` (and SNP_GET_REPORT, counted)."""

    def __init__(self, table: bytes, report: Any = None, *, grow: bool = False) -> None:
        self.table = table
        self.report = report or (lambda rd, vmpl: snp_report(rd, vmpl=vmpl))
        self.grow = grow  # the host's table grows between the two calls (the retry must not loop)
        self.calls: list[tuple[int, int]] = []  # (command, certs_len)

    def __call__(self, fd: int, request: int, arg: Any) -> int:
        assert isinstance(arg, SnpGuestRequestIoctl) and arg.msg_version == 1
        if request == sev_guest.SNP_GET_REPORT:
            self.calls.append((request, 0))
            raise AssertionError("SNP_GET_REPORT must not be used when SNP_GET_EXT_REPORT works")
        assert request == sev_guest.SNP_GET_EXT_REPORT
        req = SnpExtReportReq.from_address(arg.req_data)
        self.calls.append((request, req.certs_len))
        if req.certs_len % 4096:
            raise OSError(errno.EINVAL, "Invalid argument")
        needed = -(-len(self.table) // 4096) * 4096
        if self.grow:  # a host whose table never fits: always one page more than offered
            needed = req.certs_len + 4096
        if req.certs_len < needed:
            req.certs_len = needed
            arg.exitinfo2 = 1 << 32  # SNP_GUEST_VMM_ERR_INVALID_LEN
            raise OSError(errno.EIO, "Input/output error")
        ctypes.memmove(req.certs_address, self.table, len(self.table))
        rd = bytes(req.data.user_data)
        resp = (0).to_bytes(4, "little") + (0x4A0).to_bytes(4, "little") + bytes(24) + self.report(rd, req.data.vmpl)
        ctypes.memmove(arg.resp_data, resp, len(resp))
        return 0


def _dev(tmp_path: Path, driver: Any) -> SevGuestDevice:
    device_tree(tmp_path, "sev-guest")
    return SevGuestDevice(tmp_path, ioctl=driver, retry_delay=0)


def test_ext_report_returns_the_hosts_certificates(tmp_path: Path) -> None:
    table = cert_table([(VCEK_GUID, b"vcek-der"), (ASK_GUID, b"ask-der"), (ARK_GUID, b"ark-der")])
    driver = FakeExtSevGuest(table)
    device_tree(tmp_path, "sev-guest")
    att = attesters.select("sev_snp", root=tmp_path, ioctl=driver)
    got = att.collect(b"snp")
    assert got.evidence.data == snp_report(b"snp" + bytes(61))
    assert got.certificates.get("vcek") == b"vcek-der" and got.certificates.get("ark") == b"ark-der"
    assert driver.calls == [(sev_guest.SNP_GET_EXT_REPORT, 4 * 4096)]


def test_a_small_buffer_is_retried_once_with_the_size_the_kernel_asks(tmp_path: Path) -> None:
    big = b"\x01" * (5 * 4096 + 10)
    table = cert_table([(VCEK_GUID, big)])
    driver = FakeExtSevGuest(table)
    report, certs = _dev(tmp_path, driver).ext_report(RD)
    assert certs[:len(table)] == table and len(certs) == 6 * 4096
    assert [n for _, n in driver.calls] == [4 * 4096, 6 * 4096]
    with pytest.raises(TeeInterfaceError, match="do not fit"):  # asked again after the retry: no loop
        _dev(tmp_path, FakeExtSevGuest(table, grow=True)).ext_report(RD)
    with pytest.raises(TeeInterfaceError, match="whole pages"):
        _dev(tmp_path, FakeExtSevGuest(table)).ext_report(RD, certs_len=100)
    huge = cert_table([(VCEK_GUID, b"\x01" * (70 * 4096))])
    with pytest.raises(TeeInterfaceError, match="whole pages"):  # the kernel may not make us allocate anything
        _dev(tmp_path, FakeExtSevGuest(huge)).ext_report(RD)


def test_no_certificates_from_the_host(tmp_path: Path) -> None:
    device_tree(tmp_path, "sev-guest")
    got = SevSnpAttester(tmp_path, ioctl=FakeExtSevGuest(b"")).collect(RD)
    assert got.certificates.entries == () and got.evidence.data == snp_report(RD)


def test_kernel_without_ext_report_uses_snp_get_report(tmp_path: Path) -> None:
    from test_attest_real import FakeSevGuest

    device_tree(tmp_path, "sev-guest")
    driver = FakeSevGuest()  # answers ENOTTY to SNP_GET_EXT_REPORT
    got = SevSnpAttester(tmp_path, ioctl=driver).collect(RD)
    assert got.evidence.data == snp_report(RD) and driver.requests == [(RD, 0)]

    def failing(fd: int, request: int, arg: Any) -> int:
        arg.exitinfo2 = 0x16  # a firmware error is not "unsupported": no silent fallback
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(TeeInterfaceError, match="SNP_GET_EXT_REPORT failed.*firmware error 0x16"):
        SevSnpAttester(tmp_path, ioctl=failing).collect(RD)


def test_configfs_tsm_without_certificates_falls_back_to_ext_report(tmp_path: Path) -> None:
    table = cert_table([(VCEK_GUID, b"vcek-der")])
    tsm = FakeTsm(tsm_root(tmp_path), provider=PROVIDER_SEV, outblob=snp_report(), auxblob=b"")
    dev = _dev(tmp_path, FakeExtSevGuest(table))
    got = SevSnpAttester(tsm=tsm, device=dev).collect(RD)
    assert got.certificates.get("vcek") == b"vcek-der"
    # configfs-tsm with certificates: /dev/sev-guest is not asked
    aux = cert_table([(ASK_GUID, b"ask-der")])
    driver = FakeExtSevGuest(table)
    tsm = FakeTsm(tsm_root(tmp_path), provider=PROVIDER_SEV, outblob=snp_report(), auxblob=aux)
    got = SevSnpAttester(tsm=tsm, device=_dev(tmp_path, driver)).collect(RD)
    assert got.certificates.get("ask") == b"ask-der" and driver.calls == []


def test_ext_report_certificates_verify_a_simulated_report(tmp_path: Path) -> None:
    """The host's table is enough to verify the report: no KDS, no files."""
    from eaa.sim.snp import init_snp_platform

    sim = init_snp_platform(tmp_path / "sim")
    guest = sim.guest(measurement=b"\x33" * 48)
    table = cert_table([(VCEK_GUID, sim.vcek.public_bytes(Encoding.DER)),
                        (ASK_GUID, sim.ask.public_bytes(Encoding.DER)), (ARK_GUID, sim.ark.public_bytes(Encoding.DER))])
    driver = FakeExtSevGuest(table, report=lambda rd, vmpl: sim.report(rd, guest))
    got = SevSnpAttester(device=_dev(tmp_path, driver)).collect(RD)
    v = verifiers.select("sev_snp", amd_anchors=[sim.anchor()], kds=False, check_crl=False)
    res = v.verify_evidence(got.evidence.data, evidence_type="sev_snp", report_data_hash=RD[:32],
                            collateral=got.certificates, at=sim.vcek.not_valid_before_utc.timestamp() + 7200)
    assert res.details["collateral_source"] == "cert table" and res.simulated
