"""Rows stream from the database: a server-side cursor on PostgreSQL, fetchmany elsewhere."""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING

import pytest

from airflow_provider_metronome.sync.sources import iter_query_rows

if TYPE_CHECKING:
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
