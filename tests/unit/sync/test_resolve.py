"""``sync/resolve.py``: a run's ingest aliases to customers (listed or looked up), delivery methods to ids."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from airflow_provider_metronome.sync.resolve import DeliveryMethods

ACME = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
GLOBEX = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a02"
STRIPE_DM = "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d01"
STRIPE_DM_2 = "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d02"
AWS_DM = "6b1f1d2f-1e9c-4d5f-8b54-6a4b7d1c2e02"
AWS_SQS_DM = "6b1f1d2f-1e9c-4d5f-8b54-6a4b7d1c2e03"
DIRECT = "direct_to_billing_provider"


def test_a_failed_lookup_is_raised() -> None:
    """An error of the API call surfaces from ``resolve``; it is not taken for an unknown alias."""

    def lookup(alias: str) -> Future[dict[str, Any] | None]:
        future: Future[dict[str, Any] | None] = Future()
        future.set_exception(RuntimeError(f"lookup of {alias} failed"))
        return future

    import sqlite3

    from airflow_provider_metronome.sync.resolve import AliasBook

    aliases = AliasBook(sqlite3.connect(":memory:"), lambda: iter(()), lookup)
    aliases.want(["acme"])
    with pytest.raises(RuntimeError, match="lookup of acme failed"):
        aliases.resolve()


def test_lookups_run_in_a_real_thread_pool_and_ids_become_text() -> None:
    """Used as the engine does, with ``pool.submit``: aliases resolved correctly in parallel."""
    import sqlite3

    from airflow_provider_metronome.sync.resolve import AliasBook

    table = {f"alias-{i}": i for i in range(0, 8, 2)}
    with ThreadPoolExecutor(8) as pool:
        aliases = AliasBook(
            sqlite3.connect(":memory:"),
            lambda: iter(()),
            lambda alias: pool.submit(lambda: _found(table, alias)),
        )
        aliases.want(f"alias-{i}" for i in range(8))
        stats = aliases.resolve()
    wanted = [f"alias-{i}" for i in range(8)]
    assert aliases.resolved(wanted) == {f"alias-{i}": (str(i) if i % 2 == 0 else None) for i in range(8)}
    assert stats.lookups == 8


def _found(table: dict[str, int], alias: str) -> dict[str, Any] | None:
    return {"id": table[alias]} if alias in table else None


# -- delivery methods -----------------------------------------------------------------------------


def dm(provider: str, method: str, dm_id: str) -> dict[str, Any]:
    return {"billing_provider": provider, "delivery_method": method, "delivery_method_id": dm_id,
            "delivery_method_configuration": {}}  # fmt: skip


METHODS = DeliveryMethods([
    dm("stripe", DIRECT, STRIPE_DM),
    dm("aws_marketplace", DIRECT, AWS_DM),
    dm("aws_marketplace", "aws_sqs", AWS_SQS_DM),
])  # fmt: skip


def test_a_delivery_method_id_of_the_provider_resolves_to_itself() -> None:
    """A known id of the row's provider is found, with no field or reason."""
    assert METHODS.resolve("stripe", None, STRIPE_DM) == (dm("stripe", DIRECT, STRIPE_DM), "", "")


def test_a_name_and_the_id_that_agree_resolve_to_that_method() -> None:
    """A row giving both the name and a matching id of its provider gets that delivery method."""
    found, _field, reason = METHODS.resolve("aws_marketplace", "aws_sqs", AWS_SQS_DM)
    assert (found, reason) == (dm("aws_marketplace", "aws_sqs", AWS_SQS_DM), "")


def test_an_unknown_delivery_method_id() -> None:
    """An id the account does not have is refused on ``delivery_method_id``, pointing at where ids come from."""
    found, field, reason = METHODS.resolve("stripe", None, STRIPE_DM_2)
    assert (found, field) == (None, "delivery_method_id")
    assert reason == (
        f"{STRIPE_DM_2} is not a delivery method of this Metronome account (see listConfiguredBillingProviders)"
    )


def test_a_delivery_method_id_of_another_provider() -> None:
    """An id of another provider is refused, naming both providers."""
    found, field, reason = METHODS.resolve("stripe", None, AWS_DM)
    assert (found, field) == (None, "delivery_method_id")
    assert reason == f"{AWS_DM} is a aws_marketplace delivery method, not stripe"


def test_a_delivery_method_name_resolves_per_provider() -> None:
    """The same name resolves to each provider's own delivery method."""
    assert METHODS.resolve("stripe", DIRECT, None)[0] == dm("stripe", DIRECT, STRIPE_DM)
    assert METHODS.resolve("aws_marketplace", DIRECT, None)[0] == dm("aws_marketplace", DIRECT, AWS_DM)
    assert METHODS.resolve("aws_marketplace", "aws_sqs", None)[0] == dm(
        "aws_marketplace", "aws_sqs", AWS_SQS_DM
    )


def test_a_name_not_set_up_lists_what_is() -> None:
    """A name the provider lacks is refused, listing the provider's configured names, sorted."""
    assert METHODS.resolve("aws_marketplace", "tackle", None) == (
        None, "delivery_method",
        "no tackle delivery method is configured for aws_marketplace (configured: aws_sqs, direct_to_billing_provider)",
    )  # fmt: skip


def test_a_provider_with_no_delivery_method_at_all() -> None:
    """A provider with nothing set up says so."""
    assert METHODS.resolve("netsuite", DIRECT, None) == (
        None, "delivery_method",
        "no direct_to_billing_provider delivery method is configured for netsuite (none is set up for it)",
    )  # fmt: skip


