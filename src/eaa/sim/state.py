"""Where a simulated platform lives and how its state files are read; shared by the simulator, which
writes them, and by verifiers told to trust it, which read only what it publishes."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import ConfigError, FormatError

PLATFORM_FILE = "platform.json"
TEES = ("sgx", "tdx")
COLLATERAL_FILES = {
    "sgx": ("sgx_tcb_info.json", "sgx_qe_identity.json"),
    "tdx": ("tdx_tcb_info.json", "tdx_qe_identity.json"),
}
MAX_STATE_FILE = 1 << 20


def default_sim_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$EAA_SIM_DIR``, else ``$XDG_DATA_HOME/eaa/sim``, else ``~/.local/share/eaa/sim``."""
    explicit = environ.get("EAA_SIM_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = environ.get("XDG_DATA_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "eaa" / "sim"
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".local" / "share" / "eaa" / "sim"


def is_platform_dir(d: Path) -> bool:
    return (d / PLATFORM_FILE).is_file()


def read_state(d: Path, names: Iterable[str], what: str) -> dict[str, bytes]:
    """The named files of a state directory; a missing or oversized one is a typed error naming it."""
    files: dict[str, bytes] = {}
    for name in names:
        p = d / name
        try:
            if p.stat().st_size > MAX_STATE_FILE:
                raise FormatError(f"{p} is too large for a {what} file")
            files[name] = p.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"the {what} in {d} is incomplete ({name} is missing); "
                              "regenerate it with 'eaa sim init --force'") from None
        except OSError as e:
            raise ConfigError(f"cannot read {p}: {e.strerror}") from None
    return files
