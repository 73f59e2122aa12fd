"""The client is made of parts: one SDK client and pool, state per client, a Protocol both the client and the hook satisfy."""

from __future__ import annotations

import inspect
import threading
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import respx

from airflow_provider_metronome.client import MetronomeApi, MetronomeClient, RetryPolicy
from airflow_provider_metronome.hooks.metronome import MetronomeHook

if TYPE_CHECKING:
    from collections.abc import Iterator

BASE = "http://127.0.0.1:9"
TOKEN = "tok_parts_1a2b3c4d5e6f7a8b9c0d"
OTHER_TOKEN = "tok_other_9f8e7d6c5b4a39281706"
CUSTOMER = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
ANSWER = {"data": {"id": CUSTOMER, "external_id": "c", "ingest_aliases": ["c"], "name": "C"}}


@pytest.fixture
def client() -> Iterator[MetronomeClient]:
    c = MetronomeClient(BASE, TOKEN, retry=RetryPolicy(max_retries=3))
    yield c
    c.close()


def test_one_sdk_client_whose_retry_free_view_shares_its_connection_pool(client: MetronomeClient) -> None:
    sdk = client.get_conn()
    raw = client.transport.raw()
    assert raw is not sdk
    assert (sdk.max_retries, raw.max_retries) == (3, 0), (
        "the executor retries the typed calls, the SDK get_conn's"
    )
    assert raw._client is sdk._client, "one httpx client, so one connection pool"
    assert client.get_conn() is sdk
    assert client.transport.raw() is raw


def test_the_pool_is_built_once_however_many_threads_ask(
    client: MetronomeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_metronome.client import sdk as sdk_module

    builds: list[object] = []
    real = sdk_module.build_sdk_client

    def counting(settings: Any) -> Any:
        builds.append(settings)
        return real(settings)

    monkeypatch.setattr(sdk_module, "build_sdk_client", counting)
    start = threading.Barrier(8)
    seen: list[object] = []

    def ask() -> None:
        start.wait()
        seen.append(client.transport.raw())
        seen.append(client.get_conn())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1
    assert len({id(s) for s in seen}) == 2


@respx.mock
def test_close_closes_the_pool_and_the_client_stays_usable(client: MetronomeClient) -> None:
    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(return_value=httpx.Response(200, json=ANSWER))
    first = client.get_conn()
    assert client.get_customer(CUSTOMER)["id"] == CUSTOMER
    client.close()
    assert first.is_closed()
    assert client.get_customer(CUSTOMER)["id"] == CUSTOMER, "a new pool is opened on the next call"
    assert client.get_conn() is not first
    assert client.api_calls == 2


@respx.mock
def test_counters_pacing_and_secrets_belong_to_each_client() -> None:
    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(return_value=httpx.Response(200, json=ANSWER))
    one, two = MetronomeClient(BASE, TOKEN), MetronomeClient(BASE, OTHER_TOKEN)
    try:
        one.get_customer(CUSTOMER)
        one.get_customer(CUSTOMER)
        two.get_customer(CUSTOMER)
        assert (one.api_calls, two.api_calls) == (2, 1)
        assert one.executor is not two.executor
        assert one.executor.limiter is not two.executor.limiter
        assert one.executor.retry_log is not two.executor.retry_log
        assert one.executor.errors.scrub(TOKEN) == "***"
        assert two.executor.errors.scrub(TOKEN) == TOKEN, "a client scrubs its own secrets"
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize("cls", [MetronomeClient, MetronomeHook])
def test_no_lock_cache_or_counter_is_shared_through_the_class(cls: type) -> None:
    lock_types = (type(threading.Lock()), type(threading.RLock()))
    for klass in cls.__mro__:
        if not klass.__module__.startswith("airflow_provider_metronome"):
            continue
        for name, value in vars(klass).items():
            assert not isinstance(value, lock_types), f"{klass.__name__}.{name} is a class-level lock"
            assert not isinstance(value, (int, dict, set, list)) or name.startswith("__") or name in (
                "default_conn_name", "conn_name_attr", "conn_type", "hook_name",
            ), f"{klass.__name__}.{name} is class-level state"  # fmt: skip


def _protocol_members() -> list[str]:
    return [
        name
        for name in vars(MetronomeApi)
        if not name.startswith("_") and name not in ("settings", "api_calls", "api_calls_by_endpoint")
    ]


@pytest.mark.parametrize("cls", [MetronomeClient, MetronomeHook])
def test_the_client_and_the_hook_offer_every_call_of_the_protocol_with_its_signature(cls: type) -> None:
    members = _protocol_members()
    assert "find_customer_by_ingest_alias" in members
    for name in members:
        expected = inspect.signature(getattr(MetronomeApi, name))
        actual = inspect.signature(getattr(cls, name))
        assert list(actual.parameters)[1:] == list(expected.parameters)[1:], name
        for param in list(expected.parameters.values())[1:]:
            assert actual.parameters[param.name].kind == param.kind, (name, param.name)
    for name in ("settings", "api_calls"):
        assert hasattr(cls, name) or name in cls.__annotations__


def test_the_client_offers_the_protocols_properties() -> None:
    for name in ("api_calls", "api_calls_by_endpoint"):
        assert isinstance(inspect.getattr_static(MetronomeClient, name), property), name


def test_the_hooks_calls_are_the_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_M_PARTS", json.dumps({"conn_type": "metronome", "host": BASE, "password": TOKEN})
    )
    hook = MetronomeHook(metronome_conn_id="m_parts")
    assert MetronomeHook.get_customer.__doc__ == MetronomeClient.get_customer.__doc__
    with respx.mock:
        respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(return_value=httpx.Response(200, json=ANSWER))
        assert hook.get_customer(CUSTOMER)["id"] == CUSTOMER
    assert hook.api_calls == hook.client.api_calls == 1
    assert hook.client is hook.client
    hook.close()
