"""The httpx client under the SDK: the standard library transport, no cookies, the SDK's own headers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
import respx

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.client.sdk import user_agent
from airflow_provider_metronome.client.stdlib_transport import StdlibTransport
from airflow_provider_metronome.exceptions import MetronomeConnectionError
from tests.unit.client.raw_server import RawServer, http_answer, read_request

if TYPE_CHECKING:
    import socket
    from collections.abc import Iterator

BASE = "http://metronome.test"
TOKEN = "tok_pools_1a2b3c4d5e6f7a8b9c0d"


@pytest.fixture
def client() -> Iterator[MetronomeClient]:
    c = MetronomeClient(BASE, TOKEN, max_connections=5)
    yield c
    c.close()


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
                customer_id="c", include_archived=False, extra_headers={"Idempotency-Key": "k"}
            )
        # The hot read, prepared once (client/prepared.py), sends the same request too.
        client.get_billing_provider_configurations("c")
        client.get_billing_provider_configurations("c")
    sent = [dict(call.request.headers) for call in route.calls]
    assert len(sent) == 5
    assert sent[0] == sent[1] == sent[2]
    without_key = {k: v for k, v in sent[0].items() if k != "idempotency-key"}
    assert sent[3] == sent[4] == without_key
    assert len({call.request.content for call in route.calls}) == 1, "the same body, byte for byte"
    assert sent[0]["authorization"] == f"Bearer {TOKEN}"
    assert sent[0]["idempotency-key"] == "k"
    assert [str(call.request.url) for call in route.calls] == [
        f"{BASE}/v1/getCustomerBillingProviderConfigurations"
    ] * 5
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


@pytest.mark.parametrize(
    ("variable", "scheme", "first_line"),
    [
        ("HTTP_PROXY", "http", b"GET http://metronome.test/v1/customers?limit=100 HTTP/1.1"),
        ("HTTPS_PROXY", "https", b"CONNECT metronome.test:443 HTTP/1.1"),
    ],
)
def test_a_proxy_from_the_environment_is_used(
    monkeypatch: pytest.MonkeyPatch, variable: str, scheme: str, first_line: bytes
) -> None:
    seen: list[bytes] = []

    def serve(conn: socket.socket) -> None:
        seen.append(read_request(conn).split(b"\r\n")[0])
        if scheme == "http":
            conn.sendall(http_answer(b'{"data":[],"next_page":null}'))
        else:
            conn.sendall(http_answer(b"", status="403 Forbidden"))

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        for spelled in (name, name.lower()):
            monkeypatch.delenv(spelled, raising=False)
    with RawServer(serve) as proxy:
        monkeypatch.setenv(variable, proxy.url)
        client = MetronomeClient(f"{scheme}://metronome.test", TOKEN, retry=RetryPolicy(max_retries=0))
        try:
            http = client.transport.raw()._client
            assert isinstance(http._transport, StdlibTransport), (
                "direct connections: the provider's transport"
            )
            if scheme == "http":
                assert client.list_customers() == []
            else:
                with pytest.raises(MetronomeConnectionError):
                    client.list_customers()
        finally:
            client.close()
    # (The proxy notes the request line before it answers.)
    assert seen == [first_line], "the request went to the proxy"
