"""The bad-input corpus: every kind of malformed row is rejected, named and explained.

One sync over good rows mixed with every bad kind: each bad row must be rejected
with its row number, its key and the field at fault; every good row must be synced;
the counts must be exact.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from scripts import demo_data
from tests.conftest import TOKEN

if TYPE_CHECKING:
    from airflow_provider_metronome.emulator.testing import RunningEmulator
    from airflow_provider_metronome.models.report import Rejection

DIRECT = "direct_to_billing_provider"
ARCHIVED_ID = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a99"
UNKNOWN_ID = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4aff"
TEN_KB = "x" * 10_240


def _stripe(**over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ingest_alias": demo_data.alias(0),
        "billing_provider": "stripe",
        "delivery_method": DIRECT,
        "configuration": {"stripe_customer_id": "cus_ok"},
    }
    row.update(over)
    return {k: v for k, v in row.items() if v is not _DROP}


_DROP = object()

# (kind, row, field the rejection must name, words its reason must contain)
CORPUS: list[tuple[str, dict[str, Any], str, str]] = [
    ("bad UUID", _stripe(ingest_alias=_DROP, customer_id="1234-not-a-uuid"), "customer_id", "is not a UUID"),
    ("UUID without dashes", _stripe(ingest_alias=_DROP, customer_id="0c8b5a527c1e4f0e9a3b0c1d2e3f4a01"), "customer_id", "8-4-4-4-12"),
    ("customer_id as a number", _stripe(ingest_alias=_DROP, customer_id=12345), "customer_id", "must be a UUID string"),
    ("unknown billing provider", _stripe(billing_provider="paypal"), "billing_provider", "not a known billing_provider"),
    ("provider in the wrong case", _stripe(billing_provider="STRIPE"), "billing_provider", "did you mean 'stripe'"),
    ("empty billing provider", _stripe(billing_provider=""), "billing_provider", "required"),
    ("10 kB billing provider", _stripe(billing_provider=TEN_KB), "billing_provider", "10240 characters"),
    ("unknown delivery method", _stripe(delivery_method="email"), "delivery_method", "not a known delivery_method"),
    ("unknown tax provider", _stripe(tax_provider="vertex"), "tax_provider", "not a known tax_provider"),
    ("missing required key", _stripe(configuration={"stripe_collection_method": "send_invoice"}), "configuration.stripe_customer_id", "requires stripe_customer_id"),
    ("required key of the wrong JSON type", _stripe(configuration={"stripe_customer_id": 42}), "configuration.stripe_customer_id", "must be a string"),
    ("enum value not documented", _stripe(configuration={"stripe_customer_id": "c", "stripe_collection_method": "cash"}), "configuration.stripe_collection_method", "not one of"),
    ("boolean given as text", _stripe(configuration={"stripe_customer_id": "c", "leave_stripe_invoices_in_draft": "yes"}), "configuration.leave_stripe_invoices_in_draft", "true or false"),
    ("invalid JSON text", _stripe(configuration='{"stripe_customer_id": '), "configuration", "not valid JSON"),
    ("JSON array instead of object", _stripe(configuration="[1, 2]"), "configuration", "got an array"),
    ("SQL NULL configuration", _stripe(configuration=None), "configuration", "required (NULL)"),
    ("the string 'null'", _stripe(configuration="null"), "configuration", "got null"),
    ("empty string configuration", _stripe(configuration=""), "configuration", "is empty"),
    ("whitespace configuration", _stripe(configuration="   "), "configuration", "is empty"),
    ("both customer_id and ingest_alias", _stripe(customer_id=demo_data.customer_id(0)), "customer_id/ingest_alias", "both are set"),
    ("neither customer_id nor ingest_alias", _stripe(ingest_alias=_DROP), "customer_id/ingest_alias", "both are empty"),
    ("delivery_method disagreeing with its id", _stripe(delivery_method="aws_sqs", delivery_method_id=demo_data.STRIPE_DM), "delivery_method", "disagrees with delivery_method_id"),
    ("neither delivery_method nor its id", _stripe(delivery_method=_DROP), "delivery_method/delivery_method_id", "both are empty"),
    ("10 kB ingest alias", _stripe(ingest_alias=TEN_KB), "ingest_alias", "at most 128"),
    ("unknown ingest alias", _stripe(ingest_alias="acct-does-not-exist"), "ingest_alias", "no active Metronome customer"),
    ("unicode and emoji alias, unknown", _stripe(ingest_alias="客户-🚀-ñ"), "ingest_alias", "'客户-🚀-ñ'"),
    ("alias of an archived customer", _stripe(ingest_alias="acct-archived"), "ingest_alias", "no active Metronome customer"),
    ("archived customer by id", _stripe(ingest_alias=_DROP, customer_id=ARCHIVED_ID), "customer_id", "archived"),
    ("unknown customer id", _stripe(ingest_alias=_DROP, customer_id=UNKNOWN_ID), "customer_id", "no Metronome customer has id"),
    ("unknown delivery method id", _stripe(delivery_method=_DROP, delivery_method_id=UNKNOWN_ID), "delivery_method_id", "not a delivery method of this Metronome account"),
    ("delivery method id of another provider", _stripe(delivery_method=_DROP, delivery_method_id=demo_data.AWS_DM), "delivery_method_id", "is a aws_marketplace delivery method"),
    ("bad delivery method id", _stripe(delivery_method=_DROP, delivery_method_id="dm-1"), "delivery_method_id", "is not a UUID"),
    ("delivery method not set up for the provider", _stripe(delivery_method="aws_sqs"), "delivery_method", "no aws_sqs delivery method is configured for stripe"),
    ("tackle outside AWS Marketplace", _stripe(delivery_method="tackle"), "delivery_method", "not available for stripe"),
    ("tax provider on a non-Stripe provider", {**_stripe(billing_provider="netsuite", configuration={"netsuite_customer_id": "1"}), "tax_provider": "avalara"}, "tax_provider", "only supported for stripe"),
    ("tax provider without a payment-intent collection", _stripe(tax_provider="avalara"), "tax_provider", "needs stripe_collection_method"),
    ("AWS region that is not one", {"ingest_alias": demo_data.alias(3), "billing_provider": "aws_marketplace", "delivery_method": DIRECT,
                                    "configuration": {"aws_customer_id": "a", "aws_product_code": "p", "aws_region": "mars-1"}}, "configuration.aws_region", "not a valid region"),
    ("not a mapping at all", ["not", "a", "row"], "row", "mapping"),  # type: ignore[list-item]
]  # fmt: skip

CONFLICT_ROWS = [
    {"ingest_alias": demo_data.alias(6), "billing_provider": "netsuite", "delivery_method": DIRECT, "configuration": {"netsuite_customer_id": "A"}},
    {"ingest_alias": demo_data.alias(6), "billing_provider": "netsuite", "delivery_method": DIRECT, "configuration": {"netsuite_customer_id": "B"}},
]  # fmt: skip


@pytest.fixture
def client(emulator: RunningEmulator) -> MetronomeClient:
    seed = demo_data.build(12, with_bad_rows=False).seed
    seed["customers"].append(
        {"id": ARCHIVED_ID, "name": "Gone", "ingest_aliases": ["acct-archived"], "archived": True}
    )
    emulator.admin("reset", seed)
    return MetronomeClient(emulator.url, TOKEN, retry=RetryPolicy(initial_backoff=0.01))


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_QUOTED = re.compile(r"'[^']*'")


def _kind(rejection: Rejection) -> tuple[str, str]:
    """A rejection's field and reason, with the values it quotes (text, ids, numbers) masked."""
    reason = _QUOTED.sub("'…'", _UUID.sub("<id>", rejection.reason))
    return rejection.field, re.sub(r"\d+", "N", reason)


