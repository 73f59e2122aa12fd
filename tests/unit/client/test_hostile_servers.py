"""Misbehaving servers: redirects, endless paging, a body sent one byte at a time, malformed answers.

The servers are real HTTP servers on 127.0.0.1, started by each test, so the whole
stack (SDK, httpx, the provider's transport, sockets) is exercised; respx stands in only where the
fault is in the body of an otherwise ordinary answer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import respx

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.client import endpoints as client_endpoints
from airflow_provider_metronome.exceptions import (
    MetronomeConnectionError,
    MetronomeRedirectError,
    MetronomeResponseError,
)
from tests.unit.client.raw_server import RawServer, read_request

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterator

TOKEN = "tok_hostile_5e4d3c2b1a0f9e8d7c6b"
PASSWORD = "Av4lara-Hostile-9a8b7c"
CUSTOMER = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
DM = "00000000-0000-4000-8000-0000000000d1"
CONFIG = {
    "customer_id": CUSTOMER,
    "billing_provider": "stripe",
    "delivery_method": "direct_to_billing_provider",
    "configuration": {"stripe_customer_id": "cus_1"},
}


# -- local servers ----------------------------------------------------------------------

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    """One request a local server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


def json_answer(status: int, payload: Any, headers: dict[str, str] | None = None) -> Answer:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(payload).encode()


class LocalServer:
    """A real HTTP/1.1 server on 127.0.0.1 answering every request with ``answer(request)``.

    :param answer: builds the answer to one request.
    """

    def __init__(self, answer: Callable[[Seen], Answer]) -> None:
        self.requests: list[Seen] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                seen = Seen(self.command, url.path, dict(parse_qsl(url.query)), dict(self.headers), body)
                owner.requests.append(seen)
                status, headers, content = answer(seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class TrickleServer(RawServer):
    """Answers headers at once, then the body one byte every ``gap`` seconds.

    :param body: the body to send.
    :param gap: seconds between two bytes.
    """

    def __init__(self, body: bytes, gap: float) -> None:
        super().__init__(self._trickle)
        self.body = body
        self.gap = gap
        self.stopped = threading.Event()

    def _trickle(self, conn: socket.socket) -> None:
        if not read_request(conn):
            return
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
        )
        conn.sendall(head.encode())
        for i in range(len(self.body)):
            if self.stopped.wait(self.gap):
                return
            conn.sendall(self.body[i : i + 1])  # an OSError (the client gave up) ends the connection

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        super().__exit__(*exc)


def _client(url: str, **kwargs: Any) -> MetronomeClient:
    kwargs.setdefault("retry", RetryPolicy(max_retries=0))
    return MetronomeClient(url, TOKEN, **kwargs)


@pytest.fixture
def closing() -> Iterator[list[MetronomeClient]]:
    clients: list[MetronomeClient] = []
    yield clients
    for c in clients:
        c.close()


# -- 2. redirects are errors, never followed ----------------------------------------------


@pytest.mark.parametrize("status", [307, 308])
def test_a_write_redirected_elsewhere_is_not_re_sent_there(
    status: int, closing: list[MetronomeClient]
) -> None:
    with LocalServer(lambda r: json_answer(200, {})) as elsewhere:
        target = f"http://collector:hunter2@127.0.0.1:{elsewhere.port}/v1/upsertAvalaraCredentials"

        def redirect(r: Seen) -> Answer:
            return status, {"Location": f"{target}?sig=s3cret-query"}, b""

        with LocalServer(redirect) as api:
            client = _client(api.url)
            closing.append(client)
            with pytest.raises(MetronomeRedirectError) as info:
                client.upsert_avalara_credentials(
                    [DM], avalara_environment="SANDBOX", avalara_username="u", avalara_password=PASSWORD
                )
        assert elsewhere.requests == [], "the body (and its password) went to the redirect target"
        assert len(api.requests) == 1
    err = info.value
    assert err.status == status
    assert err.location == f"http://127.0.0.1:{elsewhere.port}/v1/upsertAvalaraCredentials?..."
    text = str(err)
    assert "POST /v1/upsertAvalaraCredentials" in text
    assert f"redirected to http://127.0.0.1:{elsewhere.port}/v1/upsertAvalaraCredentials" in text
    for secret in (PASSWORD, TOKEN, "hunter2", "collector", "s3cret-query"):
        assert secret not in text


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_write_redirected_does_not_turn_into_a_get_that_passes_for_success(
    status: int, closing: list[MetronomeClient]
) -> None:
    created = {"data": [{"id": "e045c62b-65e7-4e84-a924-3f06f8b621d0", **CONFIG}]}
    with LocalServer(lambda r: json_answer(200, created)) as elsewhere:
        with LocalServer(lambda r: (status, {"Location": f"{elsewhere.url}/landing"}, b"moved")) as api:
            client = _client(api.url)
            closing.append(client)
            with pytest.raises(
                MetronomeRedirectError, match=r"redirected to http://127\.0\.0\.1:\d+/landing"
            ):
                client.set_billing_provider_configurations([CONFIG], idempotency_key="k-redirect")
        assert elsewhere.requests == []


