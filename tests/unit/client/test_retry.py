"""Retry policy, idempotency keys, paging and error mapping, HTTP mocked at the transport."""

from __future__ import annotations

import json
import logging
import random
from typing import TYPE_CHECKING

import httpx
import pytest
import respx

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.exceptions import (
    MetronomeAuthError,
    MetronomeBadRequestError,
    MetronomeConflictError,
    MetronomeConnectionError,
    MetronomeNotFoundError,
    MetronomeRateLimitError,
    MetronomeResponseError,
    MetronomeServerError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

BASE = "http://metronome.test"
TOKEN = "tok_unit_9c8b7a6f5e4d3c2b1a00"
CUSTOMER = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
SET_PATH = "/v1/setCustomerBillingProviderConfigurations"
CONFIG = {
    "customer_id": CUSTOMER,
    "billing_provider": "stripe",
    "delivery_method": "direct_to_billing_provider",
    "configuration": {"stripe_customer_id": "cus_1"},
}
CREATED = {"data": [{"id": "e045c62b-65e7-4e84-a924-3f06f8b621d0", **CONFIG}]}


@pytest.fixture(autouse=True)
def _cleartext_already_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    # These tests talk http:// to a made-up host on purpose and count the client's log
    # lines; the once-per-host cleartext warning is tested in test_client_hostile.py.
    monkeypatch.setattr("airflow_provider_metronome.client.settings._cleartext_warned", {"metronome.test"})


@pytest.fixture
def client() -> Iterator[MetronomeClient]:
    c = MetronomeClient(BASE, TOKEN, retry=RetryPolicy(max_retries=5, initial_backoff=0.5, jitter=0.0))
    yield c
    c.close()


def _customer(i: int) -> dict[str, object]:
    return {
        "id": f"00000000-0000-4000-8000-{i:012d}",
        "external_id": f"c{i}",
        "ingest_aliases": [f"c{i}"],
        "name": f"C{i}",
        "customer_config": {"salesforce_account_id": None},
        "custom_fields": {},
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
    }


@respx.mock
def test_429_waits_what_retry_after_asks(client: MetronomeClient, sleeps: list[float]) -> None:
    route = respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        side_effect=[
            httpx.Response(429, json={"message": "slow down"}, headers={"Retry-After": "3"}),
            httpx.Response(200, json={"data": _customer(1)}),
        ]
    )
    assert client.get_customer(CUSTOMER)["name"] == "C1"
    assert route.call_count == 2
    assert sleeps == [3.0]


@respx.mock
def test_retry_after_ms_wins_over_retry_after(sleeps: list[float]) -> None:
    client = MetronomeClient(BASE, TOKEN, retry=RetryPolicy(initial_backoff=0.01, jitter=0.0))
    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        side_effect=[
            httpx.Response(429, json={"message": "x"}, headers={"Retry-After": "3", "retry-after-ms": "150"}),
            httpx.Response(200, json={"data": _customer(1)}),
        ]
    )
    client.get_customer(CUSTOMER)
    assert sleeps == [0.15]


@respx.mock
def test_each_429_waits_at_least_what_was_asked_and_longer_each_time(
    client: MetronomeClient, sleeps: list[float]
) -> None:
    # Backoff 0.5, 1, 2, 4, 8 s against Retry-After 3 s: the larger of the two, each time.
    limited = httpx.Response(429, json={"message": "slow down"}, headers={"Retry-After": "3"})
    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        side_effect=[limited] * 5 + [httpx.Response(200, json={"data": _customer(1)})]
    )
    client.get_customer(CUSTOMER)
    assert sleeps == [3.0, 3.0, 3.0, 4.0, 8.0]


@respx.mock
def test_a_small_retry_after_does_not_make_429_retries_quick(
    client: MetronomeClient, sleeps: list[float]
) -> None:
    # The deployment that failed: the server asked for 0-80 ms each time.
    limited = httpx.Response(429, json={"message": "slow down"}, headers={"retry-after-ms": "40"})
    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        side_effect=[limited] * 4 + [httpx.Response(200, json={"data": _customer(1)})]
    )
    client.get_customer(CUSTOMER)
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


