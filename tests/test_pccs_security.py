"""eaa-pccs as a hostile client meets it: tokens (Intel's SHA-512 hashes), registration closed by default
and rate-limited, authentication before any body is read, bodies limited while streaming, a private
database file, batch imports that never split a platform, and no secret or file content in any error.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from eaa.errors import ConfigError
from eaa.services.pccs import Mode, create_app
from eaa.services.pccs.auth import RateLimiter, Tokens, token_hash
from eaa.services.pccs.errors import TooManyRequests
from eaa.services.pccs.platform_collateral import records_from_platform_collateral
from eaa.services.pccs.records import PCK_CERT, PLATFORM, ROOT_CRL, TCB, Record
from eaa.services.pccs.service import import_batches
from eaa.services.pccs.setup import load_tokens
from eaa.services.pccs.store import open_store
from test_pccs_platform_collateral import document
from test_pccs_support import make_service, vector_case

REG = {"qe_id": "ab" * 16, "pce_id": "0000", "cpu_svn": "05" * 16, "pce_svn": "0500", "enc_ppid": "11" * 384}
PLATFORMS = "/sgx/certification/v4/platforms"


def asgi_post(app: Any, path: str, headers: dict[str, str], chunks: int, chunk: bytes = b"x" * 65536,
              content_length: int | None = None, method: str = "POST") -> tuple[int, int, bytes]:
    """Send a body of ``chunks`` chunks to the ASGI app; returns (status, chunks the app read, body)."""
    read = [0]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        read[0] += 1
        if read[0] > chunks:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunk, "more_body": read[0] < chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    hdrs = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if content_length is not None:
        hdrs.append((b"content-length", str(content_length).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": hdrs,
             "client": ("192.0.2.7", 5555), "server": ("127.0.0.1", 8081)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], read[0], body


def test_authentication_before_any_body_is_read(tmp_path: Path) -> None:
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE)
    app = create_app(svc, tokens=Tokens.from_plain("adm1n", "us3r"))
    huge = 300 * 16  # 300 MB in 64 KiB chunks, never sent: nothing is read before the token is checked
    for method, path, headers in (("POST", PLATFORMS, {"user-token": "wrong"}), ("POST", PLATFORMS, {}),
                                  ("PUT", "/sgx/certification/v4/platformcollateral", {"admin-token": "us3r"}),
                                  ("PUT", "/sgx/certification/v3/appraisalpolicy", {}),
                                  ("POST", "/eaa/v1/import", {"admin-token": "x"})):
        status, read, _ = asgi_post(app, path, headers, huge, method=method)
        assert status == 401 and read == 0, (path, status, read)
    svc.store.close()


def test_bodies_are_limited_while_streaming(tmp_path: Path) -> None:
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE)
    app = create_app(svc, tokens=Tokens.from_plain("adm1n", "us3r"))
    # chunked (no Content-Length): refused after the limit, long before the 300 MB the client offers
    status, read, body = asgi_post(app, PLATFORMS, {"user-token": "us3r"}, 300 * 16)
    assert status == 413 and read <= 6 and body == b"request entity too large"
    # a Content-Length above the limit: refused without reading at all
    status, read, _ = asgi_post(app, PLATFORMS, {"user-token": "us3r"}, 300 * 16, content_length=300 << 20)
    assert status == 413 and read == 0
    status, read, _ = asgi_post(app, "/eaa/v1/import", {"admin-token": "adm1n"}, 2000, content_length=2000 << 16)
    assert status == 413 and read == 0
    # a valid registration within the limit still works
    status, _, body = asgi_post(app, PLATFORMS, {"user-token": "us3r"}, 1, chunk=json.dumps(REG).encode())
    assert status == 200 and body == b"Operation successful."
    svc.store.close()


def test_tokens_as_intels_sha512_hashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    admin, user = "s3cret-admin", "s3cret-user"
    assert token_hash(admin) == hashlib.sha512(admin.encode()).hexdigest()
    tokens = load_tokens(admin_hash=token_hash(admin).upper(), user_hash=token_hash(user))
    assert tokens.admin_ok(admin) and not tokens.admin_ok(user) and not tokens.admin_ok(token_hash(admin))
    tokens.check_user(user, None)
    tokens.check_user(None, admin)  # the admin token registers too
    (tmp_path / "admin").write_text(admin + "\n")
    assert load_tokens(admin_file=str(tmp_path / "admin")).admin_hash == token_hash(admin)  # plaintext still works
    monkeypatch.setenv("EAA_PCCS_USER_TOKEN_HASH", token_hash(user))
    assert load_tokens().user_hash == token_hash(user)
    monkeypatch.delenv("EAA_PCCS_USER_TOKEN_HASH")
    for kw in ({"admin_hash": "abc"}, {"admin_hash": "z" * 128},
               {"admin_hash": token_hash(admin), "admin_file": str(tmp_path / "admin")}):
        with pytest.raises(ConfigError):
            load_tokens(**kw)  # type: ignore[arg-type]
    # registration: closed without tokens unless opened explicitly
    from eaa.services.pccs.errors import Forbidden, Unauthorized
    with pytest.raises(Forbidden):
        Tokens().check_user(None, None)
    Tokens(open_registration=True).check_user(None, None)
    with pytest.raises(Unauthorized):
        tokens.check_user("wrong", "wrong")


def test_rate_limiter_per_client() -> None:
    now = [100.0]
    rl = RateLimiter(rate=1.0, burst=3, max_clients=2, clock=lambda: now[0])
    for _ in range(3):
        rl.check("a")
    with pytest.raises(TooManyRequests) as e:
        rl.check("a")
    assert e.value.retry_after == 1
    rl.check("b")  # another client has its own bucket
    now[0] += 1.0
    rl.check("a")
    rl.check("c")  # the table stays bounded: the least recent client is forgotten
    assert len(rl._buckets) == 2
    with pytest.raises(ConfigError):
        RateLimiter(rate=0, burst=1)


def test_sqlite_database_is_created_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        db = tmp_path / "pccs.sqlite3"
        store = open_store(str(db))
        store.put(Record(PLATFORM, "AB/0000", b"{}", {}))
        for f in (db, Path(str(db) + "-wal")):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        store.close()
    finally:
        os.umask(old)


def _rec(kind: str, key: str) -> Record:
    return Record(kind, key, b"", {})


def test_batches_never_split_a_platform() -> None:
    recs = [_rec(TCB, "sgx/v4/A/standard"), _rec(PLATFORM, "Q1/0000"), _rec(ROOT_CRL, "root"),
            _rec(PCK_CERT, "Q1/C1/P1/0000"), _rec(PCK_CERT, "Q2/C/P/0001"), _rec(PCK_CERT, "Q1/C2/P2/0000"),
            _rec(PLATFORM, "Q2/0001")]
    batches = import_batches(recs, 1)
    assert sum(len(b) for b in batches) == len(recs)
    for batch in batches:
        platforms = {r.key.split("/")[0] for r in batch if r.kind in (PLATFORM, PCK_CERT)}
        for q in platforms:
            assert {r.key for r in recs if r.key.startswith(q + "/")} <= {r.key for r in batch}
    assert [len(b) for b in import_batches(recs, 3)] == [1, 3, 3]  # TCB; Q1's three; root CRL and Q2's two
    assert [len(b) for b in import_batches(recs, 5)] == [5, 2]  # grows to whole units, never splits one
    assert import_batches(recs, 100) == [[recs[0], recs[1], recs[3], recs[5], recs[2], recs[4], recs[6]]]


def test_batch_import_keeps_registration_and_certificate_together(tmp_path: Path) -> None:
    case = vector_case("intel-qvl-sample/sgx_v3_synthetic_test_root")
    svc = make_service(str(tmp_path / "db.sqlite3"), mode=Mode.OFFLINE, anchors=case.anchors)
    records = records_from_platform_collateral(document(case), case.api, now=float(case.verify_at))
    batches: list[list[str]] = []
    put_many = svc.store.put_many

    def recording(rs: Any) -> int:
        rs = list(rs)
        batches.append([r.kind for r in rs])
        return put_many(rs)

    svc.store.put_many = recording  # type: ignore[method-assign]
    assert svc.import_records(records, batch_size=1) == len(records)
    together = [b for b in batches if PLATFORM in b]
    assert len(together) == 1 and PCK_CERT in together[0]
    assert all(len(b) == 1 for b in batches if PLATFORM not in b)
    svc.store.close()


# ---- no secret or file content in any message ----

MARKER = "Zq7SECRETMARKERx9"


def _key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_and_key(tmp_path: Path) -> tuple[Path, Path]:
    import datetime as dt

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pccs")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    c, k = tmp_path / "server.pem", tmp_path / "server.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return c, k


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(tmp_path)}
    for k in ("EAA_PCCS_ADMIN_TOKEN", "EAA_PCCS_USER_TOKEN", "EAA_DEBUG"):
        env.pop(k, None)
    return subprocess.run([sys.executable, "-m", "eaa.cli.pccs_server", *args], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=env)


def test_no_file_content_in_any_error(tmp_path: Path) -> None:
    """Every option that reads a file, given a private key (or a file holding a marker): the error names the
    file, never repeats what is in it."""
    key = tmp_path / "key.pem"
    key.write_bytes(_key_pem())
    key_body = key.read_text().splitlines()[1]  # a line of the key's base64
    marked = tmp_path / "marked.txt"
    marked.write_text(f"token with spaces {MARKER}\n")
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps({"format": "eaa-pccs-bundle", "version": 1, "records": [
        {"kind": MARKER, "key": MARKER, "body": "", "meta": {}}]}))
    bundle2 = tmp_path / "bundle2.json"
    bundle2.write_text(json.dumps({"format": "eaa-pccs-bundle", "version": MARKER, "records": []}))
    cert, server_key = _cert_and_key(tmp_path)
    token = tmp_path / "token"
    token.write_text("a-valid-token\n")
    db = str(tmp_path / "x.sqlite3")
    cases = [
        ["import", str(tmp_path), "--url", "http://127.0.0.1:9", "--admin-token-file", str(key)],
        ["export", "--url", "http://127.0.0.1:9", "--admin-token-file", str(marked)],
        ["serve", "--insecure-http", "--mode", "offline", "--admin-token-file", str(key), "--db", db],
        ["serve", "--insecure-http", "--mode", "offline", "--user-token-file", str(marked), "--db", db],
        ["serve", "--insecure-http", "--upstream-api-key-file", str(key), "--db", db],
        ["serve", "--cert", str(server_key), "--key", str(cert), "--mode", "offline", "--db", db],
        ["serve", "--cert", str(cert), "--key", str(marked), "--mode", "offline", "--db", db],
        ["import", str(key), "--db", db],
        ["import", str(marked), "--db", db],
        ["import", str(bundle), "--db", db],
        ["import", str(bundle2), "--db", db],
        ["import", str(bundle), "--db", db, "--trust-root", str(key)],
        ["import", str(bundle), "--db", db, "--amd-root", str(marked)],
        ["serve", "--insecure-http", "--mode", "offline", "--import", str(key), "--db", db],
        ["serve", "--insecure-http", "--upstream-ca", str(key), "--db", db],
        ["import", str(tmp_path), "--url", "https://127.0.0.1:9", "--admin-token-file", str(token), "--ca", str(key)],
        ["export", "--url", "https://127.0.0.1:9", "--admin-token-file", str(token), "--ca", str(marked)],
    ]
    for args in cases:
        r = _run(args, tmp_path)
        out = r.stdout + r.stderr
        assert r.returncode not in (0, 70), (args, out)
        assert "Traceback" not in out and "internal error" not in out, (args, out)
        assert key_body not in out and "PRIVATE KEY" not in out and MARKER not in out, (args, out)
        assert len(r.stderr.strip().splitlines()) == 1, (args, out)
        if "--ca" in args or "--upstream-ca" in args:
            assert "CA bundle" in r.stderr, (args, out)


def test_serve_bad_input_is_one_line_and_a_documented_exit(tmp_path: Path) -> None:
    cert, key = _cert_and_key(tmp_path)
    db = str(tmp_path / "x.sqlite3")
    base = ["serve", "--mode", "offline", "--db", db]
    cases = [
        (["--cert", str(tmp_path / "missing.pem"), "--key", str(key)], "cannot read the TLS certificate"),
        (["--cert", str(cert), "--key", str(tmp_path / "missing.key")], "cannot read the TLS key"),
        (["--cert", str(key), "--key", str(cert)], "do not load as a pair"),
        (["--insecure-http", "--listen", "127.0.0.1:70000"], "70000"),
        (["--insecure-http", "--listen", "127.0.0.1:-1"], "-1"),
        (["--insecure-http", "--listen", "nonsense"], "HOST:PORT"),
        (["--insecure-http", "--upstream-timeout", "nan"], "upstream-timeout"),
        (["--insecure-http", "--upstream-timeout", "-1"], "upstream-timeout"),
        (["--insecure-http", "--upstream-retries", "1e999"], "upstream-retries"),
        (["--insecure-http", "--registration-rate", "-5"], "registration-rate"),
        (["--insecure-http", "--min-refresh", "inf"], "min-refresh"),
        (["--insecure-http", "--admin-token-hash", "1234"], "SHA-512"),
        (["--insecure-http", "--refresh-every", "1s"], "refresh interval"),
    ]
    for extra, needle in cases:
        r = _run(base + extra, tmp_path)
        assert r.returncode == 2, (extra, r.stderr)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, (extra, r.stderr)
        assert needle in r.stderr, (extra, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (extra, r.stderr)
    r = _run(["import", str(tmp_path), "--db", db, "--batch-size", "-3"], tmp_path)
    assert r.returncode == 2 and "batch-size" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # an unreachable server is a transport error (12), as in the other commands
    bundle = tmp_path / "empty.json"
    bundle.write_text(json.dumps({"format": "eaa-pccs-bundle", "version": 1, "records": []}))
    (tmp_path / "token").write_text("t0ken\n")
    r = _run(["import", str(bundle), "--url", "http://127.0.0.1:9", "--admin-token-file", str(tmp_path / "token")],
             tmp_path)
    assert r.returncode == 12 and "TRANSPORT_ERROR" in r.stderr and "cannot reach" in r.stderr