def test_a_redirect_is_not_retried_and_test_connection_names_it(closing: list[MetronomeClient]) -> None:
    with LocalServer(
        lambda r: (302, {"Location": "/login?next=%2Fv1%2Fcustomers"}, b"<html>login</html>")
    ) as api:
        client = MetronomeClient(api.url, TOKEN, retry=RetryPolicy(max_retries=5))
        closing.append(client)
        with pytest.raises(MetronomeRedirectError) as info:
            client.get_customer(CUSTOMER)
        assert len(api.requests) == 1, "a redirect is not retried"
        assert info.value.location == f"{api.url}/login?..."
        ok, message = client.test_connection()
    assert not ok
    assert message.startswith(
        f"Metronome at {api.url} answered 302 to GET /v1/customers: redirected to {api.url}/login?..."
    )
    assert "is the base URL right?" in message


def test_the_official_client_of_get_conn_does_not_follow_redirects_either(
    closing: list[MetronomeClient],
) -> None:
    from metronome import APIStatusError

    with LocalServer(lambda r: json_answer(200, {"data": []})) as elsewhere:
        with LocalServer(lambda r: (307, {"Location": f"{elsewhere.url}/v1/customers"}, b"")) as api:
            client = _client(api.url)
            closing.append(client)
            with pytest.raises(APIStatusError) as info:
                client.get_conn().v1.customers.list()
        assert info.value.status_code == 307
        assert elsewhere.requests == []


# -- 3. paging always ends ------------------------------------------------------------------


def _customer(i: int) -> dict[str, Any]:
    return {"id": f"00000000-0000-4000-8000-{i:012d}", "name": f"C{i}", "ingest_aliases": [f"c{i}"]}


def test_a_customer_cursor_that_comes_back_is_an_error_naming_the_endpoint(
    closing: list[MetronomeClient],
) -> None:
    def answer(r: Seen) -> Answer:
        # Fifty pages pointing at themselves, then an end: without a cycle check the
        # client reads them all (a real server in this state never ends).
        if len(server.requests) > 50:
            return json_answer(200, {"data": [], "next_page": None})
        return json_answer(200, {"data": [_customer(len(server.requests))], "next_page": "cursor-same"})

    with LocalServer(answer) as server:
        client = _client(server.url)
        closing.append(client)
        with pytest.raises(MetronomeResponseError, match=r"GET /v1/customers .*'cursor-same'.*cycle"):
            client.list_customers()
        assert len(server.requests) == 2


def test_billing_provider_pages_without_end_stop_at_the_page_limit(
    monkeypatch: pytest.MonkeyPatch, closing: list[MetronomeClient]
) -> None:
    monkeypatch.setattr(client_endpoints, "MAX_BILLING_PROVIDER_PAGES", 20)

    def answer(r: Seen) -> Answer:
        n = len(server.requests)
        if n > 200:  # a bound for the test only: this server would go on forever
            return json_answer(200, {"data": [], "next_page": None})
        item = {"billing_provider": "stripe", "delivery_method": "direct_to_billing_provider",
                "delivery_method_id": DM, "delivery_method_configuration": {}}  # fmt: skip
        return json_answer(200, {"data": [item], "next_page": f"cursor-{n}"})

    with LocalServer(answer) as server:
        client = _client(server.url)
        closing.append(client)
        with pytest.raises(MetronomeResponseError) as info:
            client.list_configured_billing_providers()
        assert len(server.requests) == 20
    assert "POST /v1/listConfiguredBillingProviders" in str(info.value)
    assert "after 20 pages" in str(info.value)


def test_the_page_limits_are_generous_but_finite() -> None:
    assert 1_000 <= client_endpoints.MAX_BILLING_PROVIDER_PAGES <= 100_000
    assert client_endpoints.MAX_CUSTOMER_PAGES * client_endpoints.MAX_PAGE_SIZE >= 1_000_000