@respx.mock
def test_429_backoff_without_retry_after_is_exponential_with_jitter(sleeps: list[float]) -> None:
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=8.0, jitter=0.25, _random=random.Random(3))
    client = MetronomeClient(BASE, TOKEN, retry=policy)
    limited = httpx.Response(429, json={"message": "slow down"})
    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        side_effect=[limited] * 7 + [httpx.Response(200, json={"data": _customer(1)})]
    )
    client.get_customer(CUSTOMER)
    ceilings = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert len(sleeps) == len(ceilings)
    assert all(0.75 * top <= wait <= top for wait, top in zip(sleeps, ceilings, strict=True))
    assert sleeps != ceilings, "jittered"


@respx.mock
def test_429s_are_retried_until_the_wait_budget_is_spent_not_after_max_retries(
    sleeps: list[float],
) -> None:
    policy = RetryPolicy(max_retries=5, initial_backoff=0.5, max_backoff=8.0, jitter=0.0, max_total_wait=30.0)
    client = MetronomeClient(BASE, TOKEN, retry=policy)
    route = respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        return_value=httpx.Response(429, json={"message": "slow down"}, headers={"retry-after-ms": "10"})
    )
    with pytest.raises(MetronomeRateLimitError) as info:
        client.get_customer(CUSTOMER)
    # 0.5 + 1 + 2 + 4 + 8 + 8 = 23.5 s waited; one more 8 s wait would pass 30 s.
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert route.call_count == 7 > policy.max_retries + 1
    assert info.value.attempts == 7


@respx.mock
def test_429s_do_not_use_up_the_retries_of_other_errors(client: MetronomeClient, sleeps: list[float]) -> None:
    limited = httpx.Response(429, json={"message": "slow down"}, headers={"retry-after-ms": "10"})
    busy = httpx.Response(503, json={"message": "busy"})
    route = respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        side_effect=[*[limited, busy] * 5, limited, httpx.Response(200, json={"data": _customer(1)})]
    )
    assert client.get_customer(CUSTOMER)["name"] == "C1"
    assert route.call_count == 12
    assert sleeps == [0.5, 0.5, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 8.0, 8.0, 8.0]


@respx.mock
def test_no_retries_means_one_attempt_even_for_429(sleeps: list[float]) -> None:
    client = MetronomeClient(BASE, TOKEN, retry=RetryPolicy(max_retries=0))
    route = respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        return_value=httpx.Response(429, json={"message": "slow down"})
    )
    with pytest.raises(MetronomeRateLimitError):
        client.get_customer(CUSTOMER)
    assert route.call_count == 1
    assert sleeps == []


@respx.mock
def test_429s_are_summed_up_in_the_log_not_logged_one_by_one(
    client: MetronomeClient, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airflow_provider_metronome.client")
    limited = httpx.Response(429, json={"message": "slow down"}, headers={"retry-after-ms": "10"})
    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        side_effect=[limited] * 8 + [httpx.Response(200, json={"data": _customer(1)})] * 5
    )
    for _ in range(5):
        client.get_customer(CUSTOMER)

    def ours() -> list[str]:
        # Only the client's own lines: httpx logs each request at INFO too (Airflow 2 shows them).
        return [r.getMessage() for r in caplog.records if r.name.startswith("airflow_provider_metronome")]

    lines = ours()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Metronome rate limit: 1 request answered 429 in the last ")
    client.close()
    lines = ours()
    assert len(lines) == 2, lines
    assert lines[1].startswith("Metronome rate limit: 7 requests answered 429 in the last ")


