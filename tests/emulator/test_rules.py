"""The emulator's configuration rules: the documented examples pass, and the provider agrees.

:mod:`airflow_provider_metronome.emulator.rules` is the emulator's own reading of the
reference page; :mod:`airflow_provider_metronome.models.rules` is the provider's. The
last test runs one corpus through both: where the readings differ, the case is an
``xfail`` whose reason cites the docs, so the difference stays visible and a fix on
either side turns it into a failure ("XPASS strict") that asks for the entry's removal.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_metronome.emulator.rules import PROVIDERS, configuration_problem
from airflow_provider_metronome.emulator.spec import load_spec

DIRECT = "direct_to_billing_provider"


def _documented_examples() -> list[dict[str, Any]]:
    spec = load_spec()
    set_op = spec["paths"]["/v1/setCustomerBillingProviderConfigurations"]["post"]
    create_op = spec["paths"]["/v1/customers"]["post"]
    return [
        *set_op["requestBody"]["content"]["application/json"]["example"]["data"],
        *create_op["requestBody"]["content"]["application/json"]["example"][
            "customer_billing_provider_configurations"
        ],
    ]


@pytest.mark.parametrize("item", _documented_examples(), ids=lambda i: i["billing_provider"])
def test_every_documented_example_is_accepted(item: dict[str, Any]) -> None:
    # The one example given by delivery_method_id (azure) is read as a direct delivery.
    method = item.get("delivery_method", DIRECT)
    assert configuration_problem(item["billing_provider"], method, item["configuration"], None) is None


def test_every_billing_provider_of_the_spec_has_a_rule() -> None:
    enum = load_spec()["components"]["schemas"]["BillingProviderType"]["enum"]
    assert sorted(PROVIDERS) == sorted(enum)


# (billing_provider, delivery_method, configuration, tax_provider, field expected or None)
CASES: list[tuple[str, str, dict[str, Any], str | None, str | None]] = [
    ("stripe", DIRECT, {"stripe_customer_id": "cus_1"}, None, None),
    ("stripe", DIRECT, {}, None, "configuration.stripe_customer_id"),
    ("stripe", DIRECT, {"stripe_customer_id": None}, None, "configuration.stripe_customer_id"),
    ("stripe", DIRECT, {"stripe_collection_method": "send_invoice"}, None, "configuration.stripe_customer_id"),
    ("stripe", DIRECT, {"stripe_customer_id": 42}, None, "configuration.stripe_customer_id"),
    ("stripe", DIRECT, {"stripe_customer_id": "  "}, None, "configuration.stripe_customer_id"),
    ("stripe", DIRECT, {"stripe_customer_id": "c", "stripe_collection_method": "cash"}, None, "configuration.stripe_collection_method"),
    ("stripe", DIRECT, {"stripe_customer_id": "c", "leave_stripe_invoices_in_draft": "yes"}, None, "configuration.leave_stripe_invoices_in_draft"),
    ("stripe", DIRECT, {"stripe_customer_id": "c", "stripe_collection_method": "auto_charge_payment_intent"}, "avalara", None),
    ("stripe", DIRECT, {"stripe_customer_id": "c", "stripe_collection_method": "manual_charge_payment_intent"}, "anrok", None),
    ("stripe", DIRECT, {"stripe_customer_id": "c", "stripe_collection_method": "charge_automatically"}, "stripe", "tax_provider"),
    ("stripe", DIRECT, {"stripe_customer_id": "c"}, "avalara", "tax_provider"),
    ("stripe", "tackle", {"stripe_customer_id": "c"}, None, "delivery_method"),
    ("aws_marketplace", "tackle", {"aws_customer_id": "a", "aws_product_code": "p", "aws_region": "us-east-1"}, None, None),
    ("aws_marketplace", DIRECT, {"aws_customer_id": "a", "aws_product_code": "p"}, None, "configuration.aws_region"),
    ("aws_marketplace", DIRECT, {"aws_customer_id": "a", "aws_region": "us-east-1"}, None, "configuration.aws_product_code"),
    ("aws_marketplace", DIRECT, {"aws_customer_id": "a", "aws_product_code": "p", "aws_region": "us-east-1", "aws_is_subscription_product": "true"}, None, "configuration.aws_is_subscription_product"),
    ("aws_marketplace", DIRECT, {"aws_customer_id": "a", "aws_product_code": "p", "aws_region": "us-east-1"}, "avalara", "tax_provider"),
    ("azure_marketplace", DIRECT, {}, None, "configuration.azure_subscription_id"),
    ("gcp_marketplace", DIRECT, {"gcp_entitlement_id": "e"}, None, "configuration.gcp_service_name"),
    ("netsuite", DIRECT, {"netsuite_customer_id": 12345}, None, "configuration.netsuite_customer_id"),
    ("netsuite", DIRECT, {"netsuite_customer_id": "12345"}, None, None),
    ("netsuite", DIRECT, {"netsuite_customer_id": "1"}, "avalara", "tax_provider"),
    ("custom", DIRECT, {}, None, None),
    ("quickbooks_online", DIRECT, {"anything": 1}, None, None),
    ("workday", "aws_sns", {}, None, None),
    ("metronome", DIRECT, {}, None, None),
    ("netsuite", "tackle", {"netsuite_customer_id": "1"}, None, "delivery_method"),
    # No documented example for these combinations, and "most" (not all) need a configuration.
    ("aws_marketplace", "aws_sqs", {}, None, None),
    ("stripe", "aws_sns", {}, None, None),
    ("azure_marketplace", "aws_sns", {}, None, None),
    # ... but what is there is still checked.
    ("stripe", "aws_sqs", {"stripe_customer_id": 1}, None, "configuration.stripe_customer_id"),
    # No region list is documented for configuration.aws_region.
    ("aws_marketplace", DIRECT, {"aws_customer_id": "a", "aws_product_code": "p", "aws_region": "mars-1"}, None, None),
]  # fmt: skip


def _case_id(case: tuple[str, str, dict[str, Any], str | None, str | None]) -> str:
    provider, method, config, tax, field = case
    return f"{provider}-{method}-{json.dumps(config, sort_keys=True)}-{tax}-{field or 'ok'}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_emulator_rules(case: tuple[str, str, dict[str, Any], str | None, str | None]) -> None:
    provider, method, config, tax, field = case
    problem = configuration_problem(provider, method, config, tax)
    assert (problem and problem[0]) == field, problem
    if problem is not None:
        assert problem[1], "a reason a person can act on"


# Where the provider's reading (models/rules.py) and the emulator's differ. Each is a
# real question for the provider; see the reason.
DISAGREEMENTS: list[tuple[tuple[str, str, dict[str, Any], str | None, str | None], str]] = [
    (("aws_marketplace", DIRECT, {"aws_customer_id": "a", "aws_product_code": "p", "aws_region": "mars-1"}, None, None),
     "provider rejects aws_region values outside its pattern; the docs give no region list for "
     "configuration.aws_region (the example is us-west-1)"),
]  # fmt: skip


def _params() -> list[Any]:
    reasons = [reason for case, reason in DISAGREEMENTS]
    cases = [case for case, _reason in DISAGREEMENTS]
    assert all(case in CASES for case in cases), "a disagreement that is not in CASES"
    return [
        pytest.param(c, id=_case_id(c), marks=pytest.mark.xfail(reason=reasons[cases.index(c)], strict=True))
        if c in cases
        else pytest.param(c, id=_case_id(c))
        for c in CASES
    ]


@pytest.mark.parametrize("case", _params())
def test_the_provider_agrees_with_the_emulator(
    case: tuple[str, str, dict[str, Any], str | None, str | None],
) -> None:
    from airflow_provider_metronome.models.rules import configuration_problems

    provider, method, config, tax, field = case
    theirs = configuration_problems(provider, config, method, tax)
    assert bool(theirs) == (field is not None), theirs
    if field is not None:
        assert field in [f for f, _reason in theirs], theirs
