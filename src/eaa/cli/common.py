"""What every eaa program shares: one-line errors, stable exit codes, checked numbers, times and
evidence files, the version flag and the daemons' log format.

Exit codes (the same condition gives the same code in every command; README, "Exit codes"):
0 success, 1 a node or check failed (shelter, enclave-tls-client), 2 usage or configuration,
3 malformed input, 4 signature/chain/identity, 5 TCB not supported, 6 collateral missing,
7 collateral expired, 8 unsupported evidence, 9 policy violation, 10 revoked, 11 protocol error,
12 transport error, 70 internal error (a bug), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import binascii
import gc
import math
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from .. import __version__
from ..errors import ConfigError, EaaError, FormatError
from ..timeutil import as_utc, utc_now

if TYPE_CHECKING:
    import logging

EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
SIMULATION_WARNING = "WARNING: simulated evidence: not backed by TEE hardware; do not trust it in production."
MAX_SECONDS = 86400.0  # the longest timeout or interval a command accepts for one step
MAX_EVIDENCE_FILE = 16 << 20


# Packages of optional extras -> the extra that installs them (pyproject.toml [project.optional-dependencies])
EXTRAS = {name: "pccs" for name in ("fastapi", "starlette", "pydantic", "uvicorn", "httptools", "uvloop",
                                     "prometheus_client", "psycopg", "psycopg_pool", "psycopg_binary")}


def _missing_extra(prog: str, e: ModuleNotFoundError) -> int | None:
    """A command that needs an optional extra which is not installed: say which one, exit 2."""
    root = (e.name or "").split(".")[0]
    extra = EXTRAS.get(root)
    if extra is None:
        return None
    print(f"{prog}: error [MISSING_EXTRA]: this command needs {root}, which plain 'pip install eaa' does not "
          f"install: pip install 'eaa[{extra}]'", file=sys.stderr)
    return EXIT_USAGE


def _interrupted(prog: str) -> int:
    """One message for Ctrl-C; a second Ctrl-C while the process winds down is ignored, so it cannot
    print a traceback from interpreter shutdown."""
    import signal  # only here: every command's start would pay for what only Ctrl-C needs
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(f"{prog}: interrupted", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


def run_main(prog: str, fn: Callable[[], int]) -> int:
    """Run ``fn`` and turn any failure into one line on stderr and a stable exit status."""
    try:
        return fn()
    except EaaError as e:
        print(f"{prog}: error {e.tag}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return _interrupted(prog)
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - last line of defence: never a traceback for users
        missing = _missing_extra(prog, e) if isinstance(e, ModuleNotFoundError) else None
        if missing is not None:
            return missing
        if os.environ.get("EAA_DEBUG"):
            raise
        print(f"{prog}: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_INTERNAL


def parse_args(prog: str, parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args`` with Ctrl-C during start-up (slow imports of a subcommand) handled too."""
    try:
        return parser.parse_args(argv)
    except KeyboardInterrupt:
        raise SystemExit(_interrupted(prog)) from None


