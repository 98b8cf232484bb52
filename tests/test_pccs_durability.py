"""kill -9 during an import loses no committed record, on SQLite (WAL, synchronous=FULL) and PostgreSQL.

The import runs in a child process that prints a line after each committed batch; the test kills it
with SIGKILL mid-way, then checks that every record the child reported as committed is present and
intact, and that the database is consistent.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from eaa.services.pccs import open_store
from eaa.services.pccs.records import TCB, Record, bundle_json, tcb_key
from eaa.sim import pki, tcbinfo
from test_pccs_pg import new_database, pg_url  # noqa: F401 - pg_url is a fixture

N_RECORDS = 1500
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[Record]]:
    """Many validly signed TCB infos (distinct FMSPCs) under a test root, as an eaa-pccs bundle."""
    d = tmp_path_factory.mktemp("bundle")
    root_key, sign_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = pki.make_ca(pki.name("EAA TEST Root CA", "durability"), root_key, None, root_key, 1, NOW, path_length=1)
    signer = pki.make_leaf(pki.name("EAA TEST TCB Signing", "durability"), sign_key, root, root_key, 2, NOW)
    pem = serialization.Encoding.PEM
    chain = (signer.public_bytes(pem) + root.public_bytes(pem)).decode()
    records = []
    for i in range(N_RECORDS):
        fmspc = i.to_bytes(6, "big")
        body = tcbinfo.tcb_info_body("sgx", fmspc=fmspc, now=NOW)
        text = tcbinfo.signed_response("tcbInfo", body, sign_key).encode()
        records.append(Record(TCB, tcb_key("sgx", 4, fmspc.hex(), "standard"), text, {"issuer_chain": chain},
                              fetched_at=1.0, source="import"))
    (d / "root.pem").write_bytes(root.public_bytes(pem))
    (d / "bundle.json").write_text(bundle_json(records, now=1.0))
    return d / "bundle.json", d / "root.pem", records


def _kill_mid_import(db: str, bundle: Path, root: Path) -> int:
    cmd = [sys.executable, "-m", "eaa.cli.pccs_server", "import", str(bundle), "--db", db,
           "--trust-root", str(root), "--batch-size", "1", "--progress"]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    last = 0
    for line in child.stdout:
        if line.startswith("committed "):
            last = int(line.split()[1])
            if last >= 40:
                break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""
    assert 40 <= last < N_RECORDS, f"the import was not interrupted (last committed: {last})"
    return last


def _check(db: str, committed: int, records: list[Record]) -> None:
    store = open_store(db)
    try:
        n = store.count()
        assert committed <= n < N_RECORDS
        for rec in records[:committed]:  # written in bundle order
            got = store.get(rec.kind, rec.key)
            assert got is not None, f"committed record {rec.key} lost"
            assert got.body == rec.body and got.meta == rec.meta
    finally:
        store.close()


def test_kill_9_during_sqlite_import(bundle: tuple[Path, Path, list[Record]], tmp_path: Path) -> None:
    path, root, records = bundle
    db = str(tmp_path / "pccs.sqlite3")
    committed = _kill_mid_import(db, path, root)
    _check(db, committed, records)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_kill_9_during_postgresql_import(bundle: tuple[Path, Path, list[Record]], pg_url: str) -> None:
    path, root, records = bundle
    db = new_database(pg_url)
    committed = _kill_mid_import(db, path, root)
    _check(db, committed, records)
