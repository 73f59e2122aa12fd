"""Row sources: a list of mappings, or a SQL query streamed from any DB-API connection."""

from __future__ import annotations

import hashlib
import re
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


def bucket(key: str, partitions: int) -> int:
    """The share of a customer key: the first 32 bits of its MD5, modulo ``partitions``.

    MD5 because every warehouse computes it the same way, so the SQL of
    :func:`partition_sql` and this function agree on every row.
    """
    return int(hashlib.md5(key.encode("utf-8")).hexdigest()[:8], 16) % partitions


# Only keys that are a canonical UUID (8-4-4-4-12 ASCII hex digits, any case) are
# placed by SQL. Any other text (32 hex digits, braces, tabs or newlines around it,
# non-ASCII letters whose lower case differs between Python and the database) may parse
# to a customer id that hashes elsewhere, so such rows reach every partition and are
# placed once parsed. Python and every dialect's SQL test the same regular expression
# on the same (trimmed, not case-folded) text, so they always agree.
_HEX = "[0-9a-fA-F]"
_UUID = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_UUID_TEXT = re.compile(_UUID, re.ASCII)
# In SQL the text gets a "#" appended and the regex ends with it instead of "$": in some
# engines (MySQL's ICU, Perl-like) "$" also matches before a final newline.
_UUID_REGEX = f"^{_UUID}#"


def placed_by_sql(key: str) -> bool:
    """Whether :func:`partition_sql` places a row whose trimmed ``customer_id`` text is ``key``.

    Rows it does not place reach every partition.
    """
    return bool(key) and _UUID_TEXT.fullmatch(key) is not None


def customer_key(row: Mapping[str, Any]) -> str:
    """A row's ``customer_id`` as :func:`partition_sql` hashes it.

    Lower case, spaces trimmed (SQL's ``trim``); ``""`` when blank.
    """
    value = row.get("customer_id")
    return "" if value is None else str(value).strip(" ").lower()


# Per-dialect SQL for "the first 32 bits of md5(key) as an unsigned integer".
_MD5_32 = {
    "postgresql": "('x' || substr(md5({key}), 1, 8))::bit(32)::bigint",
    "mysql": "conv(substr(md5({key}), 1, 8), 16, 10)",
    "snowflake": "to_number(substr(md5({key}), 1, 8), 'XXXXXXXX')",
    "bigquery": "cast(concat('0x', substr(to_hex(md5({key})), 1, 8)) as int64)",
    "sqlite": "apm_md5_32({key})",
}
_MD5_32["postgres"] = _MD5_32["postgresql"]
_TRIMMED_SQL = {
    "bigquery": "trim(cast(source.customer_id as string), ' ')",
}
_TRIMMED_DEFAULT_SQL = "trim(cast(source.customer_id as {text}))"
# The text with "#" appended (MySQL's || is OR; BigQuery has both).
_ENDED = {"mysql": "concat({text}, '#')", "bigquery": "concat({text}, '#')"}
# "text matches _UUID_REGEX", per dialect (SQLite: a function registered on the connection).
_MATCHES = {
    "postgresql": "{text} ~ '{regex}'",
    "postgres": "{text} ~ '{regex}'",
    "mysql": "{text} REGEXP '{regex}'",
    "snowflake": "regexp_like({text}, '{regex}')",
    "bigquery": "regexp_contains({text}, '{regex}')",
    "sqlite": "apm_uuid_text({text})",
}
_TEXT_TYPE = {
    "postgresql": "text",
    "postgres": "text",
    "mysql": "char",
    "snowflake": "varchar",
    "sqlite": "text",
}


def partition_sql(sql: str, dialect: str, partition: int, partitions: int) -> str | None:
    """Wrap ``sql`` so it returns one partition's rows keyed by ``customer_id``, and every row that is not.

    Shares are decided by the resolved customer
    (:class:`~airflow_provider_metronome.sync.engine.BillingConfigSync`): a row that
    gives a ``customer_id`` can be placed here, in SQL; a row keyed by ingest alias
    only once its alias is resolved, so every partition reads those and keeps its own.

    :param sql: the user's query (must return a ``customer_id`` column).
    :param dialect: the database dialect (``postgresql``, ``sqlite``, ``snowflake``, ...).
    :param partition: 0-based partition index.
    :param partitions: number of partitions.
    :return: the wrapped query, or ``None`` for a dialect without a known MD5 function.
    """
    name = dialect.lower()
    md5_32 = _MD5_32.get(name)
    if md5_32 is None:
        return None
    trimmed = _TRIMMED_SQL.get(name) or _TRIMMED_DEFAULT_SQL.format(text=_TEXT_TYPE[name])
    key = f"lower({trimmed})"
    inner = sql.strip().rstrip(";")
    share = f"mod({md5_32.format(key=key)}, {int(partitions)}) = {int(partition)}"
    ended = _ENDED.get(name, "{text} || '#'").format(text=f"coalesce({trimmed}, '')")
    placed = _MATCHES[name].format(text=ended, regex=_UUID_REGEX)
    return f"SELECT * FROM ({inner}) source WHERE NOT ({placed}) OR {share}"


def register_sqlite_functions(connection: Any) -> bool:
    """Give a sqlite3 connection the ``apm_md5_32`` and ``apm_uuid_text`` functions; say if it is one."""
    import sqlite3

    if not isinstance(connection, sqlite3.Connection):
        return False
    connection.create_function(
        "apm_uuid_text", 1, lambda text: int(placed_by_sql(str(text)[:-1])), deterministic=True
    )
    connection.create_function(
        "apm_md5_32",
        1,
        lambda key: int(hashlib.md5(str(key).encode("utf-8")).hexdigest()[:8], 16),
        deterministic=True,
    )
    return True
