"""Every validation rule of the warehouse row contract, one case each."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_metronome.models.row import BillingConfigRow, RowProblem, parse_row

CID = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
DMID = "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d01"
GOOD: dict[str, Any] = {
    "customer_id": CID,
    "billing_provider": "stripe",
    "configuration": {"stripe_customer_id": "cus_1", "stripe_collection_method": "charge_automatically"},
    "delivery_method": "direct_to_billing_provider",
}


def problems(**change: Any) -> list[RowProblem]:
    row = {**GOOD, **change}
    for k in [k for k, v in change.items() if v is _DROP]:
        row.pop(k)
    result = parse_row(row)
    # parse_row returns a BillingConfigRow when it accepts the row: a list means rejected.
    assert isinstance(result, list), f"expected a rejection, got {result!r}"
    assert result, "a rejection names at least one problem"
    assert all(p.field and p.reason for p in result), result
    return result


_DROP = object()


def test_good_row() -> None:
    row = parse_row(GOOD)
    assert isinstance(row, BillingConfigRow)
    assert row.customer_id == CID


def test_configuration_as_json_text_and_extra_columns() -> None:
    row = parse_row(
        {**GOOD, "configuration": '{"stripe_customer_id": "cus_1"}', "updated_at": "x", "name": "Acme"}
    )
    assert isinstance(row, BillingConfigRow)
    assert row.configuration == {"stripe_customer_id": "cus_1"}


def test_blank_strings_count_as_missing() -> None:
    row = parse_row({**GOOD, "ingest_alias": "  ", "delivery_method_id": "", "tax_provider": ""})
    assert isinstance(row, BillingConfigRow)
    assert row.ingest_alias is None
    assert row.tax_provider is None


def test_uuid_is_normalised() -> None:
    row = parse_row({**GOOD, "customer_id": CID.upper()})
    assert isinstance(row, BillingConfigRow)
    assert row.customer_id == CID


@pytest.mark.parametrize(
    ("change", "field", "needle"),
    [
        ({"customer_id": "not-a-uuid"}, "customer_id", "is not a UUID"),
        ({"customer_id": "0c8b5a527c1e4f0e9a3b0c1d2e3f4a01"}, "customer_id", "8-4-4-4-12"),
        ({"customer_id": 42}, "customer_id", "must be a UUID string"),
        ({"customer_id": _DROP}, "customer_id/ingest_alias", "both are empty"),
        ({"ingest_alias": "acme"}, "customer_id/ingest_alias", "both are set"),
        ({"ingest_alias": "a" * 129, "customer_id": _DROP}, "ingest_alias", "at most 128"),
        ({"billing_provider": "Stripe"}, "billing_provider", "did you mean 'stripe'"),
        ({"billing_provider": "paypal"}, "billing_provider", "not a known billing_provider"),
        ({"billing_provider": None}, "billing_provider", "required"),
        ({"billing_provider": _DROP}, "billing_provider", "required"),
        ({"configuration": None}, "configuration", "required (NULL)"),
        ({"configuration": "null"}, "configuration", "got null"),
        ({"configuration": "[1, 2]"}, "configuration", "got an array"),
        ({"configuration": "{bad json"}, "configuration", "not valid JSON"),
        ({"configuration": ""}, "configuration", "is empty"),
        ({"configuration": 17}, "configuration", "got a number"),
        ({"configuration": "{" + '"k": "' + "x" * 70_000 + '"}'}, "configuration", "characters; at most"),
        ({"configuration": {}}, "configuration.stripe_customer_id", "stripe requires stripe_customer_id"),
        (
            {"configuration": {"stripe_customer_id": 5}},
            "configuration.stripe_customer_id",
            "must be a string",
        ),
        (
            {"configuration": {"stripe_customer_id": " "}},
            "configuration.stripe_customer_id",
            "must not be empty",
        ),
        (
            {"configuration": {"stripe_customer_id": "c", "stripe_collection_method": "cash"}},
            "configuration.stripe_collection_method",
            "'cash' is not one of",
        ),
        (
            {"configuration": {"stripe_customer_id": "c", "leave_stripe_invoices_in_draft": "yes"}},
            "configuration.leave_stripe_invoices_in_draft",
            "true or false",
        ),
        ({"delivery_method": _DROP}, "delivery_method/delivery_method_id", "both are empty"),
        ({"delivery_method": "email"}, "delivery_method", "not a known delivery_method"),
        ({"delivery_method": "tackle"}, "delivery_method", "not available for stripe"),
        ({"delivery_method": _DROP, "delivery_method_id": "nope"}, "delivery_method_id", "is not a UUID"),
        ({"tax_provider": "vertex"}, "tax_provider", "not a known tax_provider"),
        ({"tax_provider": "avalara"}, "tax_provider", "needs stripe_collection_method"),
    ],
)
def test_rejections_name_the_field(change: dict[str, Any], field: str, needle: str) -> None:
    found = problems(**change)
    assert any(p.field == field and needle in p.reason for p in found), found


def test_delivery_method_and_its_id_may_both_be_given() -> None:
    """The API takes either or both (its SDK sends both); whether they agree is checked once resolved."""
    row = parse_row({**GOOD, "delivery_method_id": DMID})
    assert isinstance(row, BillingConfigRow)
    assert (row.delivery_method, row.delivery_method_id) == ("direct_to_billing_provider", DMID)


def test_required_keys_wait_for_the_delivery_method() -> None:
    """Keys a provider requires are documented for direct_to_billing_provider only.

    A row giving another kind needs none; a row giving only an id is checked once the id
    is resolved (the sync does that, see the engine tests).
    """
    aws: dict[str, Any] = {"customer_id": CID, "billing_provider": "aws_marketplace", "configuration": {}}
    assert isinstance(parse_row({**aws, "delivery_method": "aws_sqs"}), BillingConfigRow)
    assert isinstance(parse_row({**aws, "delivery_method_id": DMID}), BillingConfigRow)
    found = parse_row({**aws, "delivery_method": "direct_to_billing_provider"})
    assert isinstance(found, list)
    assert {p.field for p in found} >= {"configuration.aws_customer_id"}


@pytest.mark.parametrize(
    ("provider", "configuration", "field"),
    [
        (
            "aws_marketplace",
            {"aws_product_code": "p", "aws_region": "us-east-1"},
            "configuration.aws_customer_id",
        ),
        (
            "aws_marketplace",
            {"aws_customer_id": "c", "aws_region": "us-east-1"},
            "configuration.aws_product_code",
        ),
        ("aws_marketplace", {"aws_customer_id": "c", "aws_product_code": "p"}, "configuration.aws_region"),
        (
            "aws_marketplace",
            {"aws_customer_id": "c", "aws_product_code": "p", "aws_region": "moon-1"},
            "configuration.aws_region",
        ),
        ("azure_marketplace", {}, "configuration.azure_subscription_id"),
        ("gcp_marketplace", {"gcp_entitlement_id": "e"}, "configuration.gcp_service_name"),
        ("gcp_marketplace", {"gcp_service_name": "s"}, "configuration.gcp_entitlement_id"),
        ("netsuite", {"netsuite_customer_id": 12345}, "configuration.netsuite_customer_id"),
    ],
)
def test_provider_required_keys(provider: str, configuration: dict[str, Any], field: str) -> None:
    found = problems(billing_provider=provider, configuration=configuration)
    assert [p.field for p in found] == [field]


@pytest.mark.parametrize(
    ("provider", "configuration"),
    [
        ("aws_marketplace", {"aws_customer_id": "c", "aws_product_code": "p", "aws_region": "us-gov-west-1"}),
        ("azure_marketplace", {"azure_subscription_id": "s"}),
        ("gcp_marketplace", {"gcp_entitlement_id": "e", "gcp_service_name": "s.goog"}),
        ("netsuite", {"netsuite_customer_id": "12345"}),
        ("custom", {}),
        ("quickbooks_online", {"anything": 1}),
    ],
)
def test_provider_good_configurations(provider: str, configuration: dict[str, Any]) -> None:
    assert isinstance(
        parse_row({**GOOD, "billing_provider": provider, "configuration": configuration}), BillingConfigRow
    )


def test_tax_provider_allowed_with_payment_intent() -> None:
    config = {"stripe_customer_id": "c", "stripe_collection_method": "auto_charge_payment_intent"}
    row = parse_row({**GOOD, "configuration": config, "tax_provider": "avalara"})
    assert isinstance(row, BillingConfigRow)


def test_tackle_only_for_aws() -> None:
    config = {"aws_customer_id": "c", "aws_product_code": "p", "aws_region": "us-east-1"}
    assert isinstance(
        parse_row(
            {
                **GOOD,
                "billing_provider": "aws_marketplace",
                "configuration": config,
                "delivery_method": "tackle",
            }
        ),
        BillingConfigRow,
    )


def test_unicode_and_emoji_survive() -> None:
    row = parse_row({**GOOD, "configuration": {"stripe_customer_id": "cus_ñandú_🚀"}})
    assert isinstance(row, BillingConfigRow)
    assert row.configuration["stripe_customer_id"] == "cus_ñandú_🚀"


@pytest.mark.parametrize(("raw", "type_name"), [(42, "int"), (None, "NoneType"), (["a", "b", "c"], "list")])
def test_non_mapping_row(raw: Any, type_name: str) -> None:
    """A value that is no mapping is rejected with one problem on ``row`` naming its type."""
    assert parse_row(raw) == [
        RowProblem("row", f"a row must be a mapping of column names to values, got {type_name}")
    ]


# -- configurations that JSON cannot carry faithfully: rejected per row, never guessed ----------

_DEEP_TEXT = '{"stripe_customer_id": "cus_1", "x": ' + "[" * 5000 + "]" * 5000 + "}"


def _deep(levels: int) -> dict[str, Any]:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"n": value}
    return {"stripe_customer_id": "cus_1", "x": value}


@pytest.mark.parametrize(
    ("configuration", "words"),
    [
        ('{"stripe_customer_id": "cus_1", "rate": NaN}', "NaN"),
        ('{"stripe_customer_id": "cus_1", "rate": -Infinity}', "-Infinity"),
        ({"stripe_customer_id": "cus_1", "rate": float("nan")}, "configuration.rate is nan"),
        ({"stripe_customer_id": "cus_1", "rate": [1, float("inf")]}, "configuration.rate[1] is inf"),
        (_DEEP_TEXT, "nested deeper than 32"),
        (_deep(40), "nested deeper than 32"),
        ('{"stripe_customer_id": "cus_1", "stripe_customer_id": "cus_2"}', "'stripe_customer_id' twice"),
        (b'{"stripe_customer_id": "cus_\xff"}', "not valid UTF-8"),
        ({"stripe_customer_id": b"ab"}, "configuration.stripe_customer_id is bytes"),
        ({"stripe_customer_id": "cus_1", 7: "x"}, "key that is not text"),
    ],
)
def test_configuration_json_cannot_carry_is_rejected_with_its_place(configuration: Any, words: str) -> None:
    found = problems(configuration=configuration)
    assert [p.field for p in found] == ["configuration"]
    assert words in found[0].reason, found[0].reason


def test_deep_but_reasonable_configuration_is_kept() -> None:
    row = parse_row({**GOOD, "configuration": _deep(30)})
    assert isinstance(row, BillingConfigRow)


# -- the customer columns (create_missing_customers) ---------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ('["a", "b"]', ("a", "b")),
        ("a, b ,, c", ("a", "b", "c")),
        (["a", "a", 7], ("a", "7")),
        ("", ()),
        (None, ()),
    ],
)
def test_ingest_aliases_as_json_array_list_or_comma_separated_text(
    given: Any, expected: tuple[str, ...]
) -> None:
    row = parse_row({**GOOD, "ingest_aliases": given})
    assert isinstance(row, BillingConfigRow)
    assert row.ingest_aliases == expected


@pytest.mark.parametrize(
    ("change", "field", "needle"),
    [
        ({"ingest_aliases": "[not json"}, "ingest_aliases", "not a JSON array"),
        ({"ingest_aliases": '{"a": 1}'}, "ingest_aliases", "JSON array"),
        ({"ingest_aliases": ["ok", ""]}, "ingest_aliases", "ingest_aliases[1]"),
        ({"ingest_aliases": ["x" * 129]}, "ingest_aliases", "at most 128"),
        ({"ingest_aliases": [f"a{i}" for i in range(2001)]}, "ingest_aliases", "at most 2000"),
        ({"custom_fields": "{bad"}, "custom_fields", "not valid JSON"),
        ({"custom_fields": '{"tier": 3}'}, "custom_fields", "custom_fields.tier must be text"),
        ({"custom_fields": "[1]"}, "custom_fields", "JSON object"),
        ({"customer_name": 12}, "customer_name", "must be text"),
    ],
)
def test_customer_columns_name_the_field(change: dict[str, Any], field: str, needle: str) -> None:
    problems = parse_row({**GOOD, **change})
    assert isinstance(problems, list)
    assert [p.field for p in problems] == [field]
    assert needle in problems[0].reason


def test_custom_fields_and_name() -> None:
    row = parse_row({**GOOD, "customer_name": "  Acme Ltd ", "custom_fields": '{"region": "emea"}'})
    assert isinstance(row, BillingConfigRow)
    assert (row.customer_name, row.custom_fields) == ("Acme Ltd", {"region": "emea"})