def dispatch(prog: str, parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Run the subcommand a parser chose (its ``func``); no subcommand prints the help and gives 2."""
    args = parse_args(prog, parser, argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return run_main(prog, lambda: args.func(args))


def add_version(parser: argparse.ArgumentParser, prog: str, *flags: str) -> None:
    """``--version`` (and any original short spelling) on every command, one format."""
    parser.add_argument(*(flags or ("--version",)), action="version", version=f"{prog} (eaa) {__version__}")


# ---- numbers (argparse types: a bad value is a usage error, exit 2, one line) ----

def _integer(value: str, what: str) -> int:
    try:
        return int(value.strip(), 10)
    except (ValueError, AttributeError):
        raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {value!r}") from None


def port(value: str) -> int:
    """A TCP port to connect to: 1-65535."""
    n = _integer(value, "port")
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, not {value}")
    return n


def listen_port(value: str) -> int:
    """A TCP port to listen on: 1-65535, or 0 for any free port."""
    n = _integer(value, "port")
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535 (0: any free port), not {value}")
    return n


def bounded_int(low: int, high: int, what: str = "value") -> Callable[[str], int]:
    def parse(value: str) -> int:
        n = _integer(value, what)
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"{what} must be {low}-{high}, not {value}")
        return n
    parse.__name__ = what  # argparse names the type in its messages
    return parse


def bounded_float(low: float, high: float, what: str = "value") -> Callable[[str], float]:
    """A finite number within [low, high] (nan, inf and out-of-range values are usage errors)."""
    def parse(value: str) -> float:
        try:
            n = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, not {value!r}") from None
        if not low <= n <= high:  # also false for nan
            raise argparse.ArgumentTypeError(f"{what} must be {low:g} to {high:g}, not {value}")
        return n
    parse.__name__ = what
    return parse


def _seconds(value: str, *, zero: bool) -> float:
    try:
        s = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seconds must be a number, not {value!r}") from None
    if not (math.isfinite(s) and (0 <= s if zero else 0 < s) and s <= MAX_SECONDS):
        raise argparse.ArgumentTypeError(f"seconds must be {'0' if zero else 'more than 0'} to {MAX_SECONDS:.0f}, "
                                         f"not {value}")
    return s


def seconds(value: str) -> float:
    """A timeout: a finite number of seconds, more than 0 and at most a day."""
    return _seconds(value, zero=False)


def seconds_or_zero(value: str) -> float:
    """An interval that may be 0 (no wait): a finite number of seconds, at most a day."""
    return _seconds(value, zero=True)


def parse_time(value: str | None) -> datetime:
    """``--at``: unix seconds or an ISO-8601 time, between 1970 and 9999; default now (UTC)."""
    if value is None:
        return utc_now()
    text = value.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        try:
            return datetime.fromtimestamp(int(text), timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise ConfigError(f"time {value!r} is out of range (unix seconds from 0 to year 9999)") from None
    if text.startswith("-"):
        raise ConfigError(f"time {value!r} is out of range (unix seconds from 0 to year 9999)")
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"bad time {value!r}: use unix seconds or ISO-8601") from None
    return as_utc(dt)


# ---- evidence files: binary, hex (any whitespace), base64, or '-' for standard input ----

# Byte sets rather than regular expressions: compiling those cost every one-shot command a third of a ms.
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_BASE64_STD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_BASE64_URL = (_BASE64_STD - frozenset(b"+/")) | frozenset(b"-_")
_TEXT = frozenset(range(0x20, 0x7F)) | frozenset(b"\t\n\r\x0b\x0c")


def read_input(path: str, what: str, *, max_size: int = MAX_EVIDENCE_FILE) -> bytes:
    """A file's bytes, or standard input for ``-``, at most ``max_size`` bytes. Messages name the path,
    never the content."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(max_size + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(max_size + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory") from None
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}") from None
    if len(data) > max_size:
        raise FormatError(f"{what} {'(standard input)' if path == '-' else path} is too large "
                          f"(more than {max_size} bytes)")
    return data


def decode_evidence(data: bytes, what: str) -> bytes:
    """A quote or report as tools write them: raw bytes; hex with any whitespace or line breaks (``xxd -p``),
    optionally ``0x``-prefixed; or base64 (Azure's and GCP's tools). Text that is neither is an error
    saying so, rather than bytes misread as a quote."""
    if not data.strip():
        raise FormatError(f"the {what} is empty")
    if not set(data) <= _TEXT:
        return data
    compact = b"".join(data.split())
    prefixed = compact[:2] in (b"0x", b"0X")
    digits = compact[2:] if prefixed else compact
    if digits and set(digits) <= _HEX_DIGITS and len(digits) % 2 == 0:
        return binascii.unhexlify(digits)
    # base64 tools break lines but never put spaces inside one: words separated by spaces are prose
    if not prefixed and b" " not in data.strip() and b"\t" not in data and _is_base64(compact):
        padded = compact + b"=" * (-len(compact) % 4)
        try:
            if b"-" in compact or b"_" in compact:
                return binascii.a2b_base64(padded.replace(b"-", b"+").replace(b"_", b"/"), strict_mode=True)
            return binascii.a2b_base64(padded, strict_mode=True)
        except binascii.Error:
            pass
    raise FormatError(f"the {what} is text but neither hex nor base64; give the binary {what}, "
                      f"hex (e.g. xxd -p) or base64")


def _is_base64(text: bytes) -> bool:
    """Standard or URL-safe base64 letters, then at most two ``=``."""
    body = text.rstrip(b"=")
    if not body or len(text) - len(body) > 2:
        return False
    letters = set(body)
    return letters <= _BASE64_STD or letters <= _BASE64_URL


def result_lines(result: Any, keys: tuple[str, ...], debug_warning: str) -> list[str]:
    """The measurements named by ``keys``, the report data and the warnings every verifier's text output
    ends with (debug, collateral not yet valid, collateral expired)."""
    lines = [f"{k.upper()}: {result.measurements[k]}" for k in keys if k in result.measurements]
    lines.append(f"REPORT_DATA: {result.report_data.hex()}")
    if result.debug:
        lines.append(f"WARNING: {debug_warning}")
    lines += [f"WARNING: collateral not yet valid: {item}" for item in result.details.get("not_yet_valid", ())]
    if result.collateral_expired:
        when = result.earliest_expiration
        lines.append("WARNING: collateral expired" + (f" ({when:%Y-%m-%dT%H:%M:%SZ})" if when else "")
                     + "; refresh it.")
    return lines


