"""Where collateral comes from: Intel's ``sgx_default_qcnl.conf`` and the ``EAA_PCCS_URL`` override.

A host that already runs Intel's quote provider library has ``/etc/sgx_default_qcnl.conf`` pointing at
its PCCS; reading the same file lets eaa verify quotes on that host with no extra configuration. The
file exists in two forms and both are still deployed: the current JSON (with ``//`` and ``/* */``
comments, which Intel's own parser accepts) and the legacy ``KEY=VALUE`` lines. ``EAA_PCCS_URL``
overrides the URL so a single verifier can be pointed elsewhere without editing a system file; the
file is found as QCNL finds it (``$QCNL_CONF_PATH``), or through ``$EAA_QCNL_CONF``.

Every documented key is read and acted on by :class:`~eaa.collateral.pcs.PcsClient`: ``pccs_url``,
``use_secure_cert``, ``collateral_service``, ``pccs_api_version`` (3.0 or 3.1), ``retry_times``,
``retry_delay``, ``local_pck_url``, ``pck_cache_expire_hours``, ``verify_collateral_cache_expire_hours``,
``local_cache_only``, ``custom_request_options`` and ``tcb_update_type``. Values are as lenient as
Intel's parser where it is lenient (case of ``EARLY``, a legacy line without ``=`` is skipped) and
anything malformed is a :class:`ConfigError`, never another exception.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..records import record

DEFAULT_QCNL_PATH = "/etc/sgx_default_qcnl.conf"
ENV_PCCS_URL = "EAA_PCCS_URL"
ENV_QCNL_CONF = "EAA_QCNL_CONF"
ENV_INTEL_QCNL_CONF = "QCNL_CONF_PATH"  # what Intel's QCNL reads
MAX_CONF_SIZE = 1 << 20
MAX_RETRY_TIMES = 100
MAX_HOURS = 100 * 365 * 24
PCCS_API_VERSIONS = ("3.0", "3.1")
REQUEST_OPTION_APIS = ("get_cert", "get_crl", "get_tcbinfo", "get_qe_identity", "get_qve_identity",
                       "get_root_ca_crl")

# Intel's configuration file asks for 6 retries 10 s apart; without a file a verifier on the command line
# retries less. Without retry_delay QCNL waits 1 s and then doubles the wait each retry.
DEFAULT_RETRY_TIMES = 2
DEFAULT_RETRY_DELAY = 1.0
DEFAULT_PCK_CACHE_HOURS = 168
DEFAULT_COLLATERAL_CACHE_HOURS = 168


@record
class QcnlConfig:
    """The subset of QCNL settings a collateral client acts on."""

    pccs_url: str
    use_secure_cert: bool = True
    collateral_service: str | None = None
    tcb_update_type: str = "standard"
    pccs_api_version: str | None = None
    retry_times: int = DEFAULT_RETRY_TIMES
    retry_delay: float | None = None  # None: QCNL's backoff (1 s, then doubling); a value: that delay each time
    local_pck_url: str | None = None
    pck_cache_expire_hours: float = DEFAULT_PCK_CACHE_HOURS
    verify_collateral_cache_expire_hours: float = DEFAULT_COLLATERAL_CACHE_HOURS
    local_cache_only: bool = False
    # custom_request_options: {"get_cert": ((headers), (params))}, as tuples so the config stays hashable
    request_options: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], ...] = ()
    source: str = "defaults"

    def __post_init__(self) -> None:
        check_url(self.pccs_url, "pccs_url")
        if self.collateral_service:
            check_url(self.collateral_service, "collateral_service")
        if self.local_pck_url:
            check_url(self.local_pck_url, "local_pck_url")
        if self.tcb_update_type not in ("standard", "early"):
            raise ConfigError("tcb_update_type must be 'standard' or 'early'")
        if self.pccs_api_version is not None and self.pccs_api_version not in PCCS_API_VERSIONS:
            raise ConfigError(f"pccs_api_version must be one of {', '.join(PCCS_API_VERSIONS)}")
        if not 0 <= self.retry_times <= MAX_RETRY_TIMES:
            raise ConfigError(f"retry_times must be 0..{MAX_RETRY_TIMES}")
        for name in ("retry_delay", "pck_cache_expire_hours", "verify_collateral_cache_expire_hours"):
            v = getattr(self, name)
            if v is not None and not (0 <= v <= MAX_HOURS):  # also false for nan
                raise ConfigError(f"{name} must be between 0 and {MAX_HOURS}")

    def request_option(self, api: str) -> tuple[dict[str, str], dict[str, str]]:
        """The extra headers and query parameters custom_request_options adds to ``api`` (e.g. get_cert)."""
        for name, headers, params in self.request_options:
            if name == api:
                return dict(headers), dict(params)
        return {}, {}


def check_url(url: str, what: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError:
        raise ConfigError(f"{what} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not host:
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
        n = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"QCNL setting {key} must be a number") from None
    if not math.isfinite(n):
        raise ConfigError(f"QCNL setting {key} must be a finite number")
    return n


def _integer(value: Any, key: str) -> int:
    n = _number(value, key)
    if n != int(n):
        raise ConfigError(f"QCNL setting {key} must be a whole number")
    return int(n)


def _pairs(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"QCNL setting custom_request_options.{where} must map names to strings")
    for k, v in value.items():
        if not k or not (k + v).isascii() or not (k + v).isprintable() or any(c in k for c in " :\r\n"):
            raise ConfigError(f"QCNL setting custom_request_options.{where} holds a name or value that cannot "
                              "be sent in a request")
    return tuple(sorted(value.items()))


def _request_options(value: Any) -> tuple[tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], ...]:
    """Intel documents custom request headers/params for get_cert; the other QCNL API names are accepted too."""
    if not isinstance(value, dict):
        raise ConfigError("QCNL setting custom_request_options must be an object")
    out = []
    for api, opts in value.items():
        if api not in REQUEST_OPTION_APIS:
            raise ConfigError(f"QCNL setting custom_request_options names an unknown API (known: "
                              f"{', '.join(REQUEST_OPTION_APIS)})")
        if not isinstance(opts, dict):
            raise ConfigError(f"QCNL setting custom_request_options.{api} must be an object")
        out.append((api, _pairs(opts.get("headers"), f"{api}.headers"), _pairs(opts.get("params"), f"{api}.params")))
    return tuple(sorted(out))


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
            if isinstance(v, (int, float)) and not isinstance(v, bool) and key == "pccs_api_version":
                v = f"{v:.1f}"  # "pccs_api_version": 3.1 written as a number
            if not isinstance(v, str):
                raise ConfigError(f"{source}: {key} must be a string")
            kw[key] = v.strip().lower() if key == "tcb_update_type" else v.strip()
    if "retry_times" in values:
        kw["retry_times"] = _integer(values["retry_times"], "retry_times")
    if "custom_request_options" in values:
        kw["request_options"] = _request_options(values["custom_request_options"])
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
    if stripped.startswith(("{", "[")):
        try:
            obj = json.loads(stripped)
        except ValueError as e:
            raise ConfigError(f"{source} is not valid JSON: {e.msg if hasattr(e, 'msg') else 'syntax'} "
                              f"(line {getattr(e, 'lineno', '?')})") from None
        except RecursionError:
            raise ConfigError(f"{source} nests JSON too deeply to be a QCNL configuration") from None
        if not isinstance(obj, dict):
            raise ConfigError(f"{source}: the QCNL configuration must be a JSON object")
        return _from_mapping(obj, source)
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue  # Intel's legacy parser skips a line without '=' too
        key, _, value = line.partition("=")
        values[key.strip().lower()] = value.strip()
    return _from_mapping(values, source)


# ---- locating the configuration ----

def qcnl_path(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """``path``, else ``$EAA_QCNL_CONF``, else Intel's ``$QCNL_CONF_PATH``, else the system default."""
    env = os.environ if environ is None else environ
    return Path(path or env.get(ENV_QCNL_CONF) or env.get(ENV_INTEL_QCNL_CONF) or DEFAULT_QCNL_PATH)


def load_qcnl(path: str | os.PathLike[str] | None = None,
              environ: Mapping[str, str] | None = None) -> QcnlConfig | None:
    """The effective configuration, or ``None`` when no PCCS is configured anywhere.

    ``path`` (or ``$EAA_QCNL_CONF``) must exist when given; the system default may be absent.
    ``$EAA_PCCS_URL`` replaces the file's URL, or stands alone when there is no file.
    """
    env = os.environ if environ is None else environ
    explicit = bool(path or env.get(ENV_QCNL_CONF) or env.get(ENV_INTEL_QCNL_CONF))
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
