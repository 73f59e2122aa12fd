"""Choosing delivery methods by id or by selector, against every page of listConfiguredBillingProviders."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.client.delivery_methods import DeliveryMethodSelection, parse_ids
from airflow_provider_metronome.exceptions import MetronomeConfigError

BASE = "http://127.0.0.1:9"
STRIPE = "00000000-0000-4000-8000-000000000001"
AWS = "00000000-0000-4000-8000-000000000002"
AWS_SQS = "00000000-0000-4000-8000-000000000003"
CONFIGURED: list[dict[str, Any]] = [
    {
        "billing_provider": "stripe",
        "delivery_method": "direct_to_billing_provider",
        "delivery_method_id": STRIPE,
    },
    {
        "billing_provider": "aws_marketplace",
        "delivery_method": "direct_to_billing_provider",
        "delivery_method_id": AWS,
    },
    {"billing_provider": "aws_marketplace", "delivery_method": "aws_sqs", "delivery_method_id": AWS_SQS},
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ([], ()),
        ([STRIPE, AWS, STRIPE], (STRIPE, AWS)),
        (f'["{STRIPE}", "{AWS}"]', (STRIPE, AWS)),
        (f" {STRIPE} , {AWS},", (STRIPE, AWS)),
        ("", ()),
        ((STRIPE,), (STRIPE,)),
    ],
)
def test_ids_as_a_list_a_json_list_or_comma_separated_text(value: object, expected: tuple[str, ...]) -> None:
    assert parse_ids(value) == expected


@pytest.mark.parametrize(
    ("value", "message"), [({"a": 1}, "must be a list, got dict"), ("[oops", "not a valid JSON list")]
)
def test_ids_that_are_no_list_are_a_config_error(value: object, message: str) -> None:
    with pytest.raises(MetronomeConfigError, match=message):
        parse_ids(value)


def test_ids_and_a_selector_at_once_are_refused() -> None:
    with pytest.raises(MetronomeConfigError, match="not both"):
        DeliveryMethodSelection.parse([STRIPE], billing_provider="stripe")


def test_blank_values_count_as_not_given() -> None:
    assert DeliveryMethodSelection.parse("", billing_provider=" ", delivery_method=None).empty
    assert DeliveryMethodSelection.parse([], billing_provider="", delivery_method="").empty
    assert not DeliveryMethodSelection.parse(None, delivery_method="aws_sqs").empty


def test_unknown_ids_are_all_named() -> None:
    unknown = ["00000000-0000-4000-8000-0000000000ff", "00000000-0000-4000-8000-0000000000fe"]
    selection = DeliveryMethodSelection.parse([STRIPE, *unknown])
    with pytest.raises(MetronomeConfigError) as info:
        selection.resolve(CONFIGURED, account="the Metronome account of connection 'm'")
    assert str(info.value) == (
        f"Unknown delivery method id(s) in the Metronome account of connection 'm': {', '.join(unknown)} "
        "(see listConfiguredBillingProviders)"
    )


def test_known_ids_come_back_in_their_order() -> None:
    assert DeliveryMethodSelection.parse([AWS_SQS, STRIPE]).resolve(iter(CONFIGURED)) == [AWS_SQS, STRIPE]


@pytest.mark.parametrize(
    ("provider", "method", "expected"),
    [
        ("aws_marketplace", None, [AWS, AWS_SQS]),
        (None, "direct_to_billing_provider", [STRIPE, AWS]),
        ("aws_marketplace", "aws_sqs", [AWS_SQS]),
    ],
)
def test_a_selector_chooses_every_match(
    provider: str | None, method: str | None, expected: list[str]
) -> None:
    selection = DeliveryMethodSelection.parse(billing_provider=provider, delivery_method=method)
    assert selection.resolve(iter(CONFIGURED)) == expected


def test_a_selector_matching_nothing_fails_saying_so() -> None:
    selection = DeliveryMethodSelection.parse(billing_provider="netsuite")
    with pytest.raises(
        MetronomeConfigError, match=r"matches billing_provider='netsuite', delivery_method=None"
    ):
        selection.resolve(CONFIGURED)


@respx.mock
def test_the_selector_sees_every_page_of_the_account() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        cursor = json.loads(request.content or b"{}").get("next_page")
        index = int(cursor) if cursor else 0
        more = str(index + 1) if index + 1 < len(CONFIGURED) else None
        item = {**CONFIGURED[index], "delivery_method_configuration": {}}
        return httpx.Response(200, json={"data": [item], "next_page": more})

    route = respx.post(f"{BASE}/v1/listConfiguredBillingProviders").mock(side_effect=answer)
    client = MetronomeClient(BASE, "tok_pages_1a2b3c4d5e6f7a8b", retry=RetryPolicy(max_retries=0))
    try:
        selection = DeliveryMethodSelection.parse(billing_provider="aws_marketplace")
        assert selection.resolve(client.iter_configured_billing_providers()) == [AWS, AWS_SQS]
        assert route.call_count == 3
    finally:
        client.close()
