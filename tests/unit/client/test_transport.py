"""The httpx client under the SDK: the standard library transport, no cookies, the SDK's own headers."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import httpx
import pytest
import respx

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.client.sdk import user_agent
from airflow_provider_metronome.client.stdlib_transport import StdlibTransport
from airflow_provider_metronome.exceptions import MetronomeConnectionError

if TYPE_CHECKING:
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
    proxy = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = proxy.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            seen.append(data.split(b"\r\n")[0])
            if scheme == "http":
                body = b'{"data":[],"next_page":null}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            else:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        for spelled in (name, name.lower()):
            monkeypatch.delenv(spelled, raising=False)
    monkeypatch.setenv(variable, f"http://127.0.0.1:{proxy.getsockname()[1]}")
    client = MetronomeClient(f"{scheme}://metronome.test", TOKEN, retry=RetryPolicy(max_retries=0))
    try:
        http = client.transport.raw()._client
        assert isinstance(http._transport, StdlibTransport), "direct connections: the provider's transport"
        if scheme == "http":
            assert client.list_customers() == []
        else:
            with pytest.raises(MetronomeConnectionError):
                client.list_customers()
    finally:
        client.close()
        proxy.close()
    server.join(5)
    assert seen == [first_line], "the request went to the proxy"
