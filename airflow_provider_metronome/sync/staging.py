"""On-disk staging of validated rows, so memory stays flat whatever the table size.

Duplicates and conflicts must be found across the whole source (a conflicting row
may come a million rows after its twin), and the diff wants all rows of a customer
together. Both need the whole table; an on-disk SQLite file gives both with a
constant memory footprint.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.client.idempotency import canonical_json
from airflow_provider_metronome.sync.ledger import RowFacts

if TYPE_CHECKING:
    from collections.abc import Iterator


# Rows of a customer the sync is to create are staged under this prefix + their ingest
# alias (never a UUID, so never a real customer id).
NEW_CUSTOMER_PREFIX = "new:"


def new_customer_key(ingest_alias: str) -> str:
    """The staging key of the customer a sync creates for ``ingest_alias``."""
    return NEW_CUSTOMER_PREFIX + ingest_alias


@dataclass(slots=True)
class StagedRow:
    """A validated, resolved row: everything the diff needs.

    :param row: 1-based position in the source.
    :param key: the row's identity as given, for messages.
    :param customer_id: resolved Metronome customer id.
    :param billing_provider: the provider.
    :param delivery_method_id: resolved delivery method id.
    :param delivery_method: its delivery method name.
    :param configuration: the provider configuration.
    :param tax_provider: the tax provider, if any.
    :param given_delivery: whether the row named ``delivery_method`` or ``delivery_method_id``.
    :param ingest_alias: the alias the row named its customer by, if it did.
    :param row_key: the row's identity in the results ledger (:mod:`.ledger`).
    :param row_hash: the hash of its desired content in the ledger.
    :param settled_id: the configuration the ledger says satisfies this exact row
        (its latest outcome was created or unchanged with the same content).
    :param customer_name: the name for a customer the sync creates.
    :param aliases: the other ingest aliases the row lists for its customer.
    :param custom_fields: custom fields for a customer the sync creates.
    :param missing_aliases: listed aliases no customer held when the row was read
        (added to its existing customer).
    :param customer_created: the sync created this row's customer.
    """

    row: int
    key: str
    customer_id: str
    billing_provider: str
    delivery_method_id: str
    delivery_method: str
    configuration: dict[str, Any]
    tax_provider: str | None
    given_delivery: str
    ingest_alias: str | None = None
    row_key: str | None = None
    row_hash: str | None = None
    settled_id: str | None = None
    customer_name: str | None = None
    aliases: list[str] = field(default_factory=list)
    custom_fields: dict[str, str] | None = None
    missing_aliases: list[str] = field(default_factory=list)
    customer_created: bool = False

    @property
    def new_customer(self) -> bool:
        """The row's customer does not exist yet: ``customer_id`` is :func:`new_customer_key`."""
        return self.customer_id.startswith(NEW_CUSTOMER_PREFIX)

    def facts(self) -> RowFacts:
        """What the results ledger records of this row."""
        return RowFacts(
            self.row, self.row_key, self.row_hash, None if self.new_customer else self.customer_id,
            self.ingest_alias, self.billing_provider, self.delivery_method_id, self.customer_created,
        )  # fmt: skip

    def payload(self) -> dict[str, Any]:
        """The ``setCustomerBillingProviderConfigurations`` item for this row, as the row gave it."""
        item: dict[str, Any] = {
            "customer_id": self.customer_id,
            "billing_provider": self.billing_provider,
            "configuration": self.configuration,
        }
        if self.given_delivery == "delivery_method":
            item["delivery_method"] = self.delivery_method
        else:
            item["delivery_method_id"] = self.delivery_method_id
        if self.tax_provider:
            item["tax_provider"] = self.tax_provider
        return item


@dataclass(slots=True)
class IdentityGroup:
    """The staged rows of one customer + billing provider + delivery method.

    Only the first row is kept, so memory stays flat however many rows a table holds
    for one identity: identical copies are only counted, and conflicting rows (each
    rejected by its row number) are streamed back with :meth:`Staging.rows_of`.

    :param rows: the first row (in source order).
    :param distinct: how many different configurations they ask for.
    :param size: how many rows the source holds for this identity.
    """

    rows: list[StagedRow]
    distinct: int
    size: int = 1


