"""``sync/writer.py``: batches created with one keyed call, refused batches split, 409 never split.

The API is a hand-written fake that records every call and keeps the configurations
it created; after a 5xx it calls ``verify`` as the client's executor does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import pytest

from airflow_provider_metronome.exceptions import (
    MetronomeAPIError,
    MetronomeAuthError,
    MetronomeBadRequestError,
    MetronomeConflictError,
    MetronomeNotFoundError,
    MetronomePayloadTooLargeError,
    MetronomeRateLimitError,
    MetronomeServerError,
)
from airflow_provider_metronome.sync.diff import matches
from airflow_provider_metronome.sync.staging import StagedRow
from airflow_provider_metronome.sync.writer import BatchWriter, api_field

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow_provider_metronome.client.api import MetronomeApi

ACME = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
GLOBEX = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a02"
STRIPE_DM = "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d01"
PATH = "/v1/setCustomerBillingProviderConfigurations"


def staged(n: int, customer: str = ACME) -> StagedRow:
    return StagedRow(
        row=n, key=f"row {n}", customer_id=customer, billing_provider="stripe", delivery_method_id=STRIPE_DM,
        delivery_method="direct_to_billing_provider", configuration={"stripe_customer_id": f"cus_{n}"},
        tax_provider=None, given_delivery="delivery_method_id",
    )  # fmt: skip


@dataclass
class Call:
    items: list[dict[str, Any]]
    key: str | None

    @property
    def numbers(self) -> list[int]:
        """The rows sent, by their ``cus_<n>``."""
        return [int(i["configuration"]["stripe_customer_id"].removeprefix("cus_")) for i in self.items]


@dataclass
class FakeApi:
    """The two calls :class:`BatchWriter` makes, on an in-memory account.

    :param refuse: returns the error to answer a batch with, or ``None`` to create it.
    :param applied_before_5xx: the next call creates this many items, then answers 5xx
        (the client then calls ``verify``; when it finds nothing, the retry creates all).
    """

    refuse: Callable[[list[dict[str, Any]]], MetronomeAPIError | None] = lambda items: None
    applied_before_5xx: int | None = None
    configs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    created: int = 0

    def set_billing_provider_configurations(
        self,
        configurations: Sequence[dict[str, Any]],
        *,
        idempotency_key: str | None = None,
        verify: Callable[[], list[dict[str, Any]] | None] | None = None,
    ) -> list[dict[str, Any]]:
        items = list(configurations)
        self.calls.append(Call(items, idempotency_key))
        error = self.refuse(items)
        if error is not None:
            raise error
        if self.applied_before_5xx is not None:
            applied, self.applied_before_5xx = self.applied_before_5xx, None
            for item in items[:applied]:
                self._create(item)
            assert verify is not None, "a keyed create always brings its verify"
            found = verify()
            if found is not None:
                return found
        return [self._create(item) for item in items]

    def get_billing_provider_configurations(
        self, customer_id: str, *, include_archived: bool = False
    ) -> list[dict[str, Any]]:
        self.reads.append(customer_id)
        return [dict(c) for c in self.configs.get(customer_id, [])]

    def _create(self, item: dict[str, Any]) -> dict[str, Any]:
        self.created += 1
        config = {
            "id": f"cfg-{self.created}", "customer_id": item["customer_id"],
            "billing_provider": item["billing_provider"], "delivery_method_id": item["delivery_method_id"],
            "configuration": dict(item["configuration"]), "tax_provider": item.get("tax_provider"),
            "archived_at": None,
        }  # fmt: skip
        self.configs.setdefault(item["customer_id"], []).append(config)
        return {"id": config["id"]}


def refusing(
    bad: set[int], error: type[MetronomeAPIError] = MetronomeBadRequestError, status: int = 400
) -> Any:
    """A ``refuse`` that answers ``error`` to any batch holding one of the ``bad`` rows (by number)."""

    def refuse(items: list[dict[str, Any]]) -> MetronomeAPIError | None:
        for i, item in enumerate(items):
            if int(item["configuration"]["stripe_customer_id"].removeprefix("cus_")) in bad:
                return error(status, f"data[{i}].configuration.stripe_customer_id: unknown in Stripe",
                             method="POST", path=PATH)  # fmt: skip
        return None

    return refuse


def writer(api: FakeApi, basis: dict[str, set[str]]) -> BatchWriter:
    """A :class:`BatchWriter` on the fake (it has the only two calls the writer makes)."""
    return BatchWriter(cast("MetronomeApi", api), basis)


def ids_of(api: FakeApi) -> dict[int, str]:
    """Row number → id of the configuration the fake created for it."""
    return {
        int(c["configuration"]["stripe_customer_id"].removeprefix("cus_")): c["id"]
        for configs in api.configs.values()
        for c in configs
    }


# -- api_field ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "split"),
    [
        (
            "data[0].configuration.stripe_customer_id: unknown",
            ("configuration.stripe_customer_id", "unknown"),
        ),
        ("data[12].tax_provider: not allowed", ("tax_provider", "not allowed")),
        ("data[3]: customer not found", ("row", "customer not found")),
        ("data[0].configuration: bad\nsecond line", ("configuration", "bad\nsecond line")),
        ("customer 123 not found", ("metronome", "customer 123 not found")),
        (
            "configuration.x: looks like a field but lacks data[i]",
            ("metronome", "configuration.x: looks like a field but lacks data[i]"),
        ),
    ],
)
def test_api_field_splits_the_apis_message(message: str, split: tuple[str, str]) -> None:
    """``data[i].<field>: reason`` gives ``(field, reason)``; ``data[i]:`` the row; anything else ``metronome``."""
    assert api_field(message) == split


# -- batches -----------------------------------------------------------------------------------


def test_a_batch_is_created_with_one_call_in_order() -> None:
    """Five rows: one call carrying their payloads, each row paired with the id answered for it."""
    api = FakeApi()
    rows = [staged(n) for n in range(1, 6)]
    created, rejected = writer(api, {}).create(rows)
    assert [c.items for c in api.calls] == [[r.payload() for r in rows]]
    assert created == [(r, f"cfg-{n}") for n, r in enumerate(rows, start=1)]
    assert rejected == []


def _key(rows: list[StagedRow], basis: dict[str, set[str]]) -> str | None:
    api = FakeApi()
    writer(api, basis).create(rows)
    return api.calls[0].key


def test_the_idempotency_key_is_deterministic_over_payload_and_basis() -> None:
    """Same rows and state: same key. Other rows, or another state of the batch's customers: another key."""
    rows = [staged(1), staged(2, GLOBEX)]
    basis = {ACME: {"cfg-a", "cfg-b"}, GLOBEX: set()}
    key = _key(rows, basis)
    assert key is not None
    assert key.startswith("apm-")
    assert _key(rows, {ACME: {"cfg-b", "cfg-a"}, GLOBEX: set()}) == key
    assert _key(rows, {**basis, "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a03": {"x"}}) == key, (
        "customers outside the batch do not change its key"
    )
    assert _key(rows, {ACME: {"cfg-a"}, GLOBEX: set()}) != key, "an archived/created configuration changes it"
    assert _key([staged(1), staged(3, GLOBEX)], basis) != key
    assert _key([staged(2, GLOBEX), staged(1)], basis) != key, "the key follows the payload's order"


