"""Where collateral comes from: Intel's ``sgx_default_qcnl.conf`` and the ``EAA_PCCS_URL`` override.

A host that already runs Intel's quote provider library has ``/etc/sgx_default_qcnl.conf`` pointing at
its PCCS; reading the same file lets eaa verify quotes on that host with no extra configuration. The
file exists in two forms and both are still deployed: the current JSON (with ``//`` and ``/* */``
comments, which Intel's own parser accepts) and the legacy ``KEY=VALUE`` lines. ``EAA_PCCS_URL``
overrides the URL so a single verifier can be pointed elsewhere without editing a system file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from ..errors import ConfigError

DEFAULT_QCNL_PATH = "/etc/sgx_default_qcnl.conf"
ENV_PCCS_URL = "EAA_PCCS_URL"
ENV_QCNL_CONF = "EAA_QCNL_CONF"
MAX_CONF_SIZE = 1 << 20

# Intel's defaults are 6 retries 10 s apart; a verifier on the command line should fail faster.
DEFAULT_RETRY_TIMES = 2
DEFAULT_RETRY_DELAY = 1.0
DEFAULT_PCK_CACHE_HOURS = 168
DEFAULT_COLLATERAL_CACHE_HOURS = 168


@dataclass(frozen=True)
class QcnlConfig:
    """The subset of QCNL settings a collateral client acts on."""

    pccs_url: str
    use_secure_cert: bool = True
    collateral_service: str | None = None
    tcb_update_type: str = "standard"
    pccs_api_version: str | None = None
    retry_times: int = DEFAULT_RETRY_TIMES
    retry_delay: float = DEFAULT_RETRY_DELAY
    local_pck_url: str | None = None
    pck_cache_expire_hours: float = DEFAULT_PCK_CACHE_HOURS
    verify_collateral_cache_expire_hours: float = DEFAULT_COLLATERAL_CACHE_HOURS
    local_cache_only: bool = False
    source: str = "defaults"

    def __post_init__(self) -> None:
        check_url(self.pccs_url, "pccs_url")
        if self.collateral_service:
            check_url(self.collateral_service, "collateral_service")
        if self.tcb_update_type not in ("standard", "early"):
            raise ConfigError(f"tcb_update_type must be 'standard' or 'early', not {self.tcb_update_type!r}")
        if self.retry_times < 0 or self.retry_delay < 0:
            raise ConfigError("retry_times and retry_delay must not be negative")


def check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} {url!r} is not an http(s) URL")
    return url


# ---- the two file forms ----

def strip_json_comments(text: str) -> str:
    """Remove ``//`` and ``/* */`` comments and trailing commas outside strings (rapidjson's relaxed input)."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
            continue
        if c == '"':
            in_string = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise ConfigError("unterminated /* comment in QCNL configuration")
            i = j + 2
        elif c in "}]":
            # drop a trailing comma before the closing bracket
            k = len(out) - 1
            while k >= 0 and out[k] in " \t\r\n":
                k -= 1
            if k >= 0 and out[k] == ",":
                del out[k]
            out.append(c)
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise ConfigError(f"QCNL setting {key} must be true or false, not {value!r}")


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"QCNL setting {key} must be a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"QCNL setting {key} must be a number, not {value!r}") from None


def _from_mapping(values: Mapping[str, Any], source: str) -> QcnlConfig | None:
    url = values.get("pccs_url")
    if url in (None, ""):
        return None
    if not isinstance(url, str):
        raise ConfigError(f"{source}: pccs_url must be a string")
    kw: dict[str, Any] = {"pccs_url": url.strip(), "source": source}
    if "use_secure_cert" in values:
        kw["use_secure_cert"] = _bool(values["use_secure_cert"], "use_secure_cert")
    for key in ("collateral_service", "tcb_update_type", "pccs_api_version", "local_pck_url"):
        v = values.get(key)
        if v not in (None, ""):
            if not isinstance(v, str):
                raise ConfigError(f"{source}: {key} must be a string")
            kw[key] = v.strip()
    if "retry_times" in values:
        kw["retry_times"] = int(_number(values["retry_times"], "retry_times"))
    if "retry_delay" in values:
        kw["retry_delay"] = _number(values["retry_delay"], "retry_delay")
    for key in ("pck_cache_expire_hours", "verify_collateral_cache_expire_hours"):
        if key in values:
            kw[key] = _number(values[key], key)
    if "local_cache_only" in values:
        kw["local_cache_only"] = _bool(values["local_cache_only"], "local_cache_only")
    return QcnlConfig(**kw)


def parse_qcnl(text: str, source: str = "<qcnl>") -> QcnlConfig | None:
    """Parse either QCNL form; ``None`` when the file names no PCCS URL."""
    stripped = strip_json_comments(text).strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except ValueError as e:
            raise ConfigError(f"{source} is not valid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{source}: the QCNL configuration must be a JSON object")
        return _from_mapping(obj, source)
    values: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ConfigError(f"{source}:{n}: expected KEY=VALUE")
        key, _, value = line.partition("=")
        values[key.strip().lower()] = value.strip()
    return _from_mapping(values, source)


# ---- locating the configuration ----

def qcnl_path(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(path or env.get(ENV_QCNL_CONF) or DEFAULT_QCNL_PATH)


def load_qcnl(path: str | os.PathLike[str] | None = None,
              environ: Mapping[str, str] | None = None) -> QcnlConfig | None:
    """The effective configuration, or ``None`` when no PCCS is configured anywhere.

    ``path`` (or ``$EAA_QCNL_CONF``) must exist when given; the system default may be absent.
    ``$EAA_PCCS_URL`` replaces the file's URL, or stands alone when there is no file.
    """
    env = os.environ if environ is None else environ
    explicit = bool(path or env.get(ENV_QCNL_CONF))
    p = qcnl_path(path, env)
    config: QcnlConfig | None = None
    try:
        if p.stat().st_size > MAX_CONF_SIZE:
            raise ConfigError(f"{p} is too large to be a QCNL configuration")
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"QCNL configuration {p} does not exist") from None
        text = None
    except OSError as e:
        raise ConfigError(f"cannot read {p}: {e.strerror}") from None
    if text is not None:
        config = parse_qcnl(text, str(p))
    override = env.get(ENV_PCCS_URL, "").strip()
    if override:
        if config is None:
            return QcnlConfig(pccs_url=override, source=ENV_PCCS_URL)
        return replace(config, pccs_url=override, source=f"{config.source} + {ENV_PCCS_URL}")
    return config


def pccs_configured(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """True when a verifier should fetch collateral instead of asking the user for it."""
    return load_qcnl(path, environ) is not None
