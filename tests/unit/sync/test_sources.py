"""``sync/sources.py``: the customer key, its bucket, and the partition SQL of every dialect.

The partition SQL must put every row that gives a canonical ``customer_id`` in the
partition :func:`bucket` names, and hand every other row to every partition. That is
proved by running the SQL: on SQLite always, on PostgreSQL when
``METRONOME_TEST_POSTGRES_URL`` is set, and for the warehouses no test can reach
(MySQL, Snowflake, BigQuery) on SQLite with their functions emulated as their
documentation describes them, after the exact SQL text is pinned.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_metronome.sync import sources
from airflow_provider_metronome.sync.sources import (
    bucket,
    customer_key,
    partition_sql,
    placed_by_sql,
    register_sqlite_functions,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

ACME = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
HEX = "[0-9a-fA-F]"
UUID_REGEX = f"^{HEX}{{8}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{12}}#"

# Every dialect partition_sql claims, with the text of its trimmed customer id (hashed in
# lower case), of its "matches the canonical UUID regex" and of its "first 32 bits of
# md5 as an unsigned integer".
_TRIMMED = "trim(cast(source.customer_id as {t}))"
EXPECTED_TRIMMED = {
    "postgresql": _TRIMMED.format(t="text"),
    "postgres": _TRIMMED.format(t="text"),
    "sqlite": _TRIMMED.format(t="text"),
    "mysql": _TRIMMED.format(t="char"),
    "snowflake": _TRIMMED.format(t="varchar"),
    "bigquery": "trim(cast(source.customer_id as string), ' ')",
}
EXPECTED_ENDED = {"mysql": "concat({x}, '#')", "bigquery": "concat({x}, '#')"}
EXPECTED_MATCHES = {
    "postgresql": "{x} ~ '{r}'",
    "postgres": "{x} ~ '{r}'",
    "sqlite": "apm_uuid_text({x})",
    "mysql": "{x} REGEXP '{r}'",
    "snowflake": "regexp_like({x}, '{r}')",
    "bigquery": "regexp_contains({x}, '{r}')",
}
EXPECTED_MD5_32 = {
    "postgresql": "('x' || substr(md5({k}), 1, 8))::bit(32)::bigint",
    "postgres": "('x' || substr(md5({k}), 1, 8))::bit(32)::bigint",
    "sqlite": "apm_md5_32({k})",
    "mysql": "conv(substr(md5({k}), 1, 8), 16, 10)",
    "snowflake": "to_number(substr(md5({k}), 1, 8), 'XXXXXXXX')",
    "bigquery": "cast(concat('0x', substr(to_hex(md5({k})), 1, 8)) as int64)",
}

# Values that must reach every partition (the SQL does not place them; Python places
# them once parsed), and values the SQL places: both sides must agree on each.
NOT_PLACED: list[Any] = [
    None, "", "   ", "acme", "team@example.com", "0c8b5a527c1e4f0e9a3b0c1d2e3f4a01",
    "{0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01}", "urn:uuid:0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01",
    "\t0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01", "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a0",
    "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a011", "0c8b5a527-c1e-4f0e-9a3b-0c1d2e3f4a01", 12345,
    "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
    "0c8b5a5\n-7c1e-4f0e-9a3b-0c1d2e3f4a01", "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4\t01",
    # A final newline: a regex's $ would match before it (found by this suite).
    ACME + "\n",
    # U+0130: Python's lower() makes it two characters, SQL's keeps one (found by this suite).
    "\u0130234567-1234-1234-1234-123456789012", "\u01302345678-1234-1234-1234-123456789012",
]  # fmt: skip
PLACED: list[Any] = [ACME, ACME.upper(), f"  {ACME} ", "0C8b5A52-7c1E-4f0e-9a3b-0c1d2e3f4a01"]


def _random_ids(count: int, seed: int) -> list[str]:
    """``count`` distinct random canonical (lower case, 8-4-4-4-12) customer ids."""
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def _as_a_warehouse_gives_it(customer_id: str, rng: random.Random) -> str:
    """The id in upper, lower or mixed case, sometimes padded with spaces."""
    text = "".join(c.upper() if rng.random() < 0.5 else c for c in customer_id)
    return " " * rng.randint(0, 2) + text + " " * rng.randint(0, 2)


def _given_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed + 1)
    return [_as_a_warehouse_gives_it(c, rng) for c in _random_ids(count, seed)]


def _check_partitions(
    run: Callable[[str], Sequence[tuple[Any, ...]]],
    dialect: str,
    partitions: int,
    keyed: Sequence[Any],
    unplaced: Sequence[Any],
) -> None:
    """Run every partition's SQL over ``SELECT seq, customer_id FROM t`` and check each row's partition.

    A row whose key :func:`placed_by_sql` must land in exactly the partition :func:`bucket`
    names; every other row must reach every partition.
    """
    values = [*keyed, *unplaced]
    seen: dict[int, list[int]] = {seq: [] for seq in range(len(values))}
    for p in range(partitions):
        sql = partition_sql("SELECT seq, customer_id FROM t", dialect, p, partitions)
        assert sql is not None
        for seq, _value in run(sql):
            seen[int(seq)].append(p)
    wrong = []
    for seq, value in enumerate(values):
        key = customer_key({"customer_id": value})
        expected = [bucket(key, partitions)] if placed_by_sql(key) else list(range(partitions))
        if seen[seq] != expected:
            wrong.append((value, seen[seq], expected))
    assert wrong == [], f"{len(wrong)} rows in the wrong partitions (value, got, expected): {wrong[:5]}"


# -- bucket ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "first_32_bits"),
    [("abc", 2416005272), ("", 3558706393), ("ñ", 2498311214), (ACME, 3972756954)],
)
def test_bucket_is_the_first_32_bits_of_the_utf8_md5(key: str, first_32_bits: int) -> None:
    """``bucket`` takes the first 8 hex digits of MD5 over UTF-8 (known digests), modulo partitions."""
    assert bucket(key, 2**32) == first_32_bits
    assert bucket(key, 1000) == first_32_bits % 1000
    assert bucket(key, 7) == first_32_bits % 7
    assert bucket(key, 1) == 0


def test_bucket_spreads_customer_ids_evenly() -> None:
    """Random customer ids fill 8 partitions evenly (none under 80 % or over 120 % of its share)."""
    counts = [0] * 8
    for customer_id in _random_ids(8000, seed=11):
        counts[bucket(customer_id, 8)] += 1
    assert all(800 <= c <= 1200 for c in counts), counts


# -- customer_key and placed_by_sql ------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "key"),
    [
        ({}, ""),
        ({"customer_id": None}, ""),
        ({"customer_id": "   "}, ""),
        ({"customer_id": f"  {ACME.upper()}  "}, ACME),
        # Only spaces are trimmed, as SQL's trim() does: a tab or newline stays.
        ({"customer_id": f"\t{ACME}\n"}, f"\t{ACME}\n"),
        ({"customer_id": 12345}, "12345"),
        ({"customer_id": uuid.UUID(ACME)}, ACME),
        ({"customer_id": "Acme Corp"}, "acme corp"),
    ],
)
def test_customer_key_is_lower_case_and_space_trimmed(row: dict[str, Any], key: str) -> None:
    """The key is ``str(customer_id)`` lower-cased with spaces (only) trimmed; blank or NULL gives ``""``."""
    assert customer_key(row) == key


@pytest.mark.parametrize("value", PLACED)
def test_keys_of_the_uuid_shape_are_placed_by_sql(value: str) -> None:
    """Any 36 characters in the 8-4-4-4-12 shape is placed by SQL, whatever the characters are."""
    assert placed_by_sql(customer_key({"customer_id": value}))


@pytest.mark.parametrize("value", NOT_PLACED)
def test_other_keys_are_not_placed_by_sql(value: Any) -> None:
    """Blank keys, aliases, ids in another spelling (no dashes, braces, urn:, tabs) are not placed by SQL."""
    assert not placed_by_sql(customer_key({"customer_id": value}))


# -- partition_sql: the text, for every dialect it claims -----------------------------------------


def test_every_dialect_partition_sql_claims_is_covered_here() -> None:
    """The dialects with a known MD5 function are exactly those these tests pin and run."""
    assert set(sources._MD5_32) == set(EXPECTED_MD5_32)
    for dialect in EXPECTED_MD5_32:
        assert partition_sql("SELECT 1", dialect, 0, 2) is not None, dialect


@pytest.mark.parametrize("dialect", sorted(EXPECTED_MD5_32))
def test_partition_sql_text(dialect: str) -> None:
    """The exact SQL of each dialect: unplaced rows pass, placed ones only in their partition."""
    trimmed = EXPECTED_TRIMMED[dialect]
    md5_32 = EXPECTED_MD5_32[dialect].format(k=f"lower({trimmed})")
    ended = EXPECTED_ENDED.get(dialect, "{x} || '#'").format(x=f"coalesce({trimmed}, '')")
    placed = EXPECTED_MATCHES[dialect].format(x=ended, r=UUID_REGEX)
    expected = (
        "SELECT * FROM (SELECT customer_id, x FROM warehouse.rows WHERE x > 0) source "
        f"WHERE NOT ({placed}) OR mod({md5_32}, 8) = 3"
    )
    got = partition_sql("  SELECT customer_id, x FROM warehouse.rows WHERE x > 0;\n", dialect, 3, 8)
    assert got == expected
    assert partition_sql("SELECT customer_id FROM t", dialect.upper(), 0, 2) == partition_sql(
        "SELECT customer_id FROM t", dialect, 0, 2
    ), "dialect names are case-insensitive"


@pytest.mark.parametrize("dialect", ["oracle", "mssql", "trino", "", "sqlite3"])
def test_unknown_dialects_get_no_partition_sql(dialect: str) -> None:
    """A dialect without a known MD5 function gets ``None``: every task reads all rows."""
    assert partition_sql("SELECT customer_id FROM t", dialect, 0, 2) is None


# -- partition_sql on SQLite ------------------------------------------------------------------


@pytest.fixture
def sqlite_db() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    assert register_sqlite_functions(db) is True
    db.execute("CREATE TABLE t (seq INTEGER, customer_id)")
    yield db
    db.close()


def _fill_sqlite(db: sqlite3.Connection, values: Sequence[Any]) -> Callable[[str], list[tuple[Any, ...]]]:
    db.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
    return lambda sql: db.execute(sql).fetchall()


def test_register_sqlite_functions_only_takes_sqlite_connections() -> None:
    """It says whether the connection is SQLite; a SQLite one can then compute ``apm_md5_32``."""
    assert register_sqlite_functions(object()) is False
    db = sqlite3.connect(":memory:")
    try:
        with pytest.raises(sqlite3.OperationalError, match="apm_md5_32"):
            db.execute("SELECT apm_md5_32('abc')")
        assert register_sqlite_functions(db) is True
        assert db.execute("SELECT apm_md5_32('abc')").fetchone() == (2416005272,)
    finally:
        db.close()


def test_sqlite_places_random_customer_ids_as_bucket_does(sqlite_db: sqlite3.Connection) -> None:
    """3000 random ids, in any case and padded with spaces: each lands in its ``bucket`` partition only."""
    given = _given_ids(3000, seed=1)
    _check_partitions(_fill_sqlite(sqlite_db, given), "sqlite", 7, given, [])


def test_sqlite_unplaced_rows_reach_every_partition(sqlite_db: sqlite3.Connection) -> None:
    """Blank, alias-like and oddly spelled keys reach every partition; UUID-shaped ones exactly one."""
    run = _fill_sqlite(sqlite_db, [*PLACED, *NOT_PLACED])
    _check_partitions(run, "sqlite", 4, PLACED, NOT_PLACED)


def test_sqlite_one_partition_returns_every_row(sqlite_db: sqlite3.Connection) -> None:
    """With one partition, the wrapped query returns the source unchanged."""
    values = [*_given_ids(50, seed=3), *NOT_PLACED]
    run = _fill_sqlite(sqlite_db, values)
    sql = partition_sql("SELECT seq, customer_id FROM t ORDER BY seq", "sqlite", 0, 1)
    assert sql is not None
    assert [seq for seq, _ in run(sql)] == list(range(len(values)))


# -- partition_sql on PostgreSQL ---------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("dialect", ["postgresql", "postgres"])
def test_postgres_places_random_customer_ids_as_bucket_does(dialect: str) -> None:
    """On PostgreSQL, text and native uuid columns: each id lands in its ``bucket`` partition only.

    The sample includes ids whose hash has its top bit set, which a signed 32-bit
    conversion would turn negative.
    """
    url = os.environ.get("METRONOME_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRONOME_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server)")
    import psycopg2
    from psycopg2.extras import execute_values

    given = _given_ids(3000, seed=2)
    assert any(bucket(customer_key({"customer_id": g}), 2**32) >= 2**31 for g in given)
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE t (seq integer, customer_id text)")
            execute_values(cur, "INSERT INTO t VALUES %s", list(enumerate([*given, *PLACED, *NOT_PLACED])))

        def run(sql: str) -> list[tuple[Any, ...]]:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())

        _check_partitions(run, dialect, 7, [*given, *PLACED], NOT_PLACED)

        # A native uuid column: PostgreSQL prints it canonical, as parse_row does.
        with conn.cursor() as cur:
            cur.execute("DROP TABLE t")
            cur.execute("CREATE TEMP TABLE t (seq integer, customer_id uuid)")
            execute_values(cur, "INSERT INTO t VALUES %s", list(enumerate(g.strip() for g in given)))
        _check_partitions(run, dialect, 5, given, [])
    finally:
        conn.rollback()
        conn.close()


# -- MySQL, Snowflake, BigQuery: their functions emulated on SQLite ----------------------------


def _md5_hex(value: Any) -> str | None:
    return None if value is None else hashlib.md5(str(value).encode("utf-8")).hexdigest()


def _mysql_conv(number: Any, from_base: int, to_base: int) -> str | None:
    """MySQL ``CONV(N, from_base, to_base)``: a string, digits case-insensitive (to base 10 only here)."""
    if number is None:
        return None
    assert to_base == 10, "the partition SQL converts to decimal"
    return str(int(str(number), from_base))


def _snowflake_to_number(text: Any, fmt: str) -> int | None:
    """Snowflake ``TO_NUMBER(expr, 'XXXXXXXX')``: one hex digit (either case) per ``X``, an error on more."""
    if text is None:
        return None
    assert set(fmt) == {"X"}, fmt
    if len(str(text)) > len(fmt):
        raise ValueError(f"{text!r} does not fit format {fmt!r}")
    return int(str(text), 16)


def _bigquery_md5(value: Any) -> bytes | None:
    """BigQuery ``MD5``: the 16-byte digest (BYTES), not hex text."""
    return None if value is None else hashlib.md5(str(value).encode("utf-8")).digest()


def _bigquery_to_hex(value: Any) -> str | None:
    """BigQuery ``TO_HEX(bytes)``: lower-case hex."""
    return None if value is None else bytes(value).hex()


def _bigquery_concat(*parts: Any) -> str | None:
    return None if any(p is None for p in parts) else "".join(str(p) for p in parts)


def _bigquery_int64(text: Any) -> int | None:
    """BigQuery ``CAST(string AS INT64)``: accepts a ``0x`` hex string; an error beyond INT64."""
    if text is None:
        return None
    value = int(str(text), 0)
    if not -(2**63) <= value < 2**63:
        raise OverflowError(text)
    return value


def _regexp(pattern: str, text: Any) -> int:
    """``text REGEXP pattern`` (SQLite calls ``regexp(pattern, text)``), as MySQL does: a search."""
    return int(text is not None and re.search(pattern, str(text)) is not None)


def _emulated(dialect: str, db: sqlite3.Connection, sql: str) -> str:
    """Register ``dialect``'s functions on ``db``; return ``sql`` as SQLite can run it."""
    db.create_function("regexp", 2, _regexp, deterministic=True)
    db.create_function("regexp_like", 2, lambda text, pattern: _regexp(pattern, text), deterministic=True)
    db.create_function("regexp_contains", 2, lambda text, pattern: _regexp(pattern, text), deterministic=True)
    if dialect == "mysql":
        db.create_function("concat", -1, _bigquery_concat, deterministic=True)
        db.create_function("md5", 1, _md5_hex, deterministic=True)
        db.create_function("conv", 3, _mysql_conv, deterministic=True)
    elif dialect == "snowflake":
        db.create_function("md5", 1, _md5_hex, deterministic=True)
        db.create_function("to_number", 2, _snowflake_to_number, deterministic=True)
    else:
        db.create_function("md5", 1, _bigquery_md5, deterministic=True)
        db.create_function("to_hex", 1, _bigquery_to_hex, deterministic=True)
        db.create_function("concat", -1, _bigquery_concat, deterministic=True)
        db.create_function("bq_int64", 1, _bigquery_int64, deterministic=True)
        # SQLite has no STRING type nor hex casts: only these two casts are rewritten
        # (test_partition_sql_text pins the text they come from).
        before = sql
        sql = sql.replace("cast(source.customer_id as string)", "cast(source.customer_id as text)")
        sql = sql.replace("cast(concat('0x', ", "bq_int64(concat('0x', ").replace(") as int64)", "))")
        assert sql != before
        assert "string" not in sql, sql
        assert "int64)" not in sql, sql
    return sql