class Staging:
    """A temporary SQLite file of staged rows.

    On POSIX the file is unlinked as soon as SQLite has opened it (no journal is
    written next to it), so a task that is SIGKILLed leaves nothing behind: the
    kernel frees the space when the process ends.

    :param directory: where to put the file (default: the system temp dir).
    """

    def __init__(self, directory: str | None = None) -> None:
        fd, self.path = tempfile.mkstemp(prefix="metronome-sync-", suffix=".sqlite", dir=directory)
        os.close(fd)
        self.db = sqlite3.connect(self.path, check_same_thread=False)
        self.db.executescript(
            """
            PRAGMA journal_mode=OFF;
            PRAGMA synchronous=OFF;
            PRAGMA temp_store=FILE;
            PRAGMA cache_size=-16000;
            CREATE TABLE staged (
                seq INTEGER PRIMARY KEY,
                customer_id TEXT NOT NULL,
                billing_provider TEXT NOT NULL,
                delivery_method_id TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                body TEXT NOT NULL
            );
            """
        )
        if os.name == "posix":
            os.unlink(self.path)

    def add(self, rows: list[StagedRow]) -> None:
        """Stage a chunk of rows."""
        records = []
        for r in rows:
            body = json.dumps(
                [
                    r.row,
                    r.key,
                    r.delivery_method,
                    r.configuration,
                    r.tax_provider,
                    r.given_delivery,
                    r.ingest_alias,
                    r.row_key,
                    r.row_hash,
                    r.settled_id,
                    r.customer_name,
                    r.aliases,
                    r.custom_fields,
                    r.missing_aliases,
                ],
                separators=(",", ":"),
                default=str,
            )
            # Rows of one identity that disagree about their new customer conflict too.
            fingerprint = canonical_json(
                [r.configuration, r.tax_provider]
                if not r.new_customer
                else [r.configuration, r.tax_provider, r.customer_name, r.custom_fields, r.aliases]
            )
            records.append((r.customer_id, r.billing_provider, r.delivery_method_id, fingerprint, body))
        self.db.executemany(
            "INSERT INTO staged (customer_id, billing_provider, delivery_method_id, fingerprint, body) "
            "VALUES (?, ?, ?, ?, ?)",
            records,
        )

    def customers(self) -> int:
        """How many distinct customers are staged."""
        return int(self.db.execute("SELECT COUNT(DISTINCT customer_id) FROM staged").fetchone()[0])

    _SELECT = """
        SELECT s.customer_id, s.billing_provider, s.delivery_method_id, s.body, g.distinct_count
        FROM staged s
        JOIN (
            SELECT customer_id, billing_provider, delivery_method_id,
                   COUNT(DISTINCT fingerprint) AS distinct_count
            FROM staged {where} GROUP BY customer_id, billing_provider, delivery_method_id
        ) g USING (customer_id, billing_provider, delivery_method_id)
        ORDER BY s.customer_id, s.billing_provider, s.delivery_method_id, s.seq
    """

    def _index(self) -> None:
        self.db.execute(
            "CREATE INDEX IF NOT EXISTS staged_identity "
            "ON staged (customer_id, billing_provider, delivery_method_id, seq)"
        )

    def iter_customers(self) -> Iterator[tuple[str, list[IdentityGroup]]]:
        """Yield ``(customer_id, groups)`` with every identity group of that customer."""
        self._index()
        yield from _grouped(self.db.execute(self._SELECT.format(where="")))

    def groups_of(self, customer_id: str) -> list[IdentityGroup]:
        """Every identity group of one customer (for a customer whose turn came back)."""
        self._index()
        cursor = self.db.execute(self._SELECT.format(where="WHERE customer_id = ?"), (customer_id,))
        for _customer, groups in _grouped(cursor):
            return groups
        return []

    def rows_of(self, group: IdentityGroup) -> Iterator[StagedRow]:
        """Every row of ``group``'s identity, in source order, streamed (conflicts, copies)."""
        first = group.rows[0]
        cursor = self.db.execute(
            "SELECT customer_id, billing_provider, delivery_method_id, body FROM staged "
            "WHERE customer_id = ? AND billing_provider = ? AND delivery_method_id = ? ORDER BY seq",
            (first.customer_id, first.billing_provider, first.delivery_method_id),
        )
        while batch := cursor.fetchmany(1000):
            for customer_id, provider, dm_id, body in batch:
                yield _row(customer_id, provider, dm_id, body)

    def close(self) -> None:
        """Delete the file."""
        self.db.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def _grouped(cursor: sqlite3.Cursor) -> Iterator[tuple[str, list[IdentityGroup]]]:
    """Turn rows ordered by customer and identity into ``(customer_id, groups)``."""
    current: str | None = None
    groups: list[IdentityGroup] = []
    last_identity: tuple[str, str, str] | None = None
    while True:
        batch = cursor.fetchmany(1000)
        if not batch:
            break
        for customer_id, provider, dm_id, body, distinct in batch:
            if customer_id != current:
                if current is not None:
                    yield current, groups
                current, groups, last_identity = customer_id, [], None
            identity = (customer_id, provider, dm_id)
            if identity == last_identity:
                groups[-1].size += 1
                continue  # a copy or a conflicting row: counted, not kept
            groups.append(IdentityGroup([_row(customer_id, provider, dm_id, body)], distinct))
            last_identity = identity
    if current is not None:
        yield current, groups


def _row(customer_id: str, provider: str, dm_id: str, body: str) -> StagedRow:
    (
        row_no, key, method, configuration, tax, given, alias, row_key, row_hash, settled,
        name, aliases, custom_fields, missing,
    ) = json.loads(body)  # fmt: skip
    return StagedRow(
        row_no, key, customer_id, provider, dm_id, method, configuration, tax, given,
        alias, row_key, row_hash, settled, name, aliases, custom_fields, missing,
    )  # fmt: skip