@pytest.mark.parametrize(
    ("error", "status"),
    [(MetronomeBadRequestError, 400), (MetronomeBadRequestError, 422), (MetronomeNotFoundError, 404)],
)
def test_a_refused_row_is_found_by_halving(error: type[MetronomeAPIError], status: int) -> None:
    """A 400/404/422 batch is halved until the bad row stands alone; it is rejected, the others created."""
    api = FakeApi(refuse=refusing({6}, error, status))
    rows = [staged(n) for n in range(1, 9)]
    created, rejected = writer(api, {}).create(rows)
    assert [c.numbers for c in api.calls] == [
        [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4], [5, 6, 7, 8], [5, 6], [5], [6], [7, 8],
    ]  # fmt: skip
    assert rejected == [
        (rows[5], "configuration.stripe_customer_id", "Metronome refused it: unknown in Stripe")
    ]
    ids = ids_of(api)
    assert sorted(ids) == [1, 2, 3, 4, 5, 7, 8], "every good row created exactly once"
    assert sorted(created, key=lambda c: c[0].row) == [(r, ids[r.row]) for r in rows if r.row != 6]


def test_several_bad_rows_are_each_rejected() -> None:
    """Bad rows anywhere in the batch are all found; every good row is created once."""
    api = FakeApi(refuse=refusing({1, 4, 5, 7}))
    rows = [staged(n) for n in range(1, 8)]
    created, rejected = writer(api, {}).create(rows)
    assert sorted(r.row for r, _f, _reason in rejected) == [1, 4, 5, 7]
    assert sorted(r.row for r, _id in created) == [2, 3, 6]
    assert sorted(ids_of(api)) == [2, 3, 6]


def test_a_batch_of_only_bad_rows_costs_2n_minus_1_calls() -> None:
    """Splitting is bounded: n bad rows cost at most 2n - 1 calls."""
    api = FakeApi(refuse=refusing(set(range(1, 9))))
    created, rejected = writer(api, {}).create([staged(n) for n in range(1, 9)])
    assert (created, len(rejected), len(api.calls)) == ([], 8, 15)


def test_a_409_is_raised_and_never_split() -> None:
    """A 409 (the key is still in use) is raised after the one call: no half is re-sent under a new key."""
    conflict = MetronomeConflictError(409, "Idempotency-Key in use", method="POST", path=PATH)
    api = FakeApi(refuse=lambda items: conflict)
    with pytest.raises(MetronomeConflictError):
        writer(api, {}).create([staged(n) for n in range(1, 9)])
    assert len(api.calls) == 1
    assert api.reads == []
    assert api.configs == {}


