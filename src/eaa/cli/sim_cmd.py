"""``eaa sim``: the simulated TEE (a software SGX/TDX and SEV-SNP platform for development and CI).

  eaa sim init [--dir D] [--force] [--tcb STATE] [--snp-product P]
                                                     create (or with --force, regenerate) the platforms
  eaa sim quote --report-data HEX [--tee sgx|tdx] [--measure PATH...] [--isv-prod-id N] [--isv-svn N]
                [--debug] [--dir D] -o FILE          write a quote
  eaa sim snp-report --report-data HEX [--measure PATH...] [--guest-svn N] [--vmpl N] [--host-data HEX]
                [--debug] [--certs DIR] [--dir D] -o FILE
                                                     write an SEV-SNP attestation report (and its certificates)
  eaa sim collateral -o DIR [--tee sgx|tdx] [--dir D] write its collateral (PCS-style files + collateral.json)
  eaa sim root -o FILE [--tee sgx|snp] [--dir D]     write its root CA certificate, or its SNP ARK (PEM)

The platform lives in --dir, else $EAA_SIM_DIR, else $XDG_DATA_HOME/eaa/sim or ~/.local/share/eaa/sim,
and is created on first use; the SEV-SNP platform (ARK, ASK, VCEK, CRL) lives in its snp/ subdirectory.
Its quotes verify only against its own root: `eaa verify-quote FILE --trust-sim`, and its SNP reports
only against its own ARK: `eaa verify-snp FILE --trust-sim` (or --vek/--chain/--crl from --certs DIR
with --trust-root DIR/ark.pem).
MEASUREMENT (SEV-SNP) of --measure PATH... is computed as MRTD is (SHA-384, below).
MRENCLAVE (SGX) / MRTD (TDX) of --measure PATH...: SHA-256 / SHA-384 over the files sorted by name, each
as u64le(len(name)) || name || u64le(len(content)) || content; a file is named by its base name, files
under a directory by their path relative to it ('/'-separated), so the value does not depend on where
the files are.
TCB states: uptodate, swhardening, configuration, configuration-swhardening, outofdate,
outofdate-configuration, revoked (the PCK certificate is listed in the PCK CRL).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .common import SIMULATION_WARNING
from .parser import RawDescriptionHelpFormatter

if TYPE_CHECKING:
    from ..sim import SimPlatform

_TEES = ("sgx", "tdx")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """No import of the simulator here: building the parser (``eaa --help``) must stay cheap."""
    p = sub.add_parser("sim", help="the simulated TEE (development and CI only)", description=__doc__,
                       formatter_class=RawDescriptionHelpFormatter)
    p.set_defaults(func=run, sim_command=None, _sim_parser=p)
    ss = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")

    def with_dir(q: argparse.ArgumentParser) -> None:
        q.add_argument("--dir", metavar="D",
                       help="state directory (default: $EAA_SIM_DIR, else ~/.local/share/eaa/sim)")
        q.set_defaults(func=run)

    init = ss.add_parser("init", help="create the simulated platform (its PKI, collateral and keys)")
    with_dir(init)
    init.add_argument("--force", action="store_true", help="replace an existing platform")
    init.add_argument("--tcb", metavar="STATE", default="uptodate",
                      help="the platform's TCB state (listed above; default: uptodate)")
    init.add_argument("--snp-product", choices=("Milan", "Genoa", "Turin"), default="Milan",
                      help="the SEV-SNP platform's product line (default: Milan)")

    q = ss.add_parser("quote", help="write a simulated SGX v3 or TDX v4 quote")
    with_dir(q)
    q.add_argument("--report-data", metavar="HEX", required=True, help="report data, hex, at most 64 bytes")
    q.add_argument("--tee", choices=_TEES, default="sgx", help="quote type (default: sgx)")
    q.add_argument("--measure", metavar="PATH", nargs="+", action="extend", default=[],
                   help="files or directories whose measurement is MRENCLAVE (SGX) or MRTD (TDX)")
    q.add_argument("--mrenclave", metavar="HEX", help="SGX: MRENCLAVE (32 bytes) instead of --measure")
    q.add_argument("--mrtd", metavar="HEX", help="TDX: MRTD (48 bytes) instead of --measure")
    q.add_argument("--rtmr", metavar="HEX", action="append", default=[],
                   help="TDX: RTMR0, then RTMR1.. (48 bytes each, repeatable up to 4 times)")
    q.add_argument("--isv-prod-id", metavar="N", type=int, help="SGX: ISV product ID (default 0)")
    q.add_argument("--isv-svn", metavar="N", type=int, help="SGX: ISV SVN (default 0)")
    q.add_argument("--debug", action="store_true", help="a debug enclave / TD (DEBUG attribute set)")
    q.add_argument("-o", "--output", metavar="FILE", required=True, help="quote file ('-': standard output)")

    sr = ss.add_parser("snp-report", help="write a simulated SEV-SNP attestation report")
    with_dir(sr)
    sr.add_argument("--report-data", metavar="HEX", required=True, help="report data, hex, at most 64 bytes")
    sr.add_argument("--measure", metavar="PATH", nargs="+", action="extend", default=[],
                    help="files or directories whose measurement is the guest's MEASUREMENT")
    sr.add_argument("--measurement", metavar="HEX", help="MEASUREMENT (48 bytes) instead of --measure")
    sr.add_argument("--guest-svn", metavar="N", type=int, default=0, help="the guest SVN (default 0)")
    sr.add_argument("--vmpl", metavar="N", type=int, default=0, help="the VMPL that asked (0..3, default 0)")
    sr.add_argument("--host-data", metavar="HEX", help="HOST_DATA (32 bytes, default zero)")
    sr.add_argument("--debug", action="store_true", help="a guest policy that allows debugging")
    sr.add_argument("--certs", metavar="DIR",
                    help="also write vcek.pem, cert_chain.pem (ASK, ARK), ark.pem, crl.der and cert_table.bin "
                         "(the certificate table a host hands the guest) to DIR")
    sr.add_argument("-o", "--output", metavar="FILE", required=True, help="report file ('-': standard output)")

    c = ss.add_parser("collateral", help="write the platform's verification collateral")
    with_dir(c)
    c.add_argument("--tee", choices=_TEES, default="sgx", help="collateral for sgx or tdx quotes (default: sgx)")
    c.add_argument("-o", "--output", metavar="DIR", required=True, help="output directory")

    r = ss.add_parser("root", help="write the platform's root CA certificate, or its SEV-SNP ARK (PEM)")
    with_dir(r)
    r.add_argument("--tee", choices=("sgx", "tdx", "snp"), default="sgx",
                   help="sgx/tdx: the root CA (default); snp: the SEV-SNP platform's ARK")
    r.add_argument("-o", "--output", metavar="FILE", required=True, help="PEM file ('-': standard output)")


def _hex(value: str | None, what: str, size: int | None = None, max_size: int | None = None) -> bytes | None:
    if value is None:
        return None
    text = value.strip()
    if text[:2].lower() == "0x":
        text = text[2:]
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{what} is not hex: {value!r}") from None
    if size is not None and len(raw) != size:
        raise ConfigError(f"{what} must be {size} bytes ({2 * size} hex digits), got {len(raw)}")
    if max_size is not None and len(raw) > max_size:
        raise ConfigError(f"{what} is {len(raw)} bytes; at most {max_size} fit")
    return raw


def _write(path: str, data: bytes) -> None:
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        Path(path).write_bytes(data)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror}") from None


def _sim_dir(args: argparse.Namespace) -> Path | None:
    return Path(args.dir) if getattr(args, "dir", None) else None


def _warn_if_expired(platform: SimPlatform) -> None:
    if platform.collateral_expired():
        print(f"eaa: warning: the simulated platform's collateral expired on "
              f"{platform.collateral_expires:%Y-%m-%d}; regenerate it with 'eaa sim init --force'", file=sys.stderr)


def _init(args: argparse.Namespace) -> int:
    from ..sim import EXPECTED_STATUS, TCB_STATES, init_platform

    if args.tcb not in TCB_STATES:
        raise ConfigError(f"unknown TCB state {args.tcb!r} (use {', '.join(TCB_STATES)})")

    from ..sim.snp import init_snp_platform

    platform = init_platform(_sim_dir(args), tcb=args.tcb, force=args.force)
    snp = init_snp_platform(platform.sim_dir, product=args.snp_product, force=True)  # a fresh SGX one has none
    from cryptography.hazmat.primitives import hashes

    print(f"Simulated TEE platform created in {platform.sim_dir}")
    print(f"TCB state: {platform.tcb_state} (its quotes verify with status {EXPECTED_STATUS[platform.tcb_state]})")
    print(f"Root CA: {platform.root_certificate.subject.rfc4514_string()}")
    print(f"Root CA SHA-256: {platform.root_certificate.fingerprint(hashes.SHA256()).hex()}")
    print(f"SEV-SNP platform: {snp.product}, report version {snp.report_version}, in {snp.directory}")
    print(f"SEV-SNP ARK: {snp.ark.subject.rfc4514_string()}")
    print(f"SEV-SNP ARK SHA-256: {snp.ark.fingerprint(hashes.SHA256()).hex()}")
    print("Its quotes and reports are trusted only on request (--trust-sim or EAA_TRUST_SIMULATION=1).")
    return 0


def _quote(args: argparse.Namespace) -> int:
    from ..formats.quote import parse_quote
    from ..sim import load_platform

    report_data = _hex(args.report_data, "--report-data", max_size=64)
    assert report_data is not None
    platform = load_platform(_sim_dir(args))
    _warn_if_expired(platform)
    if args.tee == "sgx":
        if args.mrtd or args.rtmr:
            raise ConfigError("--mrtd and --rtmr are for TDX quotes (--tee tdx)")
        raw = platform.make_sgx_quote(
            report_data, mrenclave=_hex(args.mrenclave, "--mrenclave", 32), measure_paths=args.measure,
            isv_prod_id=args.isv_prod_id or 0, isv_svn=args.isv_svn or 0, debug=args.debug)
    else:
        if args.mrenclave or args.isv_prod_id is not None or args.isv_svn is not None:
            raise ConfigError("--mrenclave, --isv-prod-id and --isv-svn are for SGX quotes (--tee sgx)")
        if len(args.rtmr) > 4:
            raise ConfigError("a TD has four RTMRs; --rtmr was given more than 4 times")
        rtmrs = [_hex(v, f"--rtmr #{i}", 48) for i, v in enumerate(args.rtmr)]
        raw = platform.make_tdx_quote(report_data, mrtd=_hex(args.mrtd, "--mrtd", 48), measure_paths=args.measure,
                                      rtmrs=[r for r in rtmrs if r is not None], debug=args.debug)
    _write(args.output, raw)
    q = parse_quote(raw)
    out = sys.stderr if args.output == "-" else sys.stdout
    where = "standard output" if args.output == "-" else args.output
    print(SIMULATION_WARNING, file=sys.stderr)
    print(f"Wrote a simulated {args.tee.upper()} quote (version {q.header.version}, {len(raw)} bytes) to {where}",
          file=out)
    body = q.body
    if args.tee == "sgx":
        print(f"MRENCLAVE: {body.mr_enclave.hex()}", file=out)  # type: ignore[union-attr]
        print(f"MRSIGNER: {body.mr_signer.hex()}", file=out)  # type: ignore[union-attr]
    else:
        print(f"MRTD: {body.mr_td.hex()}", file=out)  # type: ignore[union-attr]
    return 0


def _snp_report(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.serialization import Encoding

    from ..formats.snp_certs import ARK_GUID, ASK_GUID, VCEK_GUID, build_cert_table
    from ..sim.snp import load_snp_platform

    report_data = _hex(args.report_data, "--report-data", max_size=64)
    assert report_data is not None
    if args.measurement and args.measure:
        raise ConfigError("give --measurement or --measure, not both")
    if not 0 <= args.vmpl <= 3:
        raise ConfigError("--vmpl is 0..3")
    if not 0 <= args.guest_svn < 1 << 32:
        raise ConfigError("--guest-svn is a 32-bit unsigned number")
    platform = load_snp_platform(_sim_dir(args))
    guest = platform.guest(measurement=_hex(args.measurement, "--measurement", 48), measure_paths=args.measure,
                           debug=args.debug, guest_svn=args.guest_svn, vmpl=args.vmpl,
                           host_data=_hex(args.host_data, "--host-data", 32))
    raw = platform.report(report_data.ljust(64, b"\x00"), guest)
    if args.certs:
        d = Path(args.certs)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create {d}: {e.strerror}") from None
        table = build_cert_table([(g, c.public_bytes(Encoding.DER)) for g, c in
                                  ((VCEK_GUID, platform.vcek), (ASK_GUID, platform.ask), (ARK_GUID, platform.ark))])
        files = {"vcek.pem": platform.vcek.public_bytes(Encoding.PEM), "cert_chain.pem": platform.chain_pem,
                 "ark.pem": platform.ark.public_bytes(Encoding.PEM), "crl.der": platform.crl, "cert_table.bin": table}
        for name, data in files.items():
            _write(str(d / name), data)
    _write(args.output, raw)
    out = sys.stderr if args.output == "-" else sys.stdout
    where = "standard output" if args.output == "-" else args.output
    print(SIMULATION_WARNING, file=sys.stderr)
    print(f"Wrote a simulated SEV-SNP report (version {platform.report_version}, {platform.product}, {len(raw)} bytes) "
          f"to {where}", file=out)
    print(f"MEASUREMENT: {guest.measurement.hex()}", file=out)
    if args.certs:
        print(f"Wrote its VCEK, ASK/ARK chain, ARK, CRL and certificate table to {args.certs}", file=out)
    return 0


def _collateral(args: argparse.Namespace) -> int:
    from ..sim import load_platform

    platform = load_platform(_sim_dir(args))
    _warn_if_expired(platform)
    try:
        platform.collateral(args.tee).write_directory(args.output)
    except OSError as e:
        raise ConfigError(f"cannot write collateral to {args.output}: {e.strerror}") from None
    print(f"Wrote the simulated platform's {args.tee.upper()} collateral to {args.output}")
    return 0


def _root(args: argparse.Namespace) -> int:
    from ..sim import load_platform

    if args.tee == "snp":
        from cryptography.hazmat.primitives.serialization import Encoding

        from ..sim.snp import load_snp_platform

        snp = load_snp_platform(_sim_dir(args))
        _write(args.output, snp.ark.public_bytes(Encoding.PEM))
        if args.output != "-":
            print(f"Wrote the simulated SEV-SNP ARK ({snp.ark.subject.rfc4514_string()}) to {args.output}")
        return 0
    platform = load_platform(_sim_dir(args))
    _write(args.output, platform.root_pem)
    if args.output != "-":
        print(f"Wrote the simulated root CA ({platform.root_certificate.subject.rfc4514_string()}) to {args.output}")
    return 0


_COMMANDS = {"init": _init, "quote": _quote, "snp-report": _snp_report, "collateral": _collateral, "root": _root}


def run(args: argparse.Namespace) -> int:
    command = _COMMANDS.get(getattr(args, "sim_command", None) or "")
    if command is None:
        args._sim_parser.print_help(sys.stderr)
        return 2
    return command(args)