@respx.mock
def test_5xx_and_timeouts_are_retried_with_growing_backoff(
    client: MetronomeClient, sleeps: list[float]
) -> None:
    route = respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        side_effect=[
            httpx.Response(503, json={"message": "busy"}),
            httpx.ReadTimeout("slow"),
            httpx.Response(500, json={"message": "oops"}),
            httpx.Response(200, json={"data": _customer(2)}),
        ]
    )
    assert client.get_customer(CUSTOMER)["name"] == "C2"
    assert route.call_count == 4
    assert sleeps == [0.5, 1.0, 2.0]


@respx.mock
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, MetronomeBadRequestError),
        (401, MetronomeAuthError),
        (403, MetronomeAuthError),
        (404, MetronomeNotFoundError),
    ],
)
def test_client_errors_fail_at_once(
    client: MetronomeClient, sleeps: list[float], status: int, error: type[Exception]
) -> None:
    route = respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        return_value=httpx.Response(
            status, json={"message": f"it is a {status}"}, headers={"x-request-id": "req-7"}
        )
    )
    with pytest.raises(error) as info:
        client.get_customer(CUSTOMER)
    assert route.call_count == 1
    assert sleeps == []
    assert info.value.status == status  # type: ignore[attr-defined]
    assert f"it is a {status}" in str(info.value)
    assert "req-7" in str(info.value)
    assert f"GET /v1/customers/{CUSTOMER}" in str(info.value)


@respx.mock
def test_409_without_a_key_is_not_retried(client: MetronomeClient, sleeps: list[float]) -> None:
    route = respx.post(f"{BASE}{SET_PATH}").mock(
        return_value=httpx.Response(409, json={"message": "ingest alias taken"})
    )
    with pytest.raises(MetronomeConflictError, match="ingest alias taken"):
        client.set_billing_provider_configurations([CONFIG])
    assert route.call_count == 1
    assert sleeps == []
    assert "Idempotency-Key" not in route.calls[0].request.headers


@respx.mock
def test_409_with_a_key_is_retried_with_the_same_key_and_gets_the_replay(
    client: MetronomeClient, sleeps: list[float]
) -> None:
    in_use = httpx.Response(409, json={"message": "Idempotency-Key is in use by a concurrent request"})
    route = respx.post(f"{BASE}{SET_PATH}").mock(
        side_effect=[
            in_use,
            in_use,
            httpx.Response(200, json=CREATED, headers={"Idempotent-Replayed": "true"}),
        ]
    )
    created = client.set_billing_provider_configurations([CONFIG], idempotency_key="apm-key-409")
    assert created[0]["id"] == CREATED["data"][0]["id"]
    assert [call.request.headers["Idempotency-Key"] for call in route.calls] == ["apm-key-409"] * 3
    assert sleeps == [0.1, 0.2]


@respx.mock
def test_409_that_persists_is_raised_after_a_few_short_waits(
    client: MetronomeClient, sleeps: list[float]
) -> None:
    route = respx.post(f"{BASE}{SET_PATH}").mock(
        return_value=httpx.Response(409, json={"message": "Idempotency-Key reused"})
    )
    with pytest.raises(MetronomeConflictError, match="Idempotency-Key reused") as info:
        client.set_billing_provider_configurations([CONFIG], idempotency_key="k-1")
    assert route.call_count == 6
    assert info.value.attempts == 6
    assert sleeps == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert sum(sleeps) < 5
    assert {call.request.headers["Idempotency-Key"] for call in route.calls} == {"k-1"}


@respx.mock
def test_write_keeps_its_key_across_lost_answers(client: MetronomeClient, sleeps: list[float]) -> None:
    route = respx.post(f"{BASE}{SET_PATH}").mock(
        side_effect=[
            httpx.ConnectError("reset by peer"),
            httpx.Response(429, json={"message": "x"}, headers={"retry-after-ms": "10"}),
            httpx.Response(200, json=CREATED),
        ]
    )
    created = client.set_billing_provider_configurations([CONFIG], idempotency_key="apm-key-1")
    assert created[0]["id"] == CREATED["data"][0]["id"]
    keys = [call.request.headers["Idempotency-Key"] for call in route.calls]
    assert keys == ["apm-key-1"] * 3


