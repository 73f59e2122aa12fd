"""The prepared hot read fails, retries and reports exactly as a call through the SDK does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
import respx

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.exceptions import MetronomeConnectionError, MetronomeError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

BASE = "http://metronome.test"
TOKEN = "tok_prepared_4c3b2a1f0e9d8c7b6a5f"
CUSTOMER = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"


@pytest.fixture
def client() -> Iterator[MetronomeClient]:
    c = MetronomeClient(BASE, TOKEN, retry=RetryPolicy(max_retries=2, jitter=0.0))
    yield c
    c.close()


# The prepared read against a call the SDK builds (archive: also a JSON POST of a customer).
CALLS: dict[str, tuple[str, Callable[[MetronomeClient], Any]]] = {
    "prepared": (
        "/v1/getCustomerBillingProviderConfigurations",
        lambda c: c.get_billing_provider_configurations(CUSTOMER),
    ),
    "through the SDK": (
        "/v1/archiveCustomerBillingProviderConfigurations",
        lambda c: c.archive_billing_provider_configurations(CUSTOMER, ["x"]),
    ),
}


def _failure(client: MetronomeClient, which: str, answers: list[Any]) -> tuple[MetronomeError, int]:
    path, call = CALLS[which]
    with respx.mock(base_url=BASE) as mock:
        route = mock.post(path).mock(side_effect=answers)
        with pytest.raises(MetronomeError) as info:
            call(client)
    return info.value, route.call_count


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 301])
def test_an_error_status_raises_what_the_sdk_path_raises(
    client: MetronomeClient, sleeps: list[float], status: int
) -> None:
    def answers() -> list[httpx.Response]:
        headers = {"Location": f"{BASE}/elsewhere"} if status == 301 else {}
        return [httpx.Response(status, json={"message": f"refused with {status}"}, headers=headers)]

    prepared, prepared_calls = _failure(client, "prepared", answers())
    sdk, sdk_calls = _failure(client, "through the SDK", answers())
    assert type(prepared) is type(sdk)
    assert prepared_calls == sdk_calls == 1
    assert prepared.status == sdk.status == status  # type: ignore[attr-defined]
    assert str(prepared).replace("getCustomer", "archiveCustomer") == str(sdk)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"message": "busy"}),
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
    ],
    ids=["500", "429", "connect error", "read timeout"],
)
def test_a_passing_failure_is_retried_and_then_answered(
    client: MetronomeClient, sleeps: list[float], failure: Any
) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/v1/getCustomerBillingProviderConfigurations").mock(
            side_effect=[failure, httpx.Response(200, json={"data": [{"id": "cfg"}]})]
        )
        assert client.get_billing_provider_configurations(CUSTOMER) == [{"id": "cfg"}]
    assert route.call_count == 2
    assert len(sleeps) == 1
    assert client.api_calls_by_endpoint == {"POST /v1/getCustomerBillingProviderConfigurations": 2}


def test_no_answer_after_every_retry_names_why(client: MetronomeClient, sleeps: list[float]) -> None:
    error, calls = _failure(client, "prepared", [httpx.ReadTimeout("slow")] * 3)
    assert isinstance(error, MetronomeConnectionError)
    assert calls == 3
    assert "APITimeoutError (ReadTimeout: slow)" in str(error)
    assert TOKEN not in str(error)


def test_a_success_without_data_is_a_malformed_answer(client: MetronomeClient, sleeps: list[float]) -> None:
    error, _ = _failure(client, "prepared", [httpx.Response(200, json={"items": []})])
    assert "the body has no 'data' (keys: items)" in str(error)
    assert "POST /v1/getCustomerBillingProviderConfigurations" in str(error)


def test_include_archived_and_the_customer_travel_in_the_body(client: MetronomeClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/v1/getCustomerBillingProviderConfigurations").mock(
            return_value=httpx.Response(200, json={"data": []})
        )
        client.get_billing_provider_configurations(CUSTOMER, include_archived=True)
        client.get_billing_provider_configurations("other")
    assert [call.request.content for call in route.calls] == [
        b'{"customer_id":"' + CUSTOMER.encode() + b'","include_archived":true}',
        b'{"customer_id":"other","include_archived":false}',
    ]


def test_an_sdk_release_that_cannot_prepare_falls_back_to_its_public_method(
    client: MetronomeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import metronome._models

    # A release whose base client moved (the SDK's own modules hold the name already).
    monkeypatch.delattr(metronome._models, "FinalRequestOptions")
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/v1/getCustomerBillingProviderConfigurations").mock(
            side_effect=[httpx.Response(404, json={"message": "no such customer"}),
                         httpx.Response(200, json={"data": [{"id": "cfg"}]})]
        )  # fmt: skip
        with pytest.raises(MetronomeError, match="no such customer"):
            client.get_billing_provider_configurations(CUSTOMER)
        assert client.get_billing_provider_configurations(CUSTOMER) == [{"id": "cfg"}]
    assert client.transport.prepared_post("/v1/getCustomerBillingProviderConfigurations") is None
    assert (
        route.calls[1].request.content
        == b'{"customer_id":"' + CUSTOMER.encode() + b'","include_archived":false}'
    )
