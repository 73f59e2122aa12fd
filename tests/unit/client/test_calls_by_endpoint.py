"""Requests counted by endpoint: every attempt, ids grouped by template, safe across threads."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import httpx
import pytest
import respx

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.client.errors import ErrorMapper
from airflow_provider_metronome.client.executor import RequestExecutor, endpoint_template
from airflow_provider_metronome.client.settings import ClientSettings

if TYPE_CHECKING:
    from collections.abc import Iterator

BASE = "http://127.0.0.1:9"
TOKEN = "tok_count_1a2b3c4d5e6f7a8b9c0d"
ONE = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
TWO = "1d9c6b63-8d2f-4a1f-8b4c-1d2e3f4a5b02"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[MetronomeClient]:
    monkeypatch.setattr("airflow_provider_metronome.client.executor.time.sleep", lambda s: None)
    c = MetronomeClient(BASE, TOKEN, retry=RetryPolicy(max_retries=3, jitter=0.0))
    yield c
    c.close()


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/v1/customers", "/v1/customers"),
        (f"/v1/customers/{ONE}", "/v1/customers/{customer_id}"),
        ("/v1/customers/acme-1", "/v1/customers/{customer_id}"),
        (f"/v1/customers/{ONE}/setIngestAliases", "/v1/customers/{customer_id}/setIngestAliases"),
        ("/v1/customers/archive", "/v1/customers/archive"),
        ("/v1/setCustomerBillingProviderConfigurations", "/v1/setCustomerBillingProviderConfigurations"),
        (f"/v1/plans/{ONE}/details", "/v1/plans/{plan_id}/details"),
        (f"/v2/contracts/{TWO}", "/v2/contracts/{id}"),
        ("/v1/customers?ingest_alias=a", "/v1/customers"),
    ],
)
def test_an_id_in_a_path_counts_under_its_template(path: str, template: str) -> None:
    assert endpoint_template(path) == template
    assert endpoint_template(path) == template, "the same answer from the cache of static paths"


def test_every_attempt_counts_under_its_endpoint_and_the_counts_add_up(client: MetronomeClient) -> None:
    answer = {"data": {"id": ONE, "ingest_aliases": ["a"], "name": "A"}}
    with respx.mock(base_url=BASE) as mock:
        mock.get(f"/v1/customers/{ONE}").mock(return_value=httpx.Response(200, json=answer))
        mock.get(f"/v1/customers/{TWO}").mock(
            side_effect=[httpx.Response(503, json={"message": "busy"}), httpx.Response(200, json=answer)]
        )
        mock.post(f"/v1/customers/{ONE}/setIngestAliases").mock(return_value=httpx.Response(200))
        mock.get("/v1/customers").mock(return_value=httpx.Response(200, json={"data": [], "next_page": None}))
        client.get_customer(ONE)
        client.get_customer(TWO)
        client.set_ingest_aliases(ONE, ["a", "b"], idempotency_key="k")
        client.list_customers(ingest_alias="a")
        assert client.test_connection()[0] is True
    counts = client.api_calls_by_endpoint
    assert counts == {
        "GET /v1/customers/{customer_id}": 3,  # the 503 and its retry count
        "POST /v1/customers/{customer_id}/setIngestAliases": 1,
        "GET /v1/customers": 2,  # list_customers and test_connection
    }
    assert sum(counts.values()) == client.api_calls == 6


def test_the_property_is_a_copy(client: MetronomeClient) -> None:
    client.executor.count_call("GET", "/v1/customers")
    counts = client.api_calls_by_endpoint
    counts["GET /v1/customers"] = 99
    assert client.api_calls_by_endpoint == {"GET /v1/customers": 1}


def test_counting_is_thread_safe() -> None:
    executor = RequestExecutor(RetryPolicy(), ErrorMapper(ClientSettings(base_url=BASE, token=TOKEN)))
    paths = [f"/v1/customers/{ONE}", "/v1/customers", f"/v1/customers/{TWO}/setIngestAliases"]
    start = threading.Barrier(8)

    def work(n: int) -> None:
        start.wait()
        for i in range(2000):
            path = paths[(i + n) % 3]
            executor.request("POST" if "set" in path else "GET", path, lambda headers: None)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = executor.calls_by_endpoint
    assert executor.calls == sum(counts.values()) == 16_000
    assert set(counts) == {
        "GET /v1/customers/{customer_id}",
        "GET /v1/customers",
        "POST /v1/customers/{customer_id}/setIngestAliases",
    }


def test_a_caller_may_name_the_endpoint() -> None:
    executor = RequestExecutor(RetryPolicy(), ErrorMapper(ClientSettings(base_url=BASE, token=TOKEN)))
    executor.request("GET", "/v1/things/t-1", lambda headers: None, endpoint="GET /v1/things/{thing_id}")
    assert executor.calls_by_endpoint == {"GET /v1/things/{thing_id}": 1}