def trust_sim_requested(flag: bool) -> bool:
    return flag or os.environ.get("EAA_TRUST_SIMULATION", "") in ("1", "true", "yes")


def add_snp_arguments(p: argparse.ArgumentParser) -> None:
    """The sev_snp verifier's flags (shelter, inclavared, enclave-tls-server/-client)."""
    p.add_argument("--snp-product", choices=("Milan", "Genoa", "Turin"),
                   help="SEV-SNP product line of peers whose reports do not say (v2; default Milan, as go-sev-guest)")
    p.add_argument("--kds-url", metavar="URL",
                   help="AMD KDS or eaa-pccs base URL for SEV-SNP certificates and CRLs (default: the PCCS of "
                        "EAA_PCCS_URL / sgx_default_qcnl.conf, else https://kdsintf.amd.com)")


def snp_verifier_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options :func:`add_snp_arguments` sets, as the sev_snp verifier takes them."""
    options: dict[str, Any] = {}
    if getattr(args, "snp_product", None):
        options["product"] = args.snp_product
    if getattr(args, "kds_url", None):
        from ..collateral.qcnl import check_url

        options["kds"] = check_url(args.kds_url, "--kds-url")
    return options


# ---- the daemons' log format ----

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMAT_PID = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"  # several processes (--processes)
_formatter_class: type[logging.Formatter] | None = None


def log_formatter(fmt: str = LOG_FORMAT) -> logging.Formatter:
    """The one log format of every daemon: UTC timestamp with milliseconds, level, component (the logger's
    name, e.g. eaa.inclavared), message, on one line; an exception is folded onto that line, so a log
    never carries a traceback. (Built on first use: one-shot commands do not import logging.)"""
    global _formatter_class
    import logging
    import time

    if _formatter_class is None:
        class LogFormatter(logging.Formatter):
            converter = time.gmtime  # type: ignore[assignment]  # typeshed's overloads of gmtime lose its argument

            def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
                return f"{super().formatTime(record, datefmt)}.{int(record.msecs):03d}Z"

            def format(self, record: logging.LogRecord) -> str:
                record.message = record.getMessage()
                record.asctime = self.formatTime(record, self.datefmt)
                line = self.formatMessage(record)
                if record.exc_info and record.exc_info[1] is not None:
                    e = record.exc_info[1]
                    line += f" ({type(e).__name__}: {e})"
                return line.replace("\n", " | ")

        _formatter_class = LogFormatter
    return _formatter_class(fmt, datefmt="%Y-%m-%dT%H:%M:%S")


def setup_daemon_logging(level: int | str, *, stream: TextIO | None = None,
                         loggers: tuple[str, ...] = ("eaa", "uvicorn", "httpx", "httpcore")) -> logging.Handler:
    """Route a daemon's loggers through :func:`log_formatter` at ``level`` (a name such as "info" or a
    logging level). httpx and httpcore log a line per request at INFO; they are kept at WARNING or
    above, so an upstream fetch is logged once, by eaa."""
    import logging

    if isinstance(level, str):
        level = {"warn": "WARNING", "fatal": "CRITICAL", "off": "CRITICAL"}.get(level.lower(), level.upper())
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(log_formatter())
    for name in loggers:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(level)
        if name in ("httpx", "httpcore"):
            logger.setLevel(max(logger.level, logging.WARNING))
    return handler


def log_process_ids(loggers: tuple[str, ...] = ("eaa",)) -> None:
    """Name the process in every line of ``loggers`` (a daemon serving with several processes)."""
    import logging

    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(log_formatter(LOG_FORMAT_PID))


def attester_takes(name: str | None, option: str) -> bool:
    """Whether the named attester takes ``option`` (automatic selection only picks real attesters, which
    take no measurement options), so that a default is only passed where it means something."""
    if not name:
        return False
    from ..attest.registry import attesters

    return option in attesters.get(name).options


def one_shot(main: Callable[[], int]) -> NoReturn:
    """What the console scripts of one-shot commands (eaa, shelter, enclave-tls-client) run: ``main``, then
    an immediate exit with its status.

    Everything such a command allocates dies with the process, so the cyclic collector's passes over the
    objects that start-up creates (every imported module's) and the interpreter's teardown (freeing them
    all again) are pure cost: about an eighth of an ``eaa verify-quote``. Output is flushed and logging
    shut down first; ``main`` itself is unchanged (tests call it in-process), and daemons keep the normal
    exit path."""
    gc.disable()
    try:
        rc = main()
    except SystemExit as e:  # argparse's usage errors and --help/--version
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)  # as Python's own exit
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    if "logging" in sys.modules:  # flush its handlers, as the normal exit would (not imported by every command)
        sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a reader that went away; a closed stream
            pass
    os._exit(rc)
