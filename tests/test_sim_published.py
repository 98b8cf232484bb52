"""What a simulated platform publishes to verifiers (eaa.sim.published): the same anchor and collateral as
the loaded platform gives, read without its keys or the simulator, and typed errors for a damaged one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _sim import T0, _never_the_real_home, plat  # noqa: F401 - shared fixtures
from eaa.errors import ConfigError, FormatError
from eaa.sim import SimPlatform, init_platform, load_platform
from eaa.sim.published import published_anchor, published_collateral
from eaa.verify import verify_quote


def test_the_anchor_is_the_platforms(plat: SimPlatform) -> None:
    anchor = published_anchor(plat.sim_dir)
    assert anchor == plat.anchor()
    assert anchor.simulated and anchor.name == f"EAA simulated TEE root ({plat.sim_dir})"


@pytest.mark.parametrize("tee", ["sgx", "tdx"])
def test_the_collateral_is_the_platforms_and_verifies_its_quotes(plat: SimPlatform, tee: str) -> None:
    collateral = published_collateral(tee, plat.sim_dir)
    assert collateral == plat.collateral(tee)
    raw = plat.make_tdx_quote(b"n") if tee == "tdx" else plat.make_sgx_quote(b"n")
    result = verify_quote(raw, collateral, at=T0, trust_anchors=[published_anchor(plat.sim_dir)])
    assert result.simulated and result.status == plat.expected_status


def test_unknown_tee(plat: SimPlatform) -> None:
    with pytest.raises(ConfigError, match="unknown TEE 'sev'"):
        published_collateral("sev", plat.sim_dir)


def test_a_missing_platform_is_created_first(tmp_path: Path) -> None:
    d = tmp_path / "new"
    anchor = published_anchor(d, now=T0)
    assert anchor == load_platform(d).anchor()


def _copy(plat: SimPlatform, tmp_path: Path) -> Path:
    d = tmp_path / "copy"
    shutil.copytree(plat.sim_dir, d)
    return d


@pytest.mark.parametrize("content", [b"garbage", b"", "é".encode()])
def test_a_damaged_root_is_a_format_error_naming_the_file(plat: SimPlatform, tmp_path: Path, content: bytes) -> None:
    d = _copy(plat, tmp_path)
    (d / "root_ca.pem").write_bytes(content)
    with pytest.raises(FormatError, match=r"damaged certificate \(root_ca.pem\)") as e:
        published_anchor(d)
    assert "garbage" not in str(e.value)
    with pytest.raises(FormatError, match=r"root_ca.pem"):
        published_collateral("sgx", d)


def test_two_certificates_where_one_belongs_are_refused(plat: SimPlatform, tmp_path: Path) -> None:
    d = _copy(plat, tmp_path)
    (d / "pck_ca.pem").write_bytes((d / "pck_ca.pem").read_bytes() + (d / "root_ca.pem").read_bytes())
    with pytest.raises(FormatError, match=r"pck_ca.pem"):
        published_collateral("sgx", d)


@pytest.mark.parametrize("name", ["tdx_tcb_info.json", "pck_crl.der", "tcb_signing.pem"])
def test_a_missing_file_is_named(plat: SimPlatform, tmp_path: Path, name: str) -> None:
    d = _copy(plat, tmp_path)
    (d / name).unlink()
    with pytest.raises(ConfigError, match=f"incomplete \\({name} is missing\\)"):
        published_collateral("tdx", d)


def test_reading_what_is_published_imports_neither_the_simulator_nor_key_handling(tmp_path: Path) -> None:
    d = tmp_path / "p"
    init_platform(d, now=T0)
    code = (
        "import sys\n"
        "from eaa.sim.trust import TrustedSimulation\n"
        f"t = TrustedSimulation({str(d)!r})\n"
        "t.anchor(); t.collateral('sgx'); t.collateral('tdx')\n"
        "bad = [m for m in ('eaa.sim.platform', 'eaa.sim.quote', 'eaa.sim.pki',\n"
        "                   'cryptography.hazmat.primitives.serialization') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