@pytest.mark.parametrize("dialect", ["mysql", "snowflake", "bigquery"])
def test_other_dialects_place_random_customer_ids_as_bucket_does(dialect: str) -> None:
    """With MySQL's, Snowflake's or BigQuery's functions as documented, their SQL agrees with ``bucket``.

    2000 random ids in any case with spaces around, plus every edge value: placed ones
    land in their ``bucket`` partition only, the others reach every partition.
    """
    given = _given_ids(2000, seed=5)
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE TABLE t (seq INTEGER, customer_id)")
        db.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate([*given, *PLACED, *NOT_PLACED])))
        _check_partitions(
            lambda sql: db.execute(_emulated(dialect, db, sql)).fetchall(),
            dialect, 6, [*given, *PLACED], NOT_PLACED,
        )  # fmt: skip
    finally:
        db.close()


@pytest.mark.parametrize("dialect", ["mysql", "snowflake", "bigquery"])
def test_emulation_would_notice_a_wrong_hash(dialect: str) -> None:
    """The emulation is not vacuous: the same SQL hashing 8 hex digits from the 2nd one disagrees."""
    given = _given_ids(200, seed=6)
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE TABLE t (seq INTEGER, customer_id)")
        db.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(given)))

        def run(sql: str) -> list[tuple[Any, ...]]:
            wrong = sql.replace(", 1, 8)", ", 2, 8)")
            assert wrong != sql
            return db.execute(_emulated(dialect, db, wrong)).fetchall()

        with pytest.raises(AssertionError, match="rows in the wrong partitions"):
            _check_partitions(run, dialect, 6, given, [])
    finally:
        db.close()
