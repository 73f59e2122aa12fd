"""``sync/resolve.py``: ingest aliases to customers (cached, looked up at once), delivery methods to ids."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from airflow_provider_metronome.sync.resolve import AliasResolver, DeliveryMethods

ACME = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
GLOBEX = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a02"
STRIPE_DM = "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d01"
STRIPE_DM_2 = "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d02"
AWS_DM = "6b1f1d2f-1e9c-4d5f-8b54-6a4b7d1c2e02"
AWS_SQS_DM = "6b1f1d2f-1e9c-4d5f-8b54-6a4b7d1c2e03"
DIRECT = "direct_to_billing_provider"


class FakeCustomers:
    """Stands in for ``find_customer_by_ingest_alias``: records each lookup, answers from a table.

    Its futures record, when waited on, how many lookups had been started by then.
    """

    def __init__(self, by_alias: dict[str, str | int]) -> None:
        self.by_alias = by_alias
        self.started: list[str] = []
        self.started_when_first_awaited: int | None = None

    def lookup(self, alias: str) -> Future[dict[str, Any] | None]:
        self.started.append(alias)
        fake = self

        class Recorded(Future[dict[str, Any] | None]):
            def result(self, timeout: float | None = None) -> dict[str, Any] | None:
                if fake.started_when_first_awaited is None:
                    fake.started_when_first_awaited = len(fake.started)
                return super().result(timeout)

        future: Future[dict[str, Any] | None] = Recorded()
        found = self.by_alias.get(alias)
        future.set_result(None if found is None else {"id": found, "name": alias})
        return future


def test_aliases_resolve_to_customer_ids_and_unknown_ones_to_none() -> None:
    """Known aliases give their customer's id, unknown ones ``None``."""
    fake = FakeCustomers({"acme": ACME, "globex": GLOBEX})
    assert AliasResolver(fake.lookup).resolve_many(["acme", "nobody", "globex"]) == {
        "acme": ACME, "nobody": None, "globex": GLOBEX,
    }  # fmt: skip


def test_every_uncached_alias_is_looked_up_once_and_all_at_once() -> None:
    """Repeated aliases are looked up once; every lookup starts before the first answer is awaited."""
    fake = FakeCustomers({"acme": ACME, "globex": GLOBEX})
    resolver = AliasResolver(fake.lookup)
    resolver.resolve_many(["acme", "globex", "acme", "nobody", "globex"])
    assert sorted(fake.started) == ["acme", "globex", "nobody"]
    assert fake.started_when_first_awaited == 3
    assert resolver.lookups == 3


def test_hits_and_misses_are_cached() -> None:
    """A second resolve of known and unknown aliases makes no lookup; ``lookups`` counts only real ones."""
    fake = FakeCustomers({"acme": ACME})
    resolver = AliasResolver(fake.lookup)
    resolver.resolve_many(["acme", "nobody"])
    assert resolver.resolve_many(["nobody", "acme"]) == {"acme": ACME, "nobody": None}
    assert len(fake.started) == 2
    assert resolver.lookups == 2
    resolver.resolve_many(["acme", "globex"])
    assert fake.started[2:] == ["globex"]
    assert resolver.lookups == 3


def test_the_cache_is_bounded_and_least_recently_used_goes_first() -> None:
    """With room for 2, the alias not used for longest is forgotten (a hit counts as a use)."""
    fake = FakeCustomers({"a": "id-a", "b": "id-b", "c": "id-c"})
    resolver = AliasResolver(fake.lookup, cache_size=2)
    resolver.resolve_many(["a"])
    resolver.resolve_many(["b"])
    resolver.resolve_many(["a"])  # a hit: now b is the oldest
    resolver.resolve_many(["c"])  # evicts b
    assert fake.started == ["a", "b", "c"]
    resolver.resolve_many(["a", "c"])
    assert fake.started == ["a", "b", "c"], "a and c are still cached"
    resolver.resolve_many(["b"])
    assert fake.started == ["a", "b", "c", "b"], "b was evicted"


def test_numeric_customer_ids_become_text() -> None:
    """An id the API gives as a number is returned as a string."""
    assert AliasResolver(FakeCustomers({"acme": 42}).lookup).resolve_many(["acme"]) == {"acme": "42"}


def test_no_aliases_no_lookups() -> None:
    """An empty input resolves to an empty mapping without a lookup."""
    fake = FakeCustomers({})
    assert AliasResolver(fake.lookup).resolve_many([]) == {}
    assert fake.started == []


def test_a_failed_lookup_is_raised() -> None:
    """An error of the API call surfaces from ``resolve_many``; it is not taken for an unknown alias."""

    def lookup(alias: str) -> Future[dict[str, Any] | None]:
        future: Future[dict[str, Any] | None] = Future()
        future.set_exception(RuntimeError(f"lookup of {alias} failed"))
        return future

    with pytest.raises(RuntimeError, match="lookup of acme failed"):
        AliasResolver(lookup).resolve_many(["acme"])


def test_lookups_run_in_a_real_thread_pool() -> None:
    """Used as the engine does, with ``pool.submit``: 200 aliases resolved correctly in parallel."""
    table = {f"alias-{i}": f"id-{i}" for i in range(0, 200, 2)}
    with ThreadPoolExecutor(8) as pool:
        resolver = AliasResolver(lambda alias: pool.submit(lambda: _found(table, alias)))
        result = resolver.resolve_many(f"alias-{i}" for i in range(200))
    assert result == {f"alias-{i}": (f"id-{i}" if i % 2 == 0 else None) for i in range(200)}
    assert resolver.lookups == 200


def _found(table: dict[str, str], alias: str) -> dict[str, Any] | None:
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
