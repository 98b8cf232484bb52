"""``eaa-pccs``: the collateral caching service (serve), and moving collateral in and out of it (import, export).

  eaa-pccs serve --cert server.pem --key server.key --db /var/lib/eaa-pccs/pccs.sqlite3
  eaa-pccs serve --cert server.pem --key server.key --mode req --refresh-every 24h
  eaa-pccs serve --mode offline --insecure-http --listen 127.0.0.1:8081 --import ./collateral
  eaa-pccs import ./bundle.json --db pccs.sqlite3            (straight into the database)
  eaa-pccs import ./bundle.json --url https://pccs:8081      (through a running server; admin token)
  eaa-pccs export -o bundle.json --db pccs.sqlite3

Modes: lazy (default) fetches misses from --upstream (Intel's PCS unless told otherwise) and AMD's KDS;
req fetches Intel collateral only when a platform registers (POST /platforms); offline serves imported
data only. With --refresh-every, lazy and req refresh the whole cache on a schedule.
HTTPS needs --cert and --key; plain HTTP only with --insecure-http.
The admin token (import/export over HTTP, GET /platforms, /refresh, PUT /platformcollateral and
/appraisalpolicy) comes from --admin-token-file or $EAA_PCCS_ADMIN_TOKEN, or as Intel's PCCS config holds
it, its SHA-512 hash (--admin-token-hash or $EAA_PCCS_ADMIN_TOKEN_HASH); the user token POST /platforms
requires likewise (--user-token-file, $EAA_PCCS_USER_TOKEN, --user-token-hash, $EAA_PCCS_USER_TOKEN_HASH).
Registration needs one of them unless the server is started with --open-registration.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

from ..errors import ConfigError, TransportError
from .common import add_version, bounded_float, bounded_int, run_main, setup_daemon_logging
from .parser import ArgumentParser, RawDescriptionHelpFormatter

DEFAULT_LISTEN = "127.0.0.1:8081"


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or len(port) > 5 or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port 0-65535, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _trust_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-root", metavar="PEM", action="append", default=[],
                   help="also accept Intel collateral chaining to this root (repeatable)")
    p.add_argument("--trust-sim", action="store_true",
                   help="also accept the simulated TEE's collateral (development only)")
    p.add_argument("--sim-dir", metavar="D", help="the simulated platform's directory (with --trust-sim)")
    p.add_argument("--amd-root", metavar="PEM", action="append", default=[],
                   help="trust these AMD ARK certificates instead of the pinned ones (testing)")


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="URL", default=None,
                   help="SQLite file (default eaa-pccs.sqlite3) or postgresql://user@host/db")


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The serve/import/export subcommands (shared by ``eaa-pccs`` and ``eaa pccs``)."""
    s = sub.add_parser("serve", help="run the caching service", description=__doc__,
                       formatter_class=RawDescriptionHelpFormatter)
    s.add_argument("--listen", type=_listen, default=_listen(DEFAULT_LISTEN), metavar="HOST:PORT",
                   help=f"address to listen on (default {DEFAULT_LISTEN})")
    s.add_argument("--cert", metavar="PEM", help="TLS certificate (chain) of the service")
    s.add_argument("--key", metavar="PEM", help="TLS private key of the service")
    s.add_argument("--insecure-http", action="store_true", help="serve plain HTTP (testing only)")
    _db_arg(s)
    s.add_argument("--mode", choices=("lazy", "req", "offline"), default="lazy",
                   help="caching mode (default lazy; req fetches only when a platform registers)")
    s.add_argument("--upstream", metavar="URL", default=None,
                   help="Intel PCS or another PCCS to fill misses from (default Intel's PCS)")
    s.add_argument("--kds-upstream", metavar="URL", default=None, help="AMD KDS (default kdsintf.amd.com)")
    s.add_argument("--no-kds", action="store_true", help="do not fetch from AMD's KDS")
    s.add_argument("--upstream-api-key-file", metavar="FILE", help="Intel PCS subscription key (for /pckcert)")
    s.add_argument("--upstream-ca", metavar="PEM", help="CA bundle to verify the upstreams' TLS certificates")
    s.add_argument("--upstream-insecure", action="store_true",
                   help="do not verify the upstreams' TLS certificates (collateral signatures still are)")
    s.add_argument("--upstream-timeout", type=bounded_float(0.1, 3600, "--upstream-timeout"), default=10.0, metavar="S",
                   help="per request (default 10)")
    s.add_argument("--upstream-retries", type=bounded_int(0, 20, "--upstream-retries"), default=2, metavar="N",
                   help="retries (default 2)")
    s.add_argument("--upstream-failures", type=bounded_int(1, 1000, "--upstream-failures"), default=3, metavar="N",
                   help="consecutive upstream failures that open its circuit: requests then fail fast (serving "
                        "the cache) until a probe succeeds (default 3)")
    s.add_argument("--upstream-cooldown", type=bounded_float(0, 86400, "--upstream-cooldown"), default=30.0,
                   metavar="S",
                   help="seconds an open circuit waits before probing the upstream again (default 30)")
    s.add_argument("--min-refresh", type=bounded_float(0, 365 * 86400, "--min-refresh"), default=600.0, metavar="S",
                   help="ask the upstream again at most this often for expired data (default 600)")
    s.add_argument("--refresh-every", metavar="DURATION", default=None,
                   help="lazy and req modes: refresh the whole cache from the upstream this often, as Intel's PCCS "
                        "does "
                        "on its RefreshSchedule (3600, 12h, 30d; default: only when a record expires)")
    s.add_argument("--admin-token-file", metavar="FILE",
                   help="enables /eaa/v1/import, /eaa/v1/export, GET /platforms, /refresh and /platformcollateral")
    s.add_argument("--admin-token-hash", metavar="SHA512HEX",
                   help="the admin token as its SHA-512 hash (Intel PCCS's AdminTokenHash)")
    s.add_argument("--user-token-file", metavar="FILE",
                   help="token POST /platforms requires (header user-token; the admin token also works)")
    s.add_argument("--user-token-hash", metavar="SHA512HEX",
                   help="the user token as its SHA-512 hash (Intel PCCS's UserTokenHash)")
    s.add_argument("--open-registration", action="store_true",
                   help="let anyone register platforms (POST /platforms) without a token")
    s.add_argument("--registration-rate", type=bounded_float(0, 1e6, "--registration-rate"), default=60.0, metavar="N",
                   help="registrations per minute and client address (burst: the same number); 0: no limit "
                        "(default 60)")
    s.add_argument("--import", dest="imports", metavar="SRC", action="append", default=[],
                   help="import this bundle, collateral JSON or directory before serving (repeatable)")
    s.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    _trust_args(s)
    s.set_defaults(func=run_serve)

    i = sub.add_parser("import", help="import collateral (bundle, QuoteCollateralV3 JSON or a directory)")
    i.add_argument("sources", metavar="SRC", nargs="+", help="files or directories to import")
    _db_arg(i)
    i.add_argument("--url", metavar="URL", help="import through a running eaa-pccs instead of into --db")
    i.add_argument("--admin-token-file", metavar="FILE", help="admin token for --url")
    i.add_argument("--ca", metavar="PEM", help="CA bundle to verify the server's certificate (--url)")
    i.add_argument("--batch-size", type=bounded_int(0, 10_000_000, "--batch-size"), default=0, metavar="N",
                   help="commit about every N records, never splitting a platform's registration from its "
                        "PCK certificates (default: one transaction per source)")
    i.add_argument("--progress", action="store_true", help="print a line after every committed batch")
    _trust_args(i)
    i.set_defaults(func=run_import)

    e = sub.add_parser("export", help="export every cached record as a bundle")
    _db_arg(e)
    e.add_argument("--url", metavar="URL", help="export from a running eaa-pccs instead of --db")
    e.add_argument("--admin-token-file", metavar="FILE", help="admin token for --url")
    e.add_argument("--ca", metavar="PEM", help="CA bundle to verify the server's certificate (--url)")
    e.add_argument("-o", "--output", metavar="FILE", default="-", help="output file (default: standard output)")
    e.set_defaults(func=run_export)