def test_a_repeated_page_of_delivery_methods_counts_each_once(closing: list[MetronomeClient]) -> None:
    def dm(i: int) -> dict[str, Any]:
        return {"billing_provider": "stripe", "delivery_method": "direct_to_billing_provider",
                "delivery_method_id": f"00000000-0000-4000-8000-{i:012d}", "delivery_method_configuration": {}}  # fmt: skip

    def answer(r: Seen) -> Answer:
        cursor = json.loads(r.body or b"{}").get("next_page")
        if cursor is None:
            return json_answer(200, {"data": [dm(1)], "next_page": "p2"})
        return json_answer(200, {"data": [dm(1), dm(2)], "next_page": None})  # page 1 again, then more

    with LocalServer(answer) as server:
        client = _client(server.url)
        closing.append(client)
        ids = [d["delivery_method_id"] for d in client.list_configured_billing_providers()]
    assert ids == [dm(1)["delivery_method_id"], dm(2)["delivery_method_id"]]


# -- 3. a request ends within its timeout, however slowly the server talks -----------------


@pytest.mark.timeout(60)
def test_a_body_sent_one_byte_at_a_time_does_not_outlast_the_timeout(closing: list[MetronomeClient]) -> None:
    body = json.dumps({"data": _customer(1)}).encode().ljust(200)  # 200 bytes: 10 s at 50 ms a byte
    with TrickleServer(body, gap=0.05) as server:
        client = _client(server.url, timeout=1.0)
        closing.append(client)
        started = time.monotonic()
        with pytest.raises(MetronomeConnectionError) as info:
            client.get_customer(CUSTOMER)
        elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"the request lasted {elapsed:.1f}s with timeout=1s"
    assert f"GET /v1/customers/{CUSTOMER}" in str(info.value)
    assert "within 1s" in str(info.value)


@pytest.mark.timeout(60)
def test_the_deadline_holds_for_every_retry_and_a_quick_server_is_unaffected(
    sleeps: list[float], closing: list[MetronomeClient]
) -> None:
    body = json.dumps({"data": _customer(1)}).encode().ljust(200)
    with TrickleServer(body, gap=0.05) as server:
        client = _client(server.url, timeout=0.5, retry=RetryPolicy(max_retries=2))
        closing.append(client)
        started = time.monotonic()
        with pytest.raises(MetronomeConnectionError, match="after 3 attempt"):
            client.get_customer(CUSTOMER)
        assert time.monotonic() - started < 4.0
    with TrickleServer(json.dumps({"data": _customer(2)}).encode(), gap=0.0) as quick:
        client = _client(quick.url, timeout=2.0)
        closing.append(client)
        assert client.get_customer(CUSTOMER)["name"] == "C2"


# -- 4. malformed success answers name the request and what was wrong ----------------------

BASE = "http://metronome.test"


def _call(client: MetronomeClient, name: str) -> Any:
    calls: dict[str, Callable[[], Any]] = {
        "get_customer": lambda: client.get_customer(CUSTOMER),
        "list_customers": lambda: client.list_customers(),
        "list_configured_billing_providers": lambda: client.list_configured_billing_providers(),
        "get_billing_provider_configurations": lambda: client.get_billing_provider_configurations(CUSTOMER),
        "set_billing_provider_configurations": lambda: client.set_billing_provider_configurations([CONFIG]),
        "archive_billing_provider_configurations": lambda: client.archive_billing_provider_configurations(
            CUSTOMER, ["x"]
        ),
        "upsert_avalara_credentials": lambda: client.upsert_avalara_credentials(
            [DM], avalara_environment="SANDBOX", avalara_username="u", avalara_password=PASSWORD
        ),
    }
    return calls[name]()


ENDPOINTS = {
    "get_customer": ("GET", f"/v1/customers/{CUSTOMER}"),
    "list_customers": ("GET", "/v1/customers"),
    "list_configured_billing_providers": ("POST", "/v1/listConfiguredBillingProviders"),
    "get_billing_provider_configurations": ("POST", "/v1/getCustomerBillingProviderConfigurations"),
    "set_billing_provider_configurations": ("POST", "/v1/setCustomerBillingProviderConfigurations"),
    "archive_billing_provider_configurations": ("POST", "/v1/archiveCustomerBillingProviderConfigurations"),
    "upsert_avalara_credentials": ("POST", "/v1/upsertAvalaraCredentials"),
}


