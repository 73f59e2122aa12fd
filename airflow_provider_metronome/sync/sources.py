"""Row sources: a list of mappings, or a SQL query streamed from any DB-API connection."""

from __future__ import annotations

import uuid
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence


def _is_psycopg(connection: Any) -> bool:
    return type(connection).__module__.split(".")[0] in ("psycopg2", "psycopg")


def iter_query_rows(
    connection: Any,
    sql: str,
    parameters: Mapping[str, Any] | Sequence[Any] | None = None,
    *,
    fetch_size: int = 2000,
) -> Iterator[dict[str, Any]]:
    """Run ``sql`` and yield each row as a dict of column name → value, ``fetch_size`` at a time.

    PostgreSQL drivers fetch a whole result on ``execute`` unless the cursor is named
    (server-side), so for them a named cursor is used; other drivers (SQLite,
    Snowflake, ...) stream with ``fetchmany``.

    :param connection: a DB-API 2 connection.
    :param sql: the query.
    :param parameters: query parameters, in the driver's style.
    :param fetch_size: rows fetched per round trip.
    """
    if _is_psycopg(connection):
        cursor = connection.cursor(name=f"metronome_sync_{uuid.uuid4().hex[:12]}")
        cursor.itersize = fetch_size
    else:
        cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql, parameters)
        names: list[str] | None = None
        while True:
            batch = cursor.fetchmany(fetch_size)
            if not batch:
                break
            if names is None:
                names = [str(d[0]).lower() for d in cursor.description]
            for values in batch:
                yield dict(zip(names, values, strict=True))
    finally:
        cursor.close()


def bucket(key: str, partitions: int) -> int:
    """The partition of a customer key, the same in Python and in SQLite (``apm_bucket``)."""
    return zlib.crc32(key.encode("utf-8")) % partitions


# Per-dialect SQL for "which partition does this row's customer key fall in". Every
# row of a customer must land in the same partition (duplicates and conflicts are
# judged within one), so the key is the customer column the row gives.
_BUCKET_SQL = {
    "postgresql": "mod(abs(hashtext({key})::bigint), {n})",
    "postgres": "mod(abs(hashtext({key})::bigint), {n})",
    "mysql": "mod(crc32({key}), {n})",
    "snowflake": "mod(abs(hash({key})), {n})",
    "bigquery": "mod(abs(farm_fingerprint({key})), {n})",
    "sqlite": "apm_bucket({key}, {n})",
}
_KEY_SQL = "coalesce(source.ingest_alias, cast(source.customer_id as varchar(64)))"


def partition_sql(sql: str, dialect: str, partition: int, partitions: int) -> str | None:
    """Wrap ``sql`` so it returns only the rows of one partition, or ``None`` for an unknown dialect.

    :param sql: the user's query (must return ``ingest_alias`` and ``customer_id`` columns).
    :param dialect: the database dialect (``postgresql``, ``sqlite``, ``snowflake``, ...).
    :param partition: 0-based partition index.
    :param partitions: number of partitions.
    """
    template = _BUCKET_SQL.get(dialect.lower())
    if template is None:
        return None
    inner = sql.strip().rstrip(";")
    expression = template.format(key=_KEY_SQL, n=int(partitions))
    return f"SELECT * FROM ({inner}) source WHERE {expression} = {int(partition)}"


def register_sqlite_bucket(connection: Any) -> bool:
    """Give a sqlite3 connection the ``apm_bucket`` function; return whether it is one."""
    import sqlite3

    if not isinstance(connection, sqlite3.Connection):
        return False
    connection.create_function(
        "apm_bucket", 2, lambda key, n: bucket(str(key or ""), int(n)), deterministic=True
    )
    return True


def row_partition_key(row: Mapping[str, Any]) -> str:
    """The customer key of a row, as :func:`partition_sql` computes it in SQL."""
    value = row.get("ingest_alias")
    if value is None or (isinstance(value, str) and not value.strip()):
        value = row.get("customer_id")
    return "" if value is None else str(value)