@respx.mock
def test_write_after_5xx_checks_then_uses_a_new_key(client: MetronomeClient, sleeps: list[float]) -> None:
    route = respx.post(f"{BASE}{SET_PATH}").mock(
        side_effect=[httpx.Response(500, json={"message": "boom"}), httpx.Response(200, json=CREATED)]
    )
    checks: list[int] = []

    def verify() -> None:
        checks.append(1)
        return None

    client.set_billing_provider_configurations([CONFIG], idempotency_key="apm-key-2", verify=verify)
    keys = [call.request.headers["Idempotency-Key"] for call in route.calls]
    assert keys[0] == "apm-key-2"
    assert keys[1] != "apm-key-2"
    assert keys[1].startswith("apm-key-2")
    assert checks == [1]


@respx.mock
def test_write_after_5xx_that_was_applied_is_not_resent(client: MetronomeClient, sleeps: list[float]) -> None:
    route = respx.post(f"{BASE}{SET_PATH}").mock(return_value=httpx.Response(500, json={"message": "boom"}))
    found = [{"id": "already-there"}]
    result = client.set_billing_provider_configurations([CONFIG], idempotency_key="k", verify=lambda: found)
    assert result == found
    assert route.call_count == 1
    assert sleeps == []


@respx.mock
def test_gives_up_after_max_retries(client: MetronomeClient, sleeps: list[float]) -> None:
    route = respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        return_value=httpx.Response(503, json={"message": "down"})
    )
    with pytest.raises(MetronomeServerError) as info:
        client.get_customer(CUSTOMER)
    assert route.call_count == 6
    assert info.value.attempts == 6
    assert "after 6 attempts" in str(info.value)


@respx.mock
def test_total_wait_is_capped(sleeps: list[float]) -> None:
    client = MetronomeClient(BASE, TOKEN, retry=RetryPolicy(max_total_wait=10.0))
    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        return_value=httpx.Response(429, json={"message": "later"}, headers={"Retry-After": "30"})
    )
    with pytest.raises(MetronomeRateLimitError):
        client.get_customer(CUSTOMER)
    assert sleeps == []


@respx.mock
def test_connection_errors_exhausted(client: MetronomeClient, sleeps: list[float]) -> None:
    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(side_effect=httpx.ConnectError("Connection refused"))
    with pytest.raises(MetronomeConnectionError, match="Connection refused") as info:
        client.get_customer(CUSTOMER)
    assert info.value.attempts == 6


@respx.mock
def test_customers_are_paged_with_the_cursor_in_the_query(client: MetronomeClient) -> None:
    pages = {
        None: {"data": [_customer(0), _customer(1)], "next_page": "p2"},
        "p2": {"data": [_customer(2), _customer(3)], "next_page": "p3"},
        "p3": {"data": [_customer(4)], "next_page": None},
    }

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.params["limit"] == "2"
        return httpx.Response(200, json=pages[request.url.params.get("next_page")])

    route = respx.get(f"{BASE}/v1/customers").mock(side_effect=answer)
    names = [c["name"] for c in client.iter_customers(page_size=2)]
    assert names == ["C0", "C1", "C2", "C3", "C4"]
    assert route.call_count == 3


@respx.mock
def test_billing_providers_are_paged_with_the_cursor_in_the_body(client: MetronomeClient) -> None:
    cursor = "af26878a-de62-4a0d-9b77-3936f7c2b6d6"

    def dm(i: int) -> dict[str, object]:
        return {
            "billing_provider": "stripe",
            "delivery_method": "direct_to_billing_provider",
            "delivery_method_id": f"00000000-0000-4000-8000-{i:012d}",
            "delivery_method_configuration": {},
        }

    bodies: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        bodies.append(body)
        if body.get("next_page") == cursor:
            return httpx.Response(200, json={"data": [dm(2)], "next_page": None})
        return httpx.Response(200, json={"data": [dm(0), dm(1)], "next_page": cursor})

    respx.post(f"{BASE}/v1/listConfiguredBillingProviders").mock(side_effect=answer)
    ids = [d["delivery_method_id"] for d in client.list_configured_billing_providers()]
    assert len(ids) == 3
    assert bodies == [{}, {"next_page": cursor}]
    assert "next_page" not in str(respx.calls[0].request.url)


