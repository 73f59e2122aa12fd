"""Row sources: a list of mappings, or a SQL query streamed from any DB-API connection."""

from __future__ import annotations

import uuid
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
