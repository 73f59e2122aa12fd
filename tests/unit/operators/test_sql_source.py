"""Bad SQL fails without retry; errors of the connection stay retryable. Real SQLite, and PostgreSQL when set up."""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_metronome.operators.sql_source import is_query_error, sql_rows

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE rows (customer_id TEXT, billing_provider TEXT)")
    db.execute("INSERT INTO rows VALUES ('c1', 'stripe')")
    db.commit()
    db.close()
    return path


def _sqlite_error(path: Path, sql: str) -> sqlite3.Error:
    db = sqlite3.connect(path)
    try:
        db.execute(sql)
    except sqlite3.Error as err:
        return err
    finally:
        db.close()
    raise AssertionError(f"{sql!r} ran")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM no_such_table",
        "SELECT no_such_column FROM rows",
        "SELEC * FROM rows",
        "SELECT * FROM rows WHERE",
        "SELECT apm_unknown_function(customer_id) FROM rows",
        "SELECT customer_id FROM rows a JOIN rows b",
        "SELECT count(customer_id, 1) FROM rows",
        "SELECT ` FROM rows",
    ],
)
def test_sqlite_errors_in_the_query_are_permanent(warehouse: Path, sql: str) -> None:
    assert is_query_error(_sqlite_error(warehouse, sql))


def test_a_locked_sqlite_database_is_transient(warehouse: Path) -> None:
    holder = sqlite3.connect(warehouse)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        reader = sqlite3.connect(warehouse, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="database is locked") as info:
            reader.execute("SELECT * FROM rows")
        reader.close()
    finally:
        holder.close()
    assert not is_query_error(info.value)


def test_a_sqlite_file_that_cannot_be_opened_is_transient(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError) as info:
        sqlite3.connect(tmp_path / "no" / "dir.db")
    assert not is_query_error(info.value)


def _driver_error(module: str, name: str, bases: tuple[type, ...] = (Exception,), **attrs: Any) -> Exception:
    cls = type(name, bases, {"__module__": module})
    err: Exception = cls("driver text")
    for key, value in attrs.items():
        setattr(err, key, value)
    return err


@pytest.mark.parametrize(
    ("err", "permanent"),
    [
        (_driver_error("psycopg2.errors", "UndefinedTable", pgcode="42P01"), True),
        (_driver_error("psycopg2.errors", "SyntaxError", pgcode="42601"), True),
        (_driver_error("psycopg.errors", "UndefinedColumn", sqlstate="42703"), True),
        (_driver_error("psycopg2", "OperationalError", pgcode="08006"), False),
        (_driver_error("psycopg2", "ProgrammingError", pgcode="08001"), False),  # the SQLSTATE decides
        (_driver_error("snowflake.connector.errors", "ProgrammingError"), True),
        (_driver_error("pymysql.err", "OperationalError"), False),
        (_driver_error("psycopg2", "OperationalError", pgcode=None), False),  # server down: no SQLSTATE
        (ValueError("not a database error"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_drivers_are_told_apart_by_sqlstate_class_then_by_dbapi_class(
    err: Exception, permanent: bool
) -> None:
    assert is_query_error(err) is permanent


def test_a_programming_error_subclass_is_permanent() -> None:
    base = _driver_error("somedb", "ProgrammingError")
    sub = _driver_error("somedb", "NoSuchTable", bases=(type(base),))
    assert is_query_error(sub)


class _Tracked:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.closed = False

    def cursor(self) -> sqlite3.Cursor:
        return self.connection.cursor()

    def close(self) -> None:
        self.closed = True
        self.connection.close()


def test_bad_sql_fails_naming_the_connection_and_quoting_the_database(warehouse: Path) -> None:
    connection = _Tracked(sqlite3.connect(warehouse))
    rows = sql_rows(connection, "SELECT * FROM billing_rows", None, conn_id="warehouse", fetch_size=10)
    with pytest.raises(AirflowFailException) as info:
        list(rows)
    assert str(info.value) == (
        "The SQL on connection 'warehouse' failed; retrying cannot fix the query: "
        "OperationalError: no such table: billing_rows"
    )
    assert connection.closed


def test_good_sql_streams_and_closes_and_other_errors_pass_through(warehouse: Path) -> None:
    connection = _Tracked(sqlite3.connect(warehouse))
    assert list(sql_rows(connection, "SELECT * FROM rows", None, conn_id="w", fetch_size=1)) == [
        {"customer_id": "c1", "billing_provider": "stripe"}
    ]
    assert connection.closed
    holder = sqlite3.connect(warehouse)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = _Tracked(sqlite3.connect(warehouse, timeout=0))
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            list(sql_rows(locked, "SELECT * FROM rows", None, conn_id="w", fetch_size=1))
        assert locked.closed
    finally:
        holder.close()


@pytest.mark.postgres
def test_postgres_errors_of_the_query_are_permanent_and_of_the_connection_transient() -> None:
    url = os.environ.get("METRONOME_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRONOME_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server)")
    import psycopg2

    for sql in ("SELECT * FROM apm_no_such_table", "SELECT apm_no_such_column", "SELEC 1"):
        conn = psycopg2.connect(url)
        try:
            with pytest.raises(psycopg2.Error) as info, conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()
        assert info.value.pgcode.startswith("42"), info.value.pgcode
        assert is_query_error(info.value), sql
    with pytest.raises(psycopg2.OperationalError) as down:
        psycopg2.connect(url, port=1, connect_timeout=2)
    assert not is_query_error(down.value)


@pytest.mark.postgres
def test_psycopg3_errors_are_told_apart_the_same_way() -> None:
    url = os.environ.get("METRONOME_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRONOME_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server)")
    psycopg = pytest.importorskip("psycopg")

    with psycopg.connect(url) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute("SELECT * FROM apm_no_such_table")
    assert info.value.sqlstate == "42P01"
    assert is_query_error(info.value)
    with pytest.raises(psycopg.OperationalError) as down:
        psycopg.connect(url, port=1, connect_timeout=2)
    assert not is_query_error(down.value)