class _OneLineParser(ArgumentParser):
    """A usage error is one line, in the form and with the exit status (2) of every other configuration
    error, instead of argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(ConfigError.exit_code, f"{self.prog}: error [{ConfigError.code}]: {message} (see --help)\n")


def build_parser(prog: str = "eaa-pccs") -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=prog, description=__doc__, formatter_class=RawDescriptionHelpFormatter)
    add_version(parser, prog)
    add_commands(parser.add_subparsers(dest="pccs_command", metavar="COMMAND"))
    return parser


# ---- commands ----

def _options(args: argparse.Namespace, mode: str = "offline"):  # type: ignore[no-untyped-def]
    from ..services.pccs.service import Mode
    from ..services.pccs.setup import DEFAULT_DB, ServiceOptions, load_arks, resolve_anchors

    return ServiceOptions(db=args.db or DEFAULT_DB, mode=Mode(mode),
                          anchors=resolve_anchors(args.trust_root, args.trust_sim, args.sim_dir),
                          trusted_arks=load_arks(args.amd_root))


def run_serve(args: argparse.Namespace) -> int:
    from ..collateral.kds import KDS_URL
    from ..collateral.pcs import INTEL_PCS_URL
    from ..services.pccs.app import create_app
    from ..services.pccs.auth import RateLimiter
    from ..services.pccs.schedule import RefreshSchedule, parse_interval
    from ..services.pccs.server import PccsServer
    from ..services.pccs.setup import build_service, load_tokens, read_import_source, read_secret_file

    if not args.insecure_http and not (args.cert and args.key):
        raise ConfigError("HTTPS needs --cert and --key (or serve plain HTTP with --insecure-http)")
    refresh_every = parse_interval(args.refresh_every) if args.refresh_every is not None else None
    if refresh_every is not None and args.mode == "offline":
        raise ConfigError("--refresh-every needs --mode lazy or req: an offline PCCS has no upstream to refresh from")
    setup_daemon_logging(args.log_level)
    opts = _options(args, args.mode)
    opts.upstream = args.upstream or INTEL_PCS_URL
    opts.kds_upstream = None if args.no_kds else (args.kds_upstream or KDS_URL)
    tokens = load_tokens(admin_file=args.admin_token_file, user_file=args.user_token_file,
                         admin_hash=args.admin_token_hash, user_hash=args.user_token_hash,
                         open_registration=args.open_registration)
    if args.upstream_api_key_file:
        opts.upstream_api_key = read_secret_file(args.upstream_api_key_file, "upstream API key")
    opts.upstream_ca_file = args.upstream_ca
    opts.upstream_insecure = args.upstream_insecure
    opts.upstream_timeout = args.upstream_timeout
    opts.upstream_retries = args.upstream_retries
    opts.min_refresh = args.min_refresh
    opts.breaker_threshold = args.upstream_failures
    opts.breaker_cooldown = args.upstream_cooldown
    if args.cert and args.key:
        from ..services.pccs.server import check_tls_files

        check_tls_files(args.cert, args.key)  # before anything is opened or imported
    service = build_service(opts)
    for src in args.imports:
        n = service.import_records(read_import_source(src, now=time.time()))
        print(f"eaa-pccs: imported {n} records from {src}", file=sys.stderr)
    rate = args.registration_rate
    limiter = RateLimiter(rate / 60.0, max(1, int(rate))) if rate > 0 else None
    app = create_app(service, tokens=tokens, registration_limiter=limiter)
    host, port = args.listen
    server = PccsServer(app, host=host, port=port, certfile=args.cert, keyfile=args.key,
                        log_level=args.log_level, access_log=args.log_level == "debug")
    schedule = RefreshSchedule(service, refresh_every).start() if refresh_every is not None else None
    print(f"eaa-pccs: {opts.mode.value} mode, serving {server.url} (store: {_safe_db(opts.db)})", file=sys.stderr,
          flush=True)
    try:
        stopped_by = server.serve_forever()
    finally:
        if schedule is not None:
            schedule.stop()
        service.store.close()
    return 130 if stopped_by == signal.SIGINT else 0


def _safe_db(db: str) -> str:
    return db.split("@")[-1] if "://" in db else db


def _http_client(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    import httpx

    from ..collateral.http import tls_verify
    from ..services.pccs.setup import read_admin_token

    token = read_admin_token(args.admin_token_file)
    if not token:
        raise ConfigError("--url needs an admin token (--admin-token-file or $EAA_PCCS_ADMIN_TOKEN)")
    return httpx.Client(base_url=args.url.rstrip("/"), verify=tls_verify(True, args.ca), timeout=60.0,
                        headers={"admin-token": token})


def _unreachable(url: str, e: Exception) -> TransportError:
    """Connection failures name their cause; other client errors only their type, since their text can
    repeat request content (a header value, and so a token)."""
    import httpx

    detail = str(e) if isinstance(e, (httpx.ConnectError, httpx.TimeoutException)) else type(e).__name__
    return TransportError(f"cannot reach {url}: {detail}")


def _remote_error(resp, what: str) -> ConfigError:  # type: ignore[no-untyped-def]
    try:
        msg = resp.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        msg = resp.text[:300]
    return ConfigError(f"{what} failed: HTTP {resp.status_code}: {msg}")


def run_import(args: argparse.Namespace) -> int:
    from ..services.pccs.records import bundle_json
    from ..services.pccs.setup import build_service, read_import_source

    now = time.time()
    if args.url:
        import httpx

        with _http_client(args) as client:
            total = 0
            for src in args.sources:
                body = bundle_json(read_import_source(src, now=now), now=now)
                try:
                    resp = client.post("/eaa/v1/import", content=body,
                                       headers={"content-type": "application/json"})
                except httpx.HTTPError as e:
                    raise _unreachable(args.url, e) from None
                if resp.status_code != 200:
                    raise _remote_error(resp, f"import of {src}")
                total += int(resp.json()["imported"])
        print(f"Imported {total} records into {args.url}")
        return 0
    service = build_service(_options(args))
    try:
        total = 0
        for src in args.sources:
            def progress(done: int, base: int = total) -> None:
                print(f"committed {base + done}", flush=True)

            total += service.import_records(read_import_source(src, now=now), batch_size=args.batch_size,
                                            progress=progress if args.progress else None)
    finally:
        service.store.close()
    print(f"Imported {total} records into {_safe_db(args.db or 'eaa-pccs.sqlite3')}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..services.pccs.records import bundle_json
    from ..services.pccs.service import Mode
    from ..services.pccs.setup import DEFAULT_DB, ServiceOptions, build_service

    if args.url:
        import httpx

        with _http_client(args) as client:
            try:
                resp = client.get("/eaa/v1/export")
            except httpx.HTTPError as e:
                raise _unreachable(args.url, e) from None
            if resp.status_code != 200:
                raise _remote_error(resp, "export")
            text = resp.text
    else:
        service = build_service(ServiceOptions(db=args.db or DEFAULT_DB, mode=Mode.OFFLINE))
        try:
            text = bundle_json(service.export_records(), now=time.time())
        finally:
            service.store.close()
    count = len(json.loads(text)["records"])
    if args.output == "-":
        sys.stdout.write(text + "\n")
    else:
        try:
            Path(args.output).write_text(text + "\n")
        except OSError as e:
            raise ConfigError(f"cannot write {args.output}: {e.strerror}") from None
        print(f"Exported {count} records to {args.output}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return run_main("eaa-pccs", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
