"""Rows from SQL on any Airflow DB-API connection, for the sync operator.

A query the database refuses as written (a syntax error, an unknown table or column)
fails the same way however often it runs: :func:`sql_rows` fails such a task at once
(:class:`AirflowFailException`), naming the connection and quoting the database's
own message. Errors of the connection (the server down or restarting, a locked
SQLite file) may pass, and stay the task's retries' business.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

# SQLSTATE classes (the first two characters): 42 "syntax error or access rule
# violation", 08 "connection exception" (SQL standard; PostgreSQL appendix A,
# https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PERMANENT_SQLSTATE_CLASSES = ("42",)
_TRANSIENT_SQLSTATE_CLASSES = ("08",)
# sqlite3 raises OperationalError both for a query its parser refuses (these texts,
# SQLITE_ERROR) and for a database it cannot use right now ("database is locked",
# "unable to open database file", "disk I/O error"), which may pass
# (https://www.sqlite.org/rescode.html).
_SQLITE_PERMANENT = (
    "no such table",
    "no such column",
    "no such function",
    "syntax error",
    "incomplete input",
    "unrecognized token",
    "ambiguous column name",
    "wrong number of arguments to function",
    "misuse of aggregate",
)


def _sqlstate(err: BaseException) -> str | None:
    # psycopg2 names it pgcode; psycopg 3, Snowflake and others sqlstate.
    for name in ("pgcode", "sqlstate"):
        value = getattr(err, name, None)
        if isinstance(value, str) and len(value) == 5:
            return value.upper()
    return None


def _is_a(err: BaseException, class_name: str) -> bool:
    # By name: every DB-API driver defines its own ProgrammingError (PEP 249).
    return any(cls.__name__ == class_name for cls in type(err).__mro__)


def is_query_error(err: BaseException) -> bool:
    """Whether ``err`` says the SQL itself is wrong, so running it again cannot succeed.

    True for a SQLSTATE of class 42, a DB-API ``ProgrammingError``, and SQLite's
    ``OperationalError`` for an unknown table, column or function or a syntax error
    (the query as written); false for a SQLSTATE of class 08 (connection exception)
    and anything else.

    :param err: what the driver raised.
    """
    state = _sqlstate(err)
    if state is not None:
        if state.startswith(_TRANSIENT_SQLSTATE_CLASSES):
            return False
        if state.startswith(_PERMANENT_SQLSTATE_CLASSES):
            return True
    if _is_a(err, "ProgrammingError"):
        return True
    if type(err).__module__.split(".")[0] == "sqlite3" and _is_a(err, "OperationalError"):
        text = str(err).lower()
        return any(marker in text for marker in _SQLITE_PERMANENT)
    return False


def open_sql_source(conn_id: str) -> tuple[Any, Any]:
    """The DB-API hook of ``conn_id`` and a new connection of it.

    :param conn_id: an Airflow connection whose hook is a ``DbApiHook``.
    :raises AirflowFailException: the connection's hook is not a SQL hook.
    """
    from airflow.providers.common.compat.sdk import BaseHook
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    hook = BaseHook.get_connection(conn_id).get_hook()
    if not isinstance(hook, DbApiHook):
        raise AirflowFailException(
            f"Connection {conn_id!r} gives a {type(hook).__name__}, not a SQL (DbApiHook) connection"
        )
    return hook, hook.get_conn()


def sql_rows(
    connection: Any,
    sql: str,
    parameters: Mapping[str, Any] | Sequence[Any] | None,
    *,
    conn_id: str,
    fetch_size: int,
) -> Iterator[Mapping[str, Any]]:
    """Yield the rows of ``sql``, then close ``connection`` at once.

    The sync reads every row before it talks to Metronome for long; a connection kept
    open meanwhile would sit "idle in transaction" on the warehouse.

    :param connection: a DB-API connection (closed when the rows are read, or on error).
    :param sql: the query.
    :param parameters: its parameters, in the driver's style.
    :param conn_id: the Airflow connection, for messages.
    :param fetch_size: rows fetched per round trip.
    :raises AirflowFailException: the database refused the query as written (see :func:`is_query_error`).
    """
    from airflow_provider_metronome.sync.sources import iter_query_rows

    try:
        yield from iter_query_rows(connection, sql, parameters, fetch_size=fetch_size)
    except Exception as err:
        if not is_query_error(err):
            raise
        raise AirflowFailException(
            f"The SQL on connection {conn_id!r} failed; retrying cannot fix the query: "
            f"{type(err).__name__}: {str(err).strip()}"
        ) from err
    finally:
        connection.close()
