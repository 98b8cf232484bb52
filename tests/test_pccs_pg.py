"""The storage backends, SQLite and PostgreSQL, behind the same tests; PostgreSQL runs a real server.

The PostgreSQL server is started here in a temporary directory when its binaries are installed; if
they are not, these tests skip locally, and fail under CI (CI=true), where .ci/run installs them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from eaa.collateral.fetch import fetch_collateral_for_quote
from eaa.services.pccs import Mode, open_store
from eaa.services.pccs.pgtemp import PostgresUnavailable, TempPostgres
from eaa.services.pccs.records import Record
from eaa.services.pccs.store import Store
from eaa.verify.dcap import QuoteVerifier
from test_pccs_support import client_for, fake_upstream, intel_routes, make_service, outcome, running, vector_case


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    try:
        pg = TempPostgres().start()
    except PostgresUnavailable as e:
        msg = f"PostgreSQL unavailable: {e}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        yield pg.url
    finally:
        pg.stop()


_pg_db_counter = iter(range(1_000_000))


def new_database(pg_url: str) -> str:
    """A fresh database on the test server, so each test starts empty."""
    import psycopg

    name = f"t{os.getpid()}_{next(_pg_db_counter)}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    return new_database(request.getfixturevalue("pg_url"))


def _rec(i: int, kind: str = "tcb", body: bytes = b"") -> Record:
    return Record(kind, f"sgx/v4/{i:012X}/standard", body or f"body-{i}".encode() + bytes(range(256)),
                  {"issuer_chain": f"chain {i}\n"}, 1000.0 + i, 5.0, "import")


def test_store_contract(store_url: str) -> None:
    s: Store = open_store(store_url)
    try:
        assert s.get("tcb", "missing") is None and s.count() == 0
        s.put(_rec(1))
        assert s.get("tcb", _rec(1).key) == _rec(1)
        assert s.put_many([_rec(i) for i in range(2, 12)]) == 10
        s.put(_rec(1, body=b"replaced"))  # upsert
        assert s.get("tcb", _rec(1).key).body == b"replaced"  # type: ignore[union-attr]
        assert s.count() == 11
        assert [r.key for r in s.scan("tcb", "sgx/v4/00000000000")][:2] == [_rec(1).key, _rec(2).key]
        assert list(s.scan("pckcrl")) == []
        s.put(Record("pckcrl", "processor", b"\x30\x00", {}, None, 1.0))
        assert s.get("pckcrl", "processor").next_update is None  # type: ignore[union-attr]
        assert [r.kind for r in s.scan()][0] == "pckcrl"
        s.ping()
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises for a NULL body; the point is the rollback
            s.put_many([_rec(100), Record("tcb", "k", None, {}, None, 0.0)])  # type: ignore[arg-type]
        assert s.get("tcb", _rec(100).key) is None
    finally:
        s.close()


def test_concurrent_writers_and_readers(store_url: str) -> None:
    s = open_store(store_url)
    errors: list[BaseException] = []

    def work(base: int) -> None:
        try:
            for i in range(base, base + 25):
                s.put(_rec(i))
                assert s.get("tcb", _rec(i).key) is not None
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k * 100,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and s.count() == 100
    s.close()


def test_lazy_flow_on_postgresql(pg_url: str) -> None:
    store_url = new_database(pg_url)
    case = vector_case("dcap-qvl/tdx_v4")
    v = QuoteVerifier(case.anchors, cache_size=0)
    expected = outcome(lambda: v.verify(case.quote, case.collateral, at=case.verify_at))
    with fake_upstream(intel_routes(case)) as up:
        svc = make_service(store_url, mode=Mode.LAZY, upstream_url=up.url, anchors=case.anchors,
                           clock=lambda: float(case.verify_at))
        with running(svc) as srv:
            for _ in range(2):
                coll = fetch_collateral_for_quote(case.quote, client_for(srv.url, case))
                assert outcome(lambda coll=coll: v.verify(case.quote, coll, at=case.verify_at)) == expected
            assert up.total == 4
        # a second replica on the same database serves OFFLINE what the first fetched
        replica = make_service(store_url, mode=Mode.OFFLINE, anchors=case.anchors)
        with running(replica) as srv:
            coll = fetch_collateral_for_quote(case.quote, client_for(srv.url, case))
            assert outcome(lambda coll=coll: v.verify(case.quote, coll, at=case.verify_at)) == expected


def test_bad_database_urls(tmp_path: Path) -> None:
    from eaa.errors import ConfigError

    for url in ("sqlite:///:memory:", "mysql://x/y", str(tmp_path / "no" / "such" / "dir.db")):
        with pytest.raises(ConfigError):
            open_store(url)
    from eaa.services.pccs.store_postgres import PostgresStore

    with pytest.raises(ConfigError, match="PostgreSQL"):
        PostgresStore("postgresql://nobody@127.0.0.1:9/none", connect_timeout=1)
