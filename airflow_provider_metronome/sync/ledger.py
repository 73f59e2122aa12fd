"""The results ledger: what each run did to each source row, kept in the warehouse.

One table row per source row per run (plus one per configuration archived in
``replace`` mode), with a public set of columns users join on (:data:`COLUMNS`), and a
view ``<table>_latest``: the latest outcome per ``row_key``. Three things follow:

* **Row-level results.** The created configuration ids sit next to the customer rows
  (contracts point at a billing provider configuration by id:
  https://docs.metronome.com/api-reference/contracts/create-a-contract.md).
* **Unchanged rows cost nothing.** A row whose ``row_key`` and ``row_hash`` match its
  latest ``created`` / ``unchanged`` outcome is counted unchanged without any
  Metronome call (unless the sync verifies).
* **Rejected rows are retried.** :func:`carry_over_condition` is a SQL condition that
  also selects the source rows whose latest outcome is ``rejected``, whatever the
  run's window.

Metronome stays the truth for writes: the ledger is written after Metronome
answered, and a missing or half-written ledger only costs API calls (the next run
reads those customers from Metronome again), never a duplicate.

This module talks to the warehouse through a DB-API hook (``DbApiHook`` of
common-sql, duck-typed here so the engine stays free of Airflow imports).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_metronome.client.idempotency import canonical_json

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

# The public contract: users join on these names (README, "Results table").
COLUMNS = (
    "run_id",
    "partition",
    "row_number",
    "row_key",
    "row_hash",
    "customer_id",
    "ingest_alias",
    "billing_provider",
    "delivery_method_id",
    "outcome",
    "configuration_id",
    "field",
    "reason",
    "synced_at",
    "customer_created",
)
OUTCOMES = ("created", "unchanged", "archived", "duplicate", "rejected", "planned")
# Outcomes that say "this row's configuration is active in Metronome, under this id".
SETTLED = ("created", "unchanged")
# Not part of a row's state: a dry run changes nothing, and a duplicate repeats the
# row whose outcome counts.
_NOT_STATE = ("planned", "duplicate")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")
_KEYS_PER_QUERY = 500
# Column types per dialect; text everywhere else. (BigQuery has no TEXT.)
_TYPES: dict[str, tuple[str, str, str, str]] = {
    "bigquery": ("STRING", "INT64", "TIMESTAMP", "BOOL"),
    "sqlite": ("TEXT", "INTEGER", "TEXT", "INTEGER"),
}
_DEFAULT_TYPES = ("TEXT", "INTEGER", "TIMESTAMP", "BOOLEAN")
# Columns added after the first release: a table created before them gets them added.
_ADDED_COLUMNS = ("customer_created",)


@dataclass(frozen=True, slots=True)
class RowFacts:
    """What the ledger records of one source row, whatever happens to it.

    :param row_number: 1-based position in the run's source.
    :param row_key: the desired configuration's identity, stable across runs.
    :param row_hash: hash of the row's desired content.
    :param customer_id: the Metronome customer id (given or resolved), if known.
    :param ingest_alias: the ingest alias the row gives.
    :param billing_provider: the billing provider the row gives.
    :param delivery_method_id: the delivery method id (given or resolved), if known.
    :param customer_created: the sync created the customer for this row.
    """

    row_number: int
    row_key: str | None
    row_hash: str | None
    customer_id: str | None
    ingest_alias: str | None
    billing_provider: str | None
    delivery_method_id: str | None
    customer_created: bool = False


def row_identity(
    *,
    customer_id: str | None,
    ingest_alias: str | None,
    billing_provider: str | None,
    delivery_method: str | None,
    delivery_method_id: str | None,
    configuration: Any,
    tax_provider: str | None,
    customer: Any = None,
) -> tuple[str, str]:
    """``(row_key, row_hash)`` of a row, as the row gives its fields.

    The key names the customer and the delivery method the way the row does (an id or
    an alias, an id or a kind), so it is the same in every run without any lookup.

    :param customer: what the row says of the customer itself (name, more aliases,
        custom fields), when it says anything: part of the hash only then, so the
        hashes of rows without those columns stay what they were.
    """
    who = f"id:{customer_id}" if customer_id is not None else f"alias:{ingest_alias}"
    how = f"id:{delivery_method_id}" if delivery_method_id is not None else f"method:{delivery_method}"
    key = canonical_json([who, billing_provider, how])
    content = [configuration, tax_provider] if customer is None else [configuration, tax_provider, customer]
    digest = hashlib.sha256(canonical_json(content).encode()).hexdigest()
    return key, digest[:32]


def raw_facts(row_number: int, raw: Any) -> RowFacts:
    """Best-effort facts of a row that failed validation (its fields as text)."""
    if not hasattr(raw, "get"):
        return RowFacts(row_number, None, None, None, None, None, None)

    def text(name: str, limit: int = 256) -> str | None:
        value = _loose_text(raw.get(name))
        if value is None or not value.strip():
            return None
        return value.strip()[:limit]

    customer_id, alias = text("customer_id"), text("ingest_alias")
    provider, method, method_id = (
        text("billing_provider"),
        text("delivery_method"),
        text("delivery_method_id"),
    )
    key: str | None = None
    digest: str | None = None
    if (customer_id or alias) and provider:
        key, digest = row_identity(
            customer_id=customer_id,
            ingest_alias=alias,
            billing_provider=provider,
            delivery_method=method,
            delivery_method_id=method_id,
            configuration=_loose_text(raw.get("configuration")),
            tax_provider=text("tax_provider"),
        )
    return RowFacts(row_number, key, digest, customer_id, alias, provider, method_id)


@dataclass(frozen=True, slots=True)
class Settled:
    """The latest ``created`` / ``unchanged`` outcome of a row key.

    :param row_hash: the content it had then.
    :param configuration_id: the configuration that satisfied it.
    :param customer_id: the customer it was resolved to.
    """

    row_hash: str
    configuration_id: str
    customer_id: str


class LedgerReader(Protocol):
    """What the engine asks of the ledger before it calls Metronome."""

    def settled(self, row_keys: list[str]) -> dict[str, Settled]:
        """The latest settled outcome of each key that has one."""
        ...


class Spool:
    """The run's outcomes, on disk until they are written to the warehouse (memory stays flat).

    :param run_id: the run (Airflow run id).
    :param partition: the map index (0 when not partitioned).
    :param directory: where the temporary file goes.
    """

    def __init__(self, run_id: str, partition: int = 0, directory: str | None = None) -> None:
        self.run_id = run_id
        self.partition = partition
        fd, path = tempfile.mkstemp(prefix="metronome-results-", suffix=".sqlite", dir=directory)
        os.close(fd)
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; "
            "CREATE TABLE outcomes (seq INTEGER PRIMARY KEY, record TEXT NOT NULL);"
        )
        if os.name == "posix":
            os.unlink(path)  # nothing left behind, even on SIGKILL
        self._path = path
        self.count = 0

    def add(
        self,
        facts: RowFacts,
        outcome: str,
        *,
        configuration_id: str | None = None,
        field: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Record one outcome, stamped now (UTC)."""
        stamp = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        record = [
            facts.row_number if outcome != "archived" else None,
            facts.row_key,
            facts.row_hash,
            facts.customer_id,
            facts.ingest_alias,
            facts.billing_provider,
            facts.delivery_method_id,
            outcome,
            configuration_id,
            field,
            reason,
            stamp,
            facts.customer_created,
        ]
        self.db.execute("INSERT INTO outcomes (record) VALUES (?)", (json.dumps(record),))
        self.count += 1

    def records(self) -> Iterator[tuple[Any, ...]]:
        """Every record as a tuple in :data:`COLUMNS` order, streamed."""
        cursor = self.db.execute("SELECT record FROM outcomes ORDER BY seq")
        while batch := cursor.fetchmany(1000):
            for (text,) in batch:
                values = json.loads(text)
                yield (self.run_id, self.partition, *values)

    def close(self) -> None:
        self.db.close()
        with contextlib.suppress(OSError):
            os.unlink(self._path)