@respx.mock
def test_token_is_in_no_log_record_and_no_exception(
    client: MetronomeClient, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        side_effect=[
            httpx.Response(503, json={"message": "busy"}),
            httpx.Response(401, json={"message": f"token {TOKEN} is revoked"}),
        ]
    )
    with pytest.raises(MetronomeAuthError) as info:
        client.get_customer(CUSTOMER)
    assert respx.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    texts = [str(info.value), repr(info.value), *(r.getMessage() for r in caplog.records), repr(client)]
    assert caplog.records, "the retry should have been logged"
    assert all(TOKEN not in t for t in texts)
    assert "check the API token" in str(info.value)


@respx.mock
def test_user_agent_names_the_package(client: MetronomeClient) -> None:
    from airflow_provider_metronome import __version__

    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        return_value=httpx.Response(200, json={"data": _customer(1)})
    )
    client.get_customer(CUSTOMER)
    assert respx.calls[0].request.headers["User-Agent"] == f"airflow-provider-metronome/{__version__}"


def test_idempotency_keys_are_deterministic() -> None:
    from airflow_provider_metronome.client.idempotency import idempotency_key, retry_key

    a = idempotency_key("set", {"b": 1, "a": [1, 2]})
    assert a == idempotency_key("set", {"a": [1, 2], "b": 1})
    assert a != idempotency_key("set", {"a": [2, 1], "b": 1})
    assert a != idempotency_key("archive", {"a": [1, 2], "b": 1})
    assert retry_key(a) != retry_key(a)


def test_retry_after_parsing() -> None:
    from airflow_provider_metronome.client.retry import retry_after_seconds

    assert retry_after_seconds(httpx.Headers({"Retry-After": "2"})) == 2.0
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    assert retry_after_seconds(httpx.Headers({})) is None
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert retry_after_seconds(httpx.Headers({"Retry-After": date}), now=1445412480.0) == 10.0


# -- test_connection: the message names what was tested (Airflow's Test button uses a random conn id)


@respx.mock
def test_connection_success_names_the_base_url_and_the_request(client: MetronomeClient) -> None:
    route = respx.get(f"{BASE}/v1/customers").mock(
        return_value=httpx.Response(200, json={"data": [_customer(1)], "next_page": None})
    )
    ok, message = client.test_connection()
    assert ok
    assert message == f"Connected to Metronome at {BASE}: the API token was accepted (GET /v1/customers)"
    assert route.calls[0].request.url.params["limit"] == "1"
    assert client.api_calls == 1


@respx.mock
@pytest.mark.parametrize("status", [401, 403])
def test_connection_refused_token(client: MetronomeClient, sleeps: list[float], status: int) -> None:
    route = respx.get(f"{BASE}/v1/customers").mock(
        return_value=httpx.Response(status, json={"message": f"token {TOKEN} is not valid"})
    )
    ok, message = client.test_connection()
    assert not ok
    assert route.call_count == 1
    assert f"Metronome at {BASE} refused the API token: GET /v1/customers answered {status}" in message
    assert TOKEN not in message
    assert "metronome_default" not in message


@respx.mock
@pytest.mark.parametrize(("status", "hint"), [(500, ""), (429, ""), (404, "is the base URL right?")])
def test_connection_other_statuses(
    client: MetronomeClient, sleeps: list[float], status: int, hint: str
) -> None:
    route = respx.get(f"{BASE}/v1/customers").mock(
        return_value=httpx.Response(status, json={"message": "nope"}, headers={"x-request-id": "req-9"})
    )
    ok, message = client.test_connection()
    assert not ok
    assert route.call_count == 1, "one attempt"
    assert sleeps == []
    assert message.startswith(f"Metronome at {BASE} answered {status} to GET /v1/customers: nope")
    assert hint in message
    assert "req-9" in message