@respx.mock
@pytest.mark.parametrize(
    ("name", "response", "what"),
    [
        ("get_customer", httpx.Response(200, text="<html>hello</html>", headers={"Content-Type": "text/html"}),
         "the body is not JSON (text/html): '<html>hello</html>'"),
        ("get_customer", httpx.Response(200, json={"customer": {}}), "the body has no 'data' (keys: customer)"),
        ("get_customer", httpx.Response(200, json={"data": [1, 2]}), "'data' is a JSON array, not an object"),
        ("list_customers", httpx.Response(200, json=[{"id": "x"}]), "the body is a JSON array, not an object"),
        ("list_customers", httpx.Response(200, json={"data": [], "next_page": 5}),
         "'next_page' is a JSON number, not a string"),
        ("list_configured_billing_providers", httpx.Response(200, json={"data": {"x": 1}}),
         "'data' is a JSON object, not an array"),
        ("list_configured_billing_providers", httpx.Response(200, json={"data": [{"billing_provider": "stripe"}]}),
         "data[0] has no delivery_method_id"),
        ("get_billing_provider_configurations", httpx.Response(200, json={"data": [1]}),
         "data[0] is a JSON number, not an object"),
        ("set_billing_provider_configurations", httpx.Response(200, json={"data": []}),
         "'data' has 0 items for 1 configurations sent"),
        ("set_billing_provider_configurations", httpx.Response(200, json={"data": [{"name": "x"}]}),
         "data[0] has no id"),
        ("archive_billing_provider_configurations", httpx.Response(200, content=b""), "the body is not JSON"),
        ("upsert_avalara_credentials", httpx.Response(200, text="OK", headers={"Content-Type": "text/plain"}),
         "the body is not JSON (text/plain): 'OK'"),
    ],
)  # fmt: skip
def test_a_malformed_success_answer_names_the_request_and_what_was_wrong(
    name: str, response: httpx.Response, what: str
) -> None:
    method, path = ENDPOINTS[name]
    respx.route(method=method, path=path).mock(return_value=response)
    client = MetronomeClient(BASE, TOKEN, retry=RetryPolicy(max_retries=3))
    with pytest.raises(MetronomeResponseError) as info:
        _call(client, name)
    assert respx.calls.call_count == 1, "not retried"
    text = str(info.value)
    assert f"answered 200 on {method} {path}" in text
    assert what in text
    assert (info.value.method, info.value.path, info.value.status) == (method, path, 200)


@respx.mock
def test_an_empty_answer_to_upsert_avalara_credentials_is_fine() -> None:
    respx.post(f"{BASE}/v1/upsertAvalaraCredentials").mock(return_value=httpx.Response(200, content=b""))
    MetronomeClient(BASE, TOKEN).upsert_avalara_credentials(
        [DM], avalara_environment="SANDBOX", avalara_username="u", avalara_password=PASSWORD
    )


@respx.mock
def test_a_malformed_answer_is_scrubbed_and_survives_pickling() -> None:
    import pickle

    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        return_value=httpx.Response(200, text=f"<html>your token {TOKEN}</html>")
    )
    with pytest.raises(MetronomeResponseError) as info:
        MetronomeClient(BASE, TOKEN).get_customer(CUSTOMER)
    assert TOKEN not in str(info.value)
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value)
    assert (copy.method, copy.path, copy.status) == ("GET", f"/v1/customers/{CUSTOMER}", 200)


def test_redirect_errors_survive_pickling() -> None:
    import pickle

    err = MetronomeRedirectError(307, "redirected", method="POST", path="/v1/x", location="https://h/x")
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.status, copy.location, str(copy)) == (type(err), 307, "https://h/x", str(err))


# -- 5. cleartext to a remote host is worth a warning ----------------------------------------


def test_cleartext_to_a_remote_host_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="airflow_provider_metronome.client")
    for _ in range(2):
        client = MetronomeClient("http://metronome-proxy.cleartext.example:8080", TOKEN)
        client.get_conn()
        client.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "cleartext http:// to metronome-proxy.cleartext.example" in warnings[0]
    assert TOKEN not in warnings[0]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:9", "http://[::1]:8080",
                                 "https://api.metronome.example"])  # fmt: skip
def test_no_warning_for_loopback_or_https(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="airflow_provider_metronome.client")
    client = MetronomeClient(url, TOKEN)
    client.get_conn()
    client.close()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