def test_an_ambiguous_name_asks_for_the_id() -> None:
    """Two delivery methods of one provider and name: refused, listing both ids."""
    two = DeliveryMethods([dm("stripe", DIRECT, STRIPE_DM), dm("stripe", DIRECT, STRIPE_DM_2)])
    assert two.resolve("stripe", DIRECT, None) == (
        None, "delivery_method",
        f"2 direct_to_billing_provider delivery methods are configured for stripe "
        f"({STRIPE_DM}, {STRIPE_DM_2}); give delivery_method_id to choose one",
    )  # fmt: skip
    assert two.resolve("stripe", None, STRIPE_DM_2)[0] == dm("stripe", DIRECT, STRIPE_DM_2), (
        "the id still chooses one"
    )


def test_no_delivery_methods_at_all() -> None:
    """An account with none refuses every row, by name or id."""
    empty = DeliveryMethods([])
    assert empty.resolve("stripe", DIRECT, None)[1:] == (
        "delivery_method",
        "no direct_to_billing_provider delivery method is configured for stripe (none is set up for it)",
    )
    assert empty.resolve("stripe", None, STRIPE_DM)[:2] == (None, "delivery_method_id")


# -- AliasBook: a run's aliases resolved at once, by listing or one by one --------------------


class Account:
    """An account's active customers, listed 100 a page; counts pages and lookups."""

    def __init__(self, customers: int, *, archived: tuple[str, ...] = ()) -> None:
        self.customers = [{"id": f"id-{i}", "ingest_aliases": [f"a-{i}", f"b-{i}"]} for i in range(customers)]
        self.archived = set(archived)  # aliases held by archived customers: never listed nor found
        self.pages = 0
        self.lookups: list[str] = []

    def list_customers(self) -> Any:
        for start in range(0, len(self.customers), 100):
            self.pages += 1
            yield from self.customers[start : start + 100]

    def lookup(self, alias: str) -> Future[dict[str, Any] | None]:
        self.lookups.append(alias)
        future: Future[dict[str, Any] | None] = Future()
        found = next((c for c in self.customers if alias in c["ingest_aliases"]), None)
        future.set_result(found)
        return future


def book(account: Account) -> Any:
    import sqlite3

    from airflow_provider_metronome.sync.resolve import AliasBook

    return AliasBook(sqlite3.connect(":memory:"), account.list_customers, account.lookup)


def test_many_aliases_are_resolved_by_listing_the_account_once() -> None:
    account = Account(1000)
    aliases = book(account)
    wanted = [f"a-{i}" for i in range(0, 1000, 3)] + ["nobody", "gone"]
    aliases.want(wanted)
    stats = aliases.resolve()
    # Ten pages find the 334 that exist; the two left cost less looked up than another page.
    assert (stats.pages, stats.aliases) == (10, len(wanted))
    assert sorted(account.lookups) == ["gone", "nobody"]
    found = aliases.resolved(wanted)
    assert found["a-3"] == "id-3"
    assert found["nobody"] is None
    assert found["gone"] is None


def test_a_few_aliases_are_looked_up_one_by_one() -> None:
    account = Account(1000)
    aliases = book(account)
    aliases.want(["a-1", "b-2", "nobody"])
    stats = aliases.resolve()
    assert (account.pages, stats.pages) == (0, 0)
    assert sorted(account.lookups) == ["a-1", "b-2", "nobody"]
    assert aliases.resolved(["a-1", "b-2", "nobody"]) == {"a-1": "id-1", "b-2": "id-2", "nobody": None}


def test_listing_stops_once_it_cost_what_lookups_would() -> None:
    """20 aliases in an account of 100,000 customers (1,000 pages): 20 pages, then lookups."""
    account = Account(100_000)
    aliases = book(account)
    wanted = [f"a-{i}" for i in range(50_000, 50_020)]
    aliases.want(wanted)
    stats = aliases.resolve()
    assert (stats.pages, stats.lookups, stats.listed_all) == (20, 20, False)
    assert stats.pages + stats.lookups <= 2 * len(wanted), "never more than twice the cheaper way"
    assert aliases.resolved(wanted) == {a: f"id-{a[2:]}" for a in wanted}


def test_a_migration_into_a_small_account_lists_it_to_the_end() -> None:
    """5,000 aliases of customers to create, none existing yet, in an account of 350
    customers: 4 pages say so; no lookup (a migration's aliases mostly match nothing)."""
    account = Account(350)
    aliases = book(account)
    wanted = [f"new-{i}" for i in range(5000)] + ["a-7", "b-349"]
    aliases.want(wanted)
    stats = aliases.resolve()
    assert (stats.pages, stats.lookups, stats.listed_all) == (4, 0, True)
    found = aliases.resolved(wanted)
    assert (found["new-0"], found["a-7"], found["b-349"]) == (None, "id-7", "id-349")


def test_a_migration_into_a_large_account_costs_at_most_twice_the_lookups() -> None:
    account = Account(100_000)
    aliases = book(account)
    wanted = [f"new-{i}" for i in range(30)]
    aliases.want(wanted)
    stats = aliases.resolve()
    assert (stats.pages, stats.lookups) == (30, 30)
    assert set(aliases.resolved(wanted).values()) == {None}


def test_listing_and_lookups_give_the_same_answers() -> None:
    wanted = [f"a-{i}" for i in range(0, 300)] + [f"b-{i}" for i in range(250, 320)] + ["x", "y"]
    listed, looked = Account(300), Account(300)
    by_listing, by_lookup = book(listed), book(looked)
    by_listing.want(wanted)
    by_listing.resolve()
    for alias in wanted:
        by_lookup.want([alias])
        by_lookup.resolve()
    assert listed.lookups == []
    assert looked.pages == 0
    assert by_listing.resolved(wanted) == by_lookup.resolved(wanted)