@respx.mock
def test_connection_unreachable(client: MetronomeClient) -> None:
    respx.get(f"{BASE}/v1/customers").mock(side_effect=httpx.ConnectError("Connection refused"))
    ok, message = client.test_connection()
    assert not ok
    assert message.startswith(f"Could not reach Metronome at {BASE} (GET /v1/customers): ")
    assert "Connection refused" in message


@respx.mock
def test_connection_to_something_that_is_not_metronome(client: MetronomeClient) -> None:
    respx.get(f"{BASE}/v1/customers").mock(return_value=httpx.Response(200, text="<html>hello</html>"))
    ok, message = client.test_connection()
    assert not ok
    assert BASE in message
    assert "is the base URL right?" in message


def test_connection_without_a_token() -> None:
    ok, message = MetronomeClient(BASE, "").test_connection()
    assert not ok
    assert "No API token" in message


# -- 413: the batch is too large, not wrong: split it


@respx.mock
def test_413_is_a_bad_request_of_its_own_and_not_retried(
    client: MetronomeClient, sleeps: list[float]
) -> None:
    from airflow_provider_metronome.exceptions import MetronomePayloadTooLargeError

    route = respx.post(f"{BASE}{SET_PATH}").mock(
        return_value=httpx.Response(413, text="<html><h1>413 Request Entity Too Large</h1></html>")
    )
    with pytest.raises(MetronomePayloadTooLargeError) as info:
        client.set_billing_provider_configurations([CONFIG], idempotency_key="k-413")
    assert isinstance(info.value, MetronomeBadRequestError)
    assert info.value.status == 413
    assert route.call_count == 1
    assert sleeps == []


@respx.mock
def test_a_batch_answered_413_is_split_until_it_fits(client: MetronomeClient, sleeps: list[float]) -> None:
    import uuid

    from airflow_provider_metronome.sync.staging import StagedRow
    from airflow_provider_metronome.sync.writer import BatchWriter

    sizes: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["data"]
        sizes.append(len(items))
        if len(items) > 1:  # a proxy that takes one configuration per request at most
            return httpx.Response(413, text="Request Entity Too Large")
        return httpx.Response(200, json={"data": [{"id": str(uuid.uuid4()), **item} for item in items]})

    respx.post(f"{BASE}{SET_PATH}").mock(side_effect=answer)
    rows = [
        StagedRow(
            row=i,
            key=f"c{i}",
            customer_id=f"00000000-0000-4000-8000-{i:012d}",
            billing_provider="stripe",
            delivery_method_id="dm-1",
            delivery_method="direct_to_billing_provider",
            configuration={"stripe_customer_id": f"cus_{i}"},
            tax_provider=None,
            given_delivery="delivery_method",
        )
        for i in range(4)
    ]
    created, rejected = BatchWriter(client, {}).create(rows)
    assert rejected == []
    assert [row.row for row, _ in created] == [0, 1, 2, 3]
    assert sizes == [4, 2, 1, 1, 2, 1, 1]


@respx.mock
def test_an_alias_lookup_answered_with_another_customer_is_an_error(client: MetronomeClient) -> None:
    """A proxy that drops the ingest_alias filter must not attach every alias to one customer."""
    other = {**_customer(1), "ingest_aliases": ["someone-else"]}
    respx.get(f"{BASE}/v1/customers").mock(return_value=httpx.Response(200, json={"data": [other]}))
    with pytest.raises(MetronomeResponseError, match="does not hold it"):
        client.find_customer_by_ingest_alias("acme")


@respx.mock
def test_an_alias_lookup_returns_the_customer_holding_it(client: MetronomeClient) -> None:
    mine = {**_customer(1), "ingest_aliases": ["x", "acme"]}
    respx.get(f"{BASE}/v1/customers").mock(return_value=httpx.Response(200, json={"data": [mine]}))
    assert client.find_customer_by_ingest_alias("acme") == mine