@pytest.mark.parametrize(
    "error",
    [
        MetronomeServerError(500, "boom", method="POST", path=PATH, attempts=4),
        MetronomeRateLimitError(429, "slow down", method="POST", path=PATH),
        MetronomeAuthError(401, "bad token", method="POST", path=PATH),
    ],
)
def test_other_failures_are_raised_not_split(error: MetronomeAPIError) -> None:
    """5xx after its retries, 429 and 401 fail the batch whole: splitting cannot help."""
    api = FakeApi(refuse=lambda items: error)
    with pytest.raises(type(error)):
        writer(api, {}).create([staged(n) for n in range(1, 5)])
    assert len(api.calls) == 1


def test_a_413_splits_until_the_batches_fit() -> None:
    """A batch too large (413) is split until each part is accepted; nothing is rejected."""

    def too_large(items: list[dict[str, Any]]) -> MetronomeAPIError | None:
        if len(items) > 2:
            return MetronomePayloadTooLargeError(413, "Request Entity Too Large", method="POST", path=PATH)
        return None

    api = FakeApi(refuse=too_large)
    rows = [staged(n) for n in range(1, 9)]
    created, rejected = writer(api, {}).create(rows)
    assert [len(c.items) for c in api.calls] == [8, 4, 2, 2, 4, 2, 2]
    assert rejected == []
    assert sorted(r.row for r, _id in created) == list(range(1, 9))


def test_a_single_row_too_large_is_rejected() -> None:
    """One row still answered 413 is rejected with the API's message (no field to name)."""
    api = FakeApi(
        refuse=lambda items: MetronomePayloadTooLargeError(
            413, "Request Entity Too Large", method="POST", path=PATH
        )
    )
    row = staged(1)
    assert writer(api, {}).create([row]) == (
        [],
        [(row, "metronome", "Metronome refused it: Request Entity Too Large")],
    )


# -- after a 5xx: what verify finds ------------------------------------------------------------


def test_a_batch_applied_before_its_5xx_is_taken_as_created() -> None:
    """Verify finds every row created: the batch is done with its one call, no second copy."""
    api = FakeApi(applied_before_5xx=4)
    rows = [staged(n) for n in range(1, 5)]
    created, rejected = writer(api, {ACME: set()}).create(rows)
    assert len(api.calls) == 1
    assert api.reads == [ACME], "one read per customer"
    assert created == [(r, f"cfg-{n}") for n, r in enumerate(rows, start=1)]
    assert rejected == []
    assert api.created == 4


def test_a_partly_applied_batch_resends_only_the_rest_under_a_new_key() -> None:
    """Two of six rows created before the 5xx: they are taken, the four others re-sent with a new key."""
    api = FakeApi(applied_before_5xx=2)
    rows = [staged(1), staged(2), staged(3, GLOBEX), staged(4), staged(5, GLOBEX), staged(6)]
    batch_writer = writer(api, {ACME: set(), GLOBEX: set()})
    created, rejected = batch_writer.create(rows)
    assert [c.numbers for c in api.calls] == [[1, 2, 3, 4, 5, 6], [3, 4, 5, 6]]
    assert api.calls[0].key != api.calls[1].key
    assert sorted(api.reads) == [ACME, GLOBEX], "each customer of the batch read once"
    assert rejected == []
    assert api.created == 6, "no row created twice"
    ids = ids_of(api)
    assert sorted((r.row, cid) for r, cid in created) == sorted(ids.items())
    assert batch_writer.basis[ACME] == {ids[1], ids[2]}, "what was created joins the basis of later keys"


def test_nothing_applied_before_the_5xx_means_a_retry() -> None:
    """Verify finds nothing: the client's retry creates the batch, once."""
    api = FakeApi(applied_before_5xx=0)
    created, _rejected = writer(api, {ACME: set()}).create([staged(1), staged(2)])
    assert api.created == 2
    assert [cid for _r, cid in created] == ["cfg-1", "cfg-2"]


def test_verify_does_not_take_a_configuration_that_existed_before() -> None:
    """A matching configuration in the basis (there before the plan) is not taken for this batch's work."""
    api = FakeApi(applied_before_5xx=0)
    row = staged(1)
    old = {"id": "cfg-old", "customer_id": ACME, "billing_provider": "stripe", "delivery_method_id": STRIPE_DM,
           "configuration": {"stripe_customer_id": "cus_1"}, "tax_provider": None, "archived_at": None}  # fmt: skip
    assert matches(row, old)
    api.configs[ACME] = [old]
    created, _rejected = writer(api, {ACME: {"cfg-old"}}).create([row])
    assert created == [(row, "cfg-1")]
