"""Customers the sync creates, and aliases it adds to existing ones.

**Creating.** A row whose ingest alias matches no active customer creates one when
``create_missing_customers`` is on: ``POST /v1/customers`` with the name, every alias
of its rows, the custom fields and the rows' billing provider configurations, all in
one request (https://docs.metronome.com/api-reference/customers/create-a-customer.md).
One request makes it atomic: no other sync can see the customer without its
configurations, so none can create them a second time. Two guards keep the customer
itself single:

* a deterministic Idempotency-Key (hash of the request), so a retried or concurrent
  identical request is replayed, never applied twice;
* Metronome's alias uniqueness: "409 Conflict if ingest alias is already in use"
  (https://docs.metronome.com/api-reference/idempotency.md). A 409 means the customer
  exists (another sync, an earlier run, a request whose answer was lost): it is looked
  up and synced like any existing customer (locked, read, diffed), never created again.

**Adding aliases.** ``setIngestAliases`` "fully replaces the set of ingest aliases"
(https://docs.metronome.com/api-reference/customers/create-or-update-customer-ingest-aliases.md),
so the call carries the customer's current aliases (read under its lock) plus the new
ones: an alias is never removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.client.idempotency import canonical_json, idempotency_key
from airflow_provider_metronome.exceptions import (
    MetronomeBadRequestError,
    MetronomeConflictError,
    MetronomeNotFoundError,
)

if TYPE_CHECKING:
    from airflow_provider_metronome.client.api import MetronomeApi
    from airflow_provider_metronome.client.types import Customer
    from airflow_provider_metronome.sync.staging import StagedRow

CREATE_OPERATION = "createCustomer"
ALIASES_OPERATION = "setIngestAliases"


@dataclass
class NewCustomer:
    """The customer a group of rows asks the sync to create.

    :param ingest_alias: the alias that names it (the rows' ``ingest_alias``).
    :param rows: its desired rows, one per identity.
    """

    ingest_alias: str
    rows: list[StagedRow]

    @property
    def aliases(self) -> list[str]:
        """Every alias its rows give, the key alias first, each once."""
        found = [self.ingest_alias]
        for row in self.rows:
            found.extend(a for a in row.aliases if a not in found)
        return found

    def disagreement(self) -> tuple[str, str] | None:
        """``(field, reason)`` when its rows disagree about the customer (never guess which is right)."""
        for name in ("customer_name", "custom_fields"):
            values = {canonical_json(getattr(r, name)) for r in self.rows}
            if len(values) > 1:
                numbers = ", ".join(str(r.row) for r in self.rows)
                return name, (
                    f"rows {numbers} create the customer with ingest alias {self.ingest_alias!r} "
                    f"but give different {name}; give the same on every row of the customer"
                )
        return None

    def request(self) -> dict[str, Any]:
        """The ``POST /v1/customers`` body (as :meth:`MetronomeApi.create_customer` arguments)."""
        first = self.rows[0]
        configurations = []
        for row in self.rows:
            item = row.payload()
            del item["customer_id"]
            configurations.append(item)
        return {
            "name": first.customer_name or self.ingest_alias,
            "ingest_aliases": self.aliases,
            "custom_fields": first.custom_fields,
            "configurations": configurations,
        }


@dataclass
class Created:
    """Metronome created the customer, its configurations with it.

    :param customer_id: the new customer.
    :param rows: the rows, now naming it.
    :param configurations: its configurations read back (for their ids), if read.
    """

    customer_id: str
    rows: list[StagedRow]
    configurations: list[dict[str, Any]] | None


@dataclass
class Exists:
    """The customer exists already: sync its rows like any existing customer's.

    :param customer_id: the customer holding the alias.
    :param rows: the rows, now naming it, with the aliases it lacks to add.
    """

    customer_id: str
    rows: list[StagedRow]


@dataclass
class Refused:
    """Metronome refused to create the customer; its rows are rejected.

    :param field: the row field at fault.
    :param reason: why.
    :param rows: the rows.
    """

    field: str
    reason: str
    rows: list[StagedRow]


Outcome = Created | Exists | Refused


def create_customer(api: MetronomeApi, new: NewCustomer, *, read_back: bool) -> Outcome:
    """In a worker: create ``new`` once, or find it (see the module docstring).

    :param read_back: read the new customer's configurations, for their ids (one more call).
    """
    body = new.request()
    key = idempotency_key(CREATE_OPERATION, body)
    try:
        customer = api.create_customer(**body, idempotency_key=key)
    except MetronomeConflictError as conflict:
        return _after_conflict(api, new, conflict)
    except (MetronomeBadRequestError, MetronomeNotFoundError) as err:
        return Refused(
            _row_field(err.api_message),
            f"Metronome refused to create the customer: {err.api_message}",
            new.rows,
        )
    customer_id = str(customer["id"])
    rows = [replace(r, customer_id=customer_id, customer_created=True, missing_aliases=[]) for r in new.rows]
    configurations = api.get_billing_provider_configurations(customer_id) if read_back else None
    return Created(customer_id, rows, configurations)


def _after_conflict(api: MetronomeApi, new: NewCustomer, conflict: MetronomeConflictError) -> Outcome:
    """A 409: the key alias's customer exists (use it), or an alias is held elsewhere (refuse)."""
    found = api.find_customer_by_ingest_alias(new.ingest_alias)
    if found is not None:
        return Exists(str(found["id"]), with_customer(new.rows, found))
    for alias in new.aliases[1:]:
        owner = api.find_customer_by_ingest_alias(alias)
        if owner is not None:
            return Refused(
                "ingest_aliases",
                f"ingest alias {alias!r} belongs to customer {owner['id']}; an alias names one customer",
                new.rows,
            )
    for alias in new.aliases:
        for archived in api.iter_customers(ingest_alias=alias, only_archived=True, page_size=1):
            return Refused(
                "ingest_alias" if alias == new.ingest_alias else "ingest_aliases",
                f"ingest alias {alias!r} belongs to archived customer {archived['id']}; Metronome keeps "
                "an archived customer's aliases, so no new customer can take it (remove it from "
                "that customer first)",
                new.rows,
            )
    # Neither: the key may still be in use by a request whose outcome is unknown. Never
    # guess: the task fails and its retry finds the customer (or creates it).
    raise conflict


def with_customer(rows: list[StagedRow], customer: Customer | dict[str, Any]) -> list[StagedRow]:
    """``rows`` naming ``customer``, each with the aliases it lists that the customer lacks."""
    held = set(customer.get("ingest_aliases") or [])
    customer_id = str(customer["id"])
    return [
        replace(
            r,
            customer_id=customer_id,
            missing_aliases=[a for a in [r.ingest_alias or "", *r.aliases] if a and a not in held],
        )
        for r in rows
    ]


@dataclass
class AliasChange:
    """What became of the aliases a customer's rows asked to add.

    :param added: aliases added (or, in a dry run, to add).
    :param refused: why they could not be added, if they could not.
    """

    added: list[str] = field(default_factory=list)
    refused: str | None = None


def add_missing_aliases(
    api: MetronomeApi, customer_id: str, rows: list[StagedRow], *, dry_run: bool
) -> AliasChange:
    """In a worker, under the customer's lock: add the aliases its rows list that it lacks.

    The customer is read first: ``setIngestAliases`` replaces the whole set, so the call
    carries the current aliases and the new ones.
    """
    wanted = list(dict.fromkeys(a for r in rows for a in r.missing_aliases))
    if not wanted:
        return AliasChange()
    current = list(api.get_customer(customer_id).get("ingest_aliases") or [])
    missing = [a for a in wanted if a not in current]
    if not missing or dry_run:
        return AliasChange(added=missing)
    union = current + missing
    key = idempotency_key(ALIASES_OPERATION, [customer_id, union])
    try:
        api.set_ingest_aliases(customer_id, union, idempotency_key=key)
    except (MetronomeConflictError, MetronomeBadRequestError) as err:
        owners = []
        for alias in missing:
            owner = api.find_customer_by_ingest_alias(alias)
            if owner is not None and str(owner["id"]) != customer_id:
                owners.append(f"{alias!r} belongs to customer {owner['id']}")
        why = "; ".join(owners) if owners else err.api_message
        return AliasChange(
            refused=f"Metronome refused to add ingest aliases to customer {customer_id}: {why}"
        )
    return AliasChange(added=missing)


def _row_field(message: str) -> str:
    """The row field a create-customer refusal is about, from where its message points."""
    for prefix, row_field in (
        ("ingest_aliases", "ingest_aliases"),
        ("name", "customer_name"),
        ("custom_fields", "custom_fields"),
        ("customer_billing_provider_configurations", "configuration"),
    ):
        if message.startswith(prefix):
            return row_field
    return "metronome"