def test_the_corpus_exercises_at_least_25_distinct_rejections(client: MetronomeClient) -> None:
    """The corpus alone, through the real sync: every row rejected, for at least 25 distinct reasons.

    Reasons are compared with the values they quote masked, so two rows that differ
    only in a value (two unknown aliases) count once: what is counted is what the
    validation and resolution code tell apart, not how many rows the corpus lists.
    """
    streamed: list[Rejection] = []
    report = BillingConfigSync(client, on_reject=streamed.append).run([row for _k, row, _f, _w in CORPUS])
    assert report.rejected == len(streamed) == len(CORPUS)
    assert sorted(r.row for r in streamed) == list(range(1, len(CORPUS) + 1)), "each row rejected once"
    kinds = {_kind(r) for r in streamed}
    assert len(kinds) >= 25, sorted(kinds)
    assert len({field for field, _reason in kinds}) >= 12, "the rejections name many different fields"


def test_every_bad_row_is_rejected_named_and_explained(
    emulator: RunningEmulator, client: MetronomeClient
) -> None:
    good = [demo_data.desired_row(i) for i in (0, 1, 2, 3)]
    duplicate = dict(good[1])
    rows: list[Any] = [*good, duplicate, *CONFLICT_ROWS, *(row for _kind, row, _f, _r in CORPUS)]
    first_bad = len(good) + 1 + len(CONFLICT_ROWS) + 1
    streamed: list[Rejection] = []
    report = BillingConfigSync(client, SyncOptions(batch_size=5), on_reject=streamed.append).run(rows)

    by_row = {r.row: r for r in streamed}
    problems = []
    for offset, (kind, row, field, words) in enumerate(CORPUS):
        number = first_bad + offset
        rejection = by_row.get(number)
        if rejection is None:
            problems.append(f"{kind}: row {number} was not rejected")
            continue
        if field not in rejection.field.split(", "):
            problems.append(f"{kind}: field {rejection.field!r}, expected {field!r}")
        if words not in rejection.reason:
            problems.append(f"{kind}: reason {rejection.reason!r} lacks {words!r}")
        described = rejection.describe()
        assert f"row {number}" in described
        assert rejection.field in described
        if isinstance(row, dict) and (row.get("ingest_alias") or row.get("customer_id")):
            assert rejection.key != "unreadable row", kind
    assert problems == []

    conflict_rows = {len(good) + 2, len(good) + 3}
    assert {r.row for r in streamed if "conflicts with row" in r.reason} == conflict_rows
    assert report.rejected == len(CORPUS) + 2 == len(streamed)
    assert report.duplicates == 1
    assert report.created == len(good)
    assert report.rows_read == len(rows)
    assert report.rows_read == report.created + report.unchanged + report.duplicates + report.rejected
    active = [c for c in emulator.admin("state")["billing_provider_configurations"] if not c["archived_at"]]
    assert sorted(c["customer_id"] for c in active) == sorted(demo_data.customer_id(i) for i in (0, 1, 2, 3))


def test_rejection_keys_stay_short_for_huge_values(client: MetronomeClient) -> None:
    report = BillingConfigSync(client).run([_stripe(ingest_alias=TEN_KB)])
    assert len(report.rejections[0].key) < 200
    assert len(json.dumps(report.summary())) < 5000
