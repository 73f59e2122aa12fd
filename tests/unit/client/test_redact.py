"""No secret in any text the client writes: exceptions, test_connection, retry lines, DEBUG logs.

The secrets are the API token (in every form it was given or sent: with the
whitespace of a secret file, stripped, ``Bearer <token>``) and what a request
carries (the Avalara password of ``upsertAvalaraCredentials``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.client.redact import FRAGMENT, Secrets, forms
from airflow_provider_metronome.exceptions import (
    MetronomeAuthError,
    MetronomeBadRequestError,
    MetronomeConfigError,
    MetronomeError,
)
from airflow_provider_metronome.hooks.avalara import AvalaraHook
from airflow_provider_metronome.hooks.metronome import MetronomeHook
from tests.unit.client.test_hostile_servers import Answer, LocalServer, Seen, json_answer

BASE = "http://metronome.test"
TOKEN = "tok_scrub_0f1e2d3c4b5a69788796"
# Quotes and a backslash: JSON and repr escape them differently from the raw text.
PASSWORD = 'Av4lara-"P@ss\\word-7f3e9c'
CUSTOMER = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
DM = "00000000-0000-4000-8000-0000000000d1"
SET_PATH = "/v1/setCustomerBillingProviderConfigurations"
CONFIG = {
    "customer_id": CUSTOMER,
    "billing_provider": "stripe",
    "delivery_method": "direct_to_billing_provider",
    "configuration": {"stripe_customer_id": "cus_1"},
}


def _leaks(text: str, secret: str) -> list[str]:
    """The forms of ``secret`` found in ``text``, and any run of FRAGMENT of its characters."""
    found = [f for f in forms(secret) if f.strip() and f in text]
    core = secret.strip()
    found += [
        core[i : i + FRAGMENT] for i in range(len(core) - FRAGMENT + 1) if core[i : i + FRAGMENT] in text
    ]
    return found


# -- the scrubber itself ---------------------------------------------------------------------


def test_every_form_and_every_long_fragment_is_scrubbed() -> None:
    secrets = Secrets()
    secrets.add(f"{TOKEN}\n", PASSWORD)
    texts = [
        f"token {TOKEN} is revoked",
        f"raw {TOKEN!r}",
        json.dumps({"avalara_password": PASSWORD}),
        repr({"avalara_password": PASSWORD}),
        f"starts {TOKEN[: FRAGMENT + 3]} (cut by the server)",
        f"ends {TOKEN[-FRAGMENT:]}",
        f"Authorization: Bearer {TOKEN}",
    ]
    for text in texts:
        clean = secrets.scrub(text)
        assert "***" in clean, text
        assert not _leaks(clean, TOKEN), clean
        assert not _leaks(clean, PASSWORD), clean
    assert (
        secrets.scrub("nothing secret here, only /v1/customers") == "nothing secret here, only /v1/customers"
    )


def test_truncating_scrubs_first_and_drops_a_start_of_a_secret_at_the_cut() -> None:
    secrets = Secrets()
    secrets.add(TOKEN)
    straddling = "x" * 490 + TOKEN + "y" * 100
    cut = secrets.truncate(straddling, 500)
    assert TOKEN[:4] not in cut
    assert cut.startswith("x" * 490 + "***")
    # The text held only the start of the token, and the cut leaves 4 of its characters.
    partial = "x" * 496 + TOKEN[:10] + "z" * 10
    cut = secrets.truncate(partial, 500)
    assert cut == "x" * 496 + "***..."


def test_an_empty_token_makes_no_secret_of_the_word_bearer() -> None:
    from airflow_provider_metronome.client.redact import LOG_SECRETS

    client = MetronomeClient(BASE, " ")
    ok, _ = client.test_connection()
    assert not ok
    assert client.executor.errors.scrub("Authorization: Bearer abc") == "Authorization: Bearer abc"
    assert "Bearer " not in LOG_SECRETS


# -- 1a. a token with surrounding whitespace ------------------------------------------------


@respx.mock
def test_a_token_with_a_trailing_newline_is_sent_stripped_and_printed_nowhere(
    sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="airflow_provider_metronome.client")
    client = MetronomeClient(BASE, f"{TOKEN}\n", retry=RetryPolicy(max_retries=2, jitter=0.0))
    echo = {"message": f"Idempotency-Key in use by token {TOKEN}"}
    set_route = respx.post(f"{BASE}{SET_PATH}").mock(
        side_effect=[
            httpx.Response(409, json=echo),
            httpx.Response(401, json={"message": f"token {TOKEN} was revoked ({TOKEN[:14]}...)"}),
        ]
    )
    with pytest.raises(MetronomeAuthError) as info:
        client.set_billing_provider_configurations([CONFIG], idempotency_key="k-ws")
    assert set_route.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    respx.get(f"{BASE}/v1/customers").mock(return_value=httpx.Response(401, json={"message": f"bad {TOKEN}"}))
    ok, message = client.test_connection()
    assert not ok
    retry_lines = [r.getMessage() for r in caplog.records if "retry 1/" in r.getMessage()]
    assert retry_lines, "the 409 retry should have been logged"
    for text in [str(info.value), repr(info.value), message, *retry_lines]:
        assert not _leaks(text, TOKEN), text


def test_a_token_read_with_whitespace_from_a_connection_is_stripped_and_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import airflow.providers.common.compat.sdk as compat

    masked: list[str] = []
    monkeypatch.setattr(compat, "mask_secret", lambda secret, name=None: masked.append(secret))
    monkeypatch.setenv(
        "AIRFLOW_CONN_M_WS",
        json.dumps({"conn_type": "metronome", "host": "http://127.0.0.1:9", "password": f" {TOKEN}\n"}),
    )
    hook = MetronomeHook(metronome_conn_id="m_ws")
    assert hook.settings.token == TOKEN
    assert hook.get_conn().bearer_token == TOKEN
    assert {f" {TOKEN}\n", TOKEN, f"Bearer {TOKEN}"} <= set(masked)
    assert TOKEN not in repr(hook.settings)


def test_the_avalara_password_is_registered_with_airflows_masker(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.providers.common.compat.sdk as compat

    masked: list[str] = []
    monkeypatch.setattr(compat, "mask_secret", lambda secret, name=None: masked.append(secret))
    monkeypatch.setenv(
        "AIRFLOW_CONN_AV_MASK",
        json.dumps({"conn_type": "avalara", "login": "tax@example.com", "password": PASSWORD}),
    )
    AvalaraHook(avalara_conn_id="av_mask").get_credentials()
    assert PASSWORD in masked


# -- 1b. a plain-text error body is scrubbed, then cut -------------------------------------


@respx.mock
def test_a_token_straddling_the_cut_of_a_plain_text_body_is_gone_whole(sleeps: list[float]) -> None:
    body = "x" * 490 + TOKEN + "y" * 100
    respx.get(f"{BASE}/v1/customers/{CUSTOMER}").mock(
        return_value=httpx.Response(400, text=body, headers={"Content-Type": "text/plain"})
    )
    client = MetronomeClient(BASE, TOKEN)
    with pytest.raises(MetronomeBadRequestError) as info:
        client.get_customer(CUSTOMER)
    assert TOKEN[:4] not in info.value.api_message
    assert info.value.api_message.startswith("x" * 490 + "***")
    respx.get(f"{BASE}/v1/customers").mock(return_value=httpx.Response(400, text=body))
    ok, message = client.test_connection()
    assert not ok
    assert TOKEN[:4] not in message


# -- 1c. an error that echoes the request holds no Avalara password -------------------------


@respx.mock
@pytest.mark.parametrize("as_json", [True, False])
def test_an_error_echoing_the_request_holds_no_avalara_password(sleeps: list[float], as_json: bool) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        sent = request.content.decode()
        if as_json:
            return httpx.Response(400, json={"message": f"avalara_username: invalid in {sent}"})
        return httpx.Response(400, text=f"Bad Request: {sent}", headers={"Content-Type": "text/plain"})

    respx.post(f"{BASE}/v1/upsertAvalaraCredentials").mock(side_effect=echo)
    client = MetronomeClient(BASE, TOKEN)
    with pytest.raises(MetronomeBadRequestError) as info:
        client.upsert_avalara_credentials(
            [DM], avalara_environment="SANDBOX", avalara_username="tax@example.com", avalara_password=PASSWORD
        )
    text = str(info.value)
    assert "avalara_password" in text, "the echo itself is kept, minus the secret"
    assert not _leaks(text, PASSWORD), text


# -- 1d. DEBUG logs of the SDK, httpx, httpcore and the client hold no secret ---------------


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in ("metronome", "httpx", "httpcore", "airflow_provider_metronome"):
        caplog.set_level(logging.DEBUG, logger=name)
    caplog.set_level(logging.DEBUG)
    return caplog


def test_no_secret_reaches_any_log_at_debug(
    sleeps: list[float], debug_logs: pytest.LogCaptureFixture
) -> None:
    def answer(r: Seen) -> Answer:
        if r.path == "/v1/upsertAvalaraCredentials":
            sent = r.body.decode()
            if len(server.requests) == 1:
                return json_answer(503, {"message": f"busy with {sent} for {r.headers.get('Authorization')}"})
            if len(server.requests) == 2:
                return json_answer(400, {"message": f"invalid: {sent}"})
            return json_answer(200, {})
        return json_answer(401, {"message": f"token {r.headers.get('Authorization')} is not valid"})

    with LocalServer(answer) as server:
        client = MetronomeClient(server.url, f"{TOKEN}\n", retry=RetryPolicy(max_retries=2, jitter=0.0))
        args: dict[str, Any] = {
            "avalara_environment": "SANDBOX",
            "avalara_username": "tax@example.com",
            "avalara_password": PASSWORD,
        }
        with pytest.raises(MetronomeBadRequestError) as info:
            client.upsert_avalara_credentials([DM], **args)
        client.upsert_avalara_credentials([DM], **args)
        with pytest.raises(MetronomeAuthError):
            client.get_customer(CUSTOMER)
        client.test_connection()
        # The official client of get_conn() logs the same way.
        sdk = client.get_conn()
        sdk.v1.settings.upsert_avalara_credentials(delivery_method_ids=[DM], **args)
        client.close()
    assert server.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    records = debug_logs.records
    # (httpcore carries only proxied requests: direct ones go through client/stdlib_transport.py.)
    assert any(r.name == "httpx" for r in records), "httpx's request lines were captured"
    assert any("Request options" in r.getMessage() for r in records), "the SDK DEBUG lines were captured"
    texts = [debug_logs.text, str(info.value), *(r.getMessage() for r in records)]
    texts += [r.exc_text or "" for r in records]
    for text in texts:
        assert not _leaks(text, TOKEN), text
        assert not _leaks(text, PASSWORD), text


def test_the_filter_redacts_records_of_child_loggers_created_by_the_libraries(
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    from airflow_provider_metronome.client.redact import install_log_filter, protect

    protect("s3cret-value-0123456789")
    child = logging.getLogger("httpcore.some_new_module")
    install_log_filter()
    child.debug("headers=%r", [(b"authorization", b"Bearer s3cret-value-0123456789")])
    logging.getLogger("metronome._base_client").debug(
        "Request options: %s", {"json_data": {"avalara_password": "s3cret-value-0123456789"}}
    )
    assert "s3cret-value" not in debug_logs.text
    assert debug_logs.text.count("***") == 2


# -- 1e. a base URL with credentials is refused, never echoed --------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "https://admin:Hunter2-pass@api.metronome.example",
        "http://admin:Hunter2-pass@127.0.0.1:8080",
        "admin:Hunter2-pass@api.metronome.example",
        "https://Hunter2-pass@api.metronome.example",
    ],
)
def test_a_base_url_with_credentials_is_a_config_error_naming_the_connection(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_M_USERINFO", json.dumps({"conn_type": "metronome", "host": host, "password": TOKEN})
    )
    hook = MetronomeHook(metronome_conn_id="m_userinfo")
    with pytest.raises(MetronomeConfigError) as info:
        _ = hook.settings
    assert "'m_userinfo'" in str(info.value)
    assert "user name or password" in str(info.value)
    assert "Hunter2" not in str(info.value)
    with pytest.raises(MetronomeConfigError) as link:
        _ = MetronomeHook(metronome_conn_id="m_userinfo").app_url
    assert "Hunter2" not in str(link.value)
    ok, message = MetronomeHook(metronome_conn_id="m_userinfo").test_connection()
    assert not ok
    assert "'m_userinfo'" in message
    assert "Hunter2" not in message


def test_a_client_base_url_with_credentials_is_refused() -> None:
    with pytest.raises(MetronomeConfigError, match="user name or password") as info:
        MetronomeClient("http://admin:Hunter2-pass@127.0.0.1:8080", TOKEN)
    assert "Hunter2" not in str(info.value)


def test_an_app_url_with_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_M_APP",
        json.dumps(
            {
                "conn_type": "metronome",
                "password": TOKEN,
                "extra": {"app_url": "https://u:Hunter2@app.example"},
            }
        ),
    )
    with pytest.raises(MetronomeConfigError, match=r"'m_app'.*app_url") as info:
        _ = MetronomeHook(metronome_conn_id="m_app").app_url
    assert "Hunter2" not in str(info.value)


# -- every error the client raises is one of ours ------------------------------------------


@respx.mock
def test_errors_do_not_chain_to_the_sdk_exception_and_its_body(sleeps: list[float]) -> None:
    respx.post(f"{BASE}/v1/upsertAvalaraCredentials").mock(
        return_value=httpx.Response(400, json={"message": f"bad {PASSWORD}"})
    )
    with pytest.raises(MetronomeError) as info:
        MetronomeClient(BASE, TOKEN).upsert_avalara_credentials(
            [DM], avalara_environment="SANDBOX", avalara_username="u", avalara_password=PASSWORD
        )
    assert info.value.__context__ is None
    assert info.value.__cause__ is None
