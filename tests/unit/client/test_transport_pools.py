"""The httpx client under the SDK: small pools per thread, no cookies, the SDK's own headers."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import httpx
import pytest
import respx

from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.client.sdk import user_agent
from airflow_provider_metronome.client.transport import SHARD_CONNECTIONS, ShardedTransport

if TYPE_CHECKING:
    from collections.abc import Iterator

BASE = "http://metronome.test"
TOKEN = "tok_pools_1a2b3c4d5e6f7a8b9c0d"


@pytest.fixture
def client() -> Iterator[MetronomeClient]:
    c = MetronomeClient(BASE, TOKEN, max_connections=5)
    yield c
    c.close()


class _Pool(httpx.BaseTransport):
    def __init__(self, limits: httpx.Limits) -> None:
        self.limits = limits
        self.closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"pool": id(self)})

    def close(self) -> None:
        self.closed = True


def test_the_pools_hold_the_connections_of_the_settings_together() -> None:
    sharded = ShardedTransport(_Pool, httpx.Limits(max_connections=5, max_keepalive_connections=5))
    pools = [p for p in sharded.pools if isinstance(p, _Pool)]
    assert [p.limits.max_connections for p in pools] == [SHARD_CONNECTIONS, SHARD_CONNECTIONS, 1]
    assert sum(p.limits.max_keepalive_connections or 0 for p in pools) >= 5
    sharded.close()
    assert all(p.closed for p in pools)


def test_each_thread_keeps_one_pool_and_threads_take_them_in_turn() -> None:
    sharded = ShardedTransport(_Pool, httpx.Limits(max_connections=8))
    request = httpx.Request("GET", f"{BASE}/v1/customers")
    seen: dict[str, set[int]] = {}
    lock = threading.Lock()

    def work(name: str) -> None:
        for _ in range(5):
            pool = sharded.handle_request(request).json()["pool"]
            with lock:
                seen.setdefault(name, set()).add(pool)

    threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(pools) == 1 for pools in seen.values()), "a thread stays on its pool"
    assert len(set.union(*seen.values())) == 4, "four threads, four pools of the four"


def test_the_sdk_sends_what_the_plain_sdk_sends(client: MetronomeClient) -> None:
    from metronome import Metronome

    plain = Metronome(bearer_token=TOKEN, base_url=BASE, max_retries=0, timeout=client.settings.timeout,
                      default_headers={"User-Agent": user_agent()})  # fmt: skip
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/v1/getCustomerBillingProviderConfigurations").mock(
            return_value=httpx.Response(200, json={"data": []})
        )
        for sdk in (plain, client.transport.raw(), client.transport.raw()):
            sdk.v1.customers.with_raw_response.retrieve_billing_configurations(
                customer_id="c", extra_headers={"Idempotency-Key": "k"}
            )
    sent = [dict(call.request.headers) for call in route.calls]
    assert sent[0] == sent[1] == sent[2]
    assert sent[0]["authorization"] == f"Bearer {TOKEN}"
    assert sent[0]["idempotency-key"] == "k"
    assert [str(call.request.url) for call in route.calls] == [
        f"{BASE}/v1/getCustomerBillingProviderConfigurations"
    ] * 3
    plain.close()


def test_no_cookie_is_kept(client: MetronomeClient) -> None:
    with respx.mock(base_url=BASE) as mock:
        route = mock.get("/v1/customers").mock(
            return_value=httpx.Response(
                200, json={"data": [], "next_page": None}, headers={"Set-Cookie": "session=abc; Path=/"}
            )
        )
        client.list_customers()
        client.list_customers()
    assert "cookie" not in route.calls[1].request.headers
    assert not client.transport.raw()._client.cookies


def test_a_proxy_from_the_environment_is_still_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.test:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = MetronomeClient(BASE, TOKEN)
    try:
        http = client.transport.raw()._client
        transport = http._transport_for_url(httpx.URL(f"{BASE}/v1/customers"))
        assert not isinstance(transport, ShardedTransport), "the proxy's transport, httpx's own"
        assert isinstance(http._transport, ShardedTransport)
    finally:
        client.close()