class ResultsTable:
    """The results table and its ``_latest`` view, through a DB-API hook.

    :param hook: a common-sql ``DbApiHook`` (``run``, ``get_records``, ``insert_rows``,
        ``placeholder``, ``dialect``).
    :param table: the table name, optionally schema-qualified; the view is
        ``<table>_latest``.
    """

    def __init__(self, hook: Any, table: str) -> None:
        if not _IDENTIFIER.match(table or ""):
            raise ValueError(
                f"results_table must be a table name such as metronome_sync_results or "
                f"analytics.metronome_sync_results, got {table!r}"
            )
        self.hook = hook
        self.table = table
        self.view = f"{table}_latest"
        self.dialect = _dialect_name(hook)
        self._conn: Any = None

    def _col(self, name: str) -> str:
        """A column name, quoted where the dialect reserves it (``partition``)."""
        dialect = getattr(self.hook, "dialect", None)
        if dialect is not None and hasattr(dialect, "escape_word"):
            return str(dialect.escape_word(name))
        return f'"{name}"' if name == "partition" else name

    def ensure(self) -> None:
        """Create the table, its index and the ``_latest`` view if they are missing."""
        text, integer, stamp, boolean = _TYPES.get(self.dialect, _DEFAULT_TYPES)
        types = {
            "partition": integer, "row_number": integer, "synced_at": stamp, "customer_created": boolean,
        }  # fmt: skip
        columns = ", ".join(f"{self._col(c)} {types.get(c, text)}" for c in COLUMNS)
        self.hook.run(f"CREATE TABLE IF NOT EXISTS {self.table} ({columns})", autocommit=True)
        statements = []
        added = [c for c in _ADDED_COLUMNS if not self._has_column(c)]
        for column in added:
            statements.append(f"ALTER TABLE {self.table} ADD COLUMN {self._col(column)} {types[column]}")
        if added and self.dialect == "sqlite":
            statements.append(f"DROP VIEW IF EXISTS {self.view}")  # SQLite cannot replace a view
        if self.dialect in ("sqlite", "postgresql"):
            index = self.table.replace(".", "_") + "_row_key"
            name = index if self.dialect == "postgresql" else _schema_of(self.table) + index
            statements.append(f"CREATE INDEX IF NOT EXISTS {name} ON {self.table} (row_key, synced_at)")
        statements.append(self._view_sql())
        for sql in statements:
            self.hook.run(sql, autocommit=True)

    def _has_column(self, column: str) -> bool:
        """Whether the table has ``column`` (a table made by an older release may not)."""
        try:
            self._query(f"SELECT {self._col(column)} FROM {self.table} WHERE 1 = 0", [])
        except Exception:  # the driver's own error class: the column is missing
            return False
        return True

    def _view_sql(self) -> str:
        names = ", ".join(self._col(c) for c in COLUMNS)
        excluded = ", ".join(f"'{o}'" for o in _NOT_STATE)
        body = (
            f"SELECT {names} FROM ("
            f"SELECT r.*, ROW_NUMBER() OVER (PARTITION BY row_key "
            f"ORDER BY synced_at DESC, row_number DESC) AS latest_rank "
            f"FROM {self.table} r WHERE row_key IS NOT NULL AND outcome NOT IN ({excluded})"
            f") ranked WHERE latest_rank = 1"
        )
        if self.dialect == "sqlite":
            return f"CREATE VIEW IF NOT EXISTS {self.view} AS {body}"
        return f"CREATE OR REPLACE VIEW {self.view} AS {body}"

    def settled(self, row_keys: list[str]) -> dict[str, Settled]:
        """The latest ``created`` / ``unchanged`` outcome of each key whose latest outcome is one."""
        found: dict[str, Settled] = {}
        mark = getattr(self.hook, "placeholder", "%s")
        excluded = ", ".join(f"'{o}'" for o in _NOT_STATE)
        for start in range(0, len(row_keys), _KEYS_PER_QUERY):
            keys = row_keys[start : start + _KEYS_PER_QUERY]
            marks = ", ".join([mark] * len(keys))
            # The latest state of each key, read from the table (its index) rather than
            # the view: the view ranks the whole table.
            sql = (
                f"SELECT r.row_key, r.row_hash, r.configuration_id, r.customer_id, r.outcome "
                f"FROM {self.table} r WHERE r.row_key IN ({marks}) AND r.outcome NOT IN ({excluded}) "
                f"AND r.synced_at = (SELECT MAX(l.synced_at) FROM {self.table} l "
                f"WHERE l.row_key = r.row_key AND l.outcome NOT IN ({excluded}))"
            )
            latest: dict[str, tuple[Any, ...]] = {}
            for key, digest, config_id, customer_id, outcome in self._query(sql, keys):
                # Same instant (rows of one run): a rejection wins, so nothing is skipped on doubt.
                if key not in latest or outcome == "rejected":
                    latest[key] = (digest, config_id, customer_id, outcome)
            for key, (digest, config_id, customer_id, outcome) in latest.items():
                if outcome in SETTLED and config_id and customer_id and digest:
                    found[key] = Settled(str(digest), str(config_id), str(customer_id))
        return found

    def _query(self, sql: str, parameters: list[str]) -> list[tuple[Any, ...]]:
        """Run a lookup on one connection kept for the sync (``get_records`` would log every key)."""
        if self._conn is None:
            self._conn = self.hook.get_conn()
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql, parameters)
            return list(cursor.fetchall())
        finally:
            cursor.close()
            # Read-only, but end the transaction: the session must not sit "idle in
            # transaction" while the sync calls Metronome.
            self._conn.rollback()

    def close(self) -> None:
        """Close the lookup connection, if one was opened."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def append(self, records: Iterable[tuple[Any, ...]], *, chunk: int = 1000) -> int:
        """Insert records (tuples in :data:`COLUMNS` order); return how many."""
        written = 0

        def counted() -> Iterator[tuple[Any, ...]]:
            nonlocal written
            for record in records:
                written += 1
                yield record

        self.hook.insert_rows(self.table, counted(), target_fields=list(COLUMNS), commit_every=chunk)
        return written


def carry_over_condition(results_table: str, source: str = "source") -> str:
    """A SQL condition on the source rows whose latest outcome is ``rejected``.

    ``OR`` it with a run's window so a row rejected by an earlier run is read again by
    every later run until it syncs, leaves the source or changes (then its window
    picks it up). The results table must live in the source's database.

    :param results_table: the results table (its ``_latest`` view is read).
    :param source: the alias of the source in the query.
    """
    if not _IDENTIFIER.match(results_table or ""):
        raise ValueError(f"results_table must be a table name, got {results_table!r}")
    return (
        f"EXISTS (SELECT 1 FROM {results_table}_latest carried WHERE carried.outcome = 'rejected' "
        f"AND carried.billing_provider = {source}.billing_provider "
        f"AND ((carried.customer_id IS NOT NULL AND carried.customer_id = {source}.customer_id) "
        f"OR (carried.ingest_alias IS NOT NULL AND carried.ingest_alias = {source}.ingest_alias)))"
    )


def _loose_text(value: Any) -> str | None:
    """Text of a value that failed validation (too deep, NaN, bytes, ...), never raising."""
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (RecursionError, ValueError, TypeError):
        return f"<unreadable {type(value).__name__}>"


def _dialect_name(hook: Any) -> str:
    name = getattr(hook, "dialect_name", None) or getattr(hook, "conn_type", None) or ""
    name = str(name).lower()
    return "postgresql" if name in ("postgres", "postgresql") else name


def _schema_of(table: str) -> str:
    """``schema.`` of a qualified table name (SQLite puts an index in its table's schema)."""
    return table.rsplit(".", 1)[0] + "." if "." in table else ""
