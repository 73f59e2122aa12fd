"""Rows stream from the database: a server-side cursor on PostgreSQL, fetchmany elsewhere."""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING

import pytest

from airflow_provider_metronome.sync.sources import (
    bucket,
    iter_query_rows,
    partition_sql,
    register_sqlite_functions,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def test_sqlite_rows_become_dicts_with_lower_case_columns(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "w.db")
    db.execute("CREATE TABLE t (Customer_ID TEXT, n INTEGER)")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(f"c{i}", i) for i in range(25)])
    fetches: list[int] = []

    class Counting:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def cursor(self) -> object:
            cur = self.conn.cursor()

            class Cur:
                description = property(lambda _: cur.description)

                def execute(self, *a: object) -> None:
                    cur.execute(*a)  # type: ignore[arg-type]

                def fetchmany(self, n: int) -> list[tuple[object, ...]]:
                    rows = cur.fetchmany(n)
                    fetches.append(len(rows))
                    return rows

                def close(self) -> None:
                    cur.close()

            return Cur()

    rows = list(iter_query_rows(Counting(db), "SELECT * FROM t WHERE n < ?", (20,), fetch_size=8))
    assert rows[0] == {"customer_id": "c0", "n": 0}
    assert len(rows) == 20
    assert fetches == [8, 8, 4, 0]


@pytest.mark.postgres
def test_postgres_uses_a_server_side_cursor() -> None:
    url = os.environ.get("METRONOME_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRONOME_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server)")
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        rows = iter_query_rows(conn, "SELECT g AS n FROM generate_series(1, 100000) g", fetch_size=500)
        first = next(rows)
        assert first == {"n": 1}
        with conn.cursor() as probe:
            probe.execute("SELECT name FROM pg_cursors")
            open_cursors = [name for (name,) in probe.fetchall()]
        assert any(name.startswith("metronome_sync_") for name in open_cursors), open_cursors
        assert sum(1 for _ in rows) == 99_999
    finally:
        conn.rollback()
        conn.close()


# -- partition SQL: every row lands in exactly one partition, as Python decides ------------------

_KEYS = [
    "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01",
    "0C8B5A52-7C1E-4F0E-9A3B-0C1D2E3F4A02",  # upper case: UUIDs are case-insensitive
    "  0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a03 ",
    *[f"00000000-0000-4000-8000-{i:012d}" for i in range(60)],
]
# Rows keyed by alias, or by nothing at all, NULL and '' alike, or by an id in an unusual
# shape (placed once parsed): every partition reads them.
_UNKEYED = [(None, "acme"), ("", "globex"), ("   ", "initech"), (None, None), ("", ""),
            ("\t0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a05", None), ("0c8b5a527c1e4f0e9a3b0c1d2e3f4a06", None)]  # fmt: skip


def _partition_rows(
    run: Callable[[str], list[tuple[object, ...]]], dialect: str, partitions: int
) -> list[set[object]]:
    from airflow_provider_metronome.sync.sources import customer_key, placed_by_sql

    shares = []
    for p in range(partitions):
        wrapped = partition_sql("SELECT customer_id, ingest_alias FROM t", dialect, p, partitions)
        assert wrapped is not None
        got = run(wrapped)
        keyed = {row[0] for row in got if placed_by_sql(customer_key({"customer_id": row[0]}))}
        unkeyed = {row for row in got if not placed_by_sql(customer_key({"customer_id": row[0]}))}
        assert unkeyed == set(_UNKEYED), "rows without a customer_id reach every partition"
        assert all(bucket(customer_key({"customer_id": k}), partitions) == p for k in keyed), (
            "SQL and Python put each customer_id in the same partition"
        )
        shares.append(keyed)
    return shares


def test_sqlite_partition_sql_splits_customer_ids_as_python_does(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "w.db")
    register_sqlite_functions(db)
    db.execute("CREATE TABLE t (customer_id TEXT, ingest_alias TEXT)")
    db.executemany("INSERT INTO t VALUES (?, 'x')", [(k,) for k in _KEYS])
    db.executemany("INSERT INTO t VALUES (?, ?)", _UNKEYED)
    shares = _partition_rows(lambda sql: db.execute(sql).fetchall(), "sqlite", 4)
    assert sorted(k for share in shares for k in share) == sorted(_KEYS), "no row lost, none twice"
    assert all(shares), "every partition gets some customers"


@pytest.mark.postgres
def test_postgres_partition_sql_splits_customer_ids_as_python_does() -> None:
    url = os.environ.get("METRONOME_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRONOME_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server)")
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE t (customer_id TEXT, ingest_alias TEXT)")
            cur.executemany("INSERT INTO t VALUES (%s, 'x')", [(k,) for k in _KEYS])
            cur.executemany("INSERT INTO t VALUES (%s, %s)", _UNKEYED)

        def run(sql: str) -> list[tuple[object, ...]]:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())

        shares = _partition_rows(run, "postgresql", 5)
        assert sorted(k for share in shares for k in share) == sorted(_KEYS)
        # A native uuid column works the same.
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE u (customer_id uuid)")
            cur.executemany("INSERT INTO u VALUES (%s::uuid)", [(k.strip(),) for k in _KEYS])
        total = 0
        for p in range(3):
            sql = partition_sql("SELECT customer_id FROM u", "postgresql", p, 3)
            assert sql is not None
            for (value,) in run(sql):
                assert bucket(str(value), 3) == p
                total += 1
        assert total == len(_KEYS)
    finally:
        conn.rollback()
        conn.close()


@pytest.mark.parametrize("dialect", ["mysql", "snowflake", "bigquery"])
def test_other_dialects_hash_the_trimmed_lower_case_customer_id(dialect: str) -> None:
    sql = partition_sql("SELECT * FROM t", dialect, 2, 8)
    assert sql is not None
    assert "md5(" in sql
    assert "lower(trim(" in sql
    assert sql.endswith(", 8) = 2")
    assert "WHERE NOT (" in sql
    assert "{8}-[0-9a-fA-F]{4}-" in sql, "rows without a canonical customer_id reach every partition"
    assert partition_sql("SELECT 1", "oracle", 0, 2) is None, "unknown dialects: every task reads all rows"
