"""MetronomeHook and AvalaraHook: connection parsing, lazy resolution, secrets."""

from __future__ import annotations

import json

import pytest

from airflow_provider_metronome.exceptions import MetronomeConfigError
from airflow_provider_metronome.hooks.avalara import AvalaraHook
from airflow_provider_metronome.hooks.metronome import MetronomeHook

TOKEN = "tok_hook_1a2b3c4d5e6f7a8b9c0d"


def _set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://api.metronome.com/", "https://api.metronome.com"),
        ("api.eu.metronome.example", "https://api.eu.metronome.example"),
        ("", "https://api.metronome.com"),
        (None, "https://api.metronome.com"),
    ],
)
def test_base_url_from_host(monkeypatch: pytest.MonkeyPatch, host: str | None, expected: str) -> None:
    _set_conn(monkeypatch, "m1", conn_type="metronome", host=host, password=TOKEN)
    assert MetronomeHook(metronome_conn_id="m1").settings.base_url == expected


def test_bare_host_with_port(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, "m1", conn_type="metronome", host="metronome.internal", port=8443, password=TOKEN)
    assert MetronomeHook(metronome_conn_id="m1").settings.base_url == "https://metronome.internal:8443"


def test_extras_tune_timeout_and_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(
        monkeypatch, "m1", conn_type="metronome", password=TOKEN,
        extra={"timeout": "12.5", "max_retries": 2, "max_retry_wait": 30},
    )  # fmt: skip
    s = MetronomeHook(metronome_conn_id="m1").settings
    assert (s.timeout, s.retry.max_retries, s.retry.max_total_wait) == (12.5, 2, 30.0)
    assert s.source == "Airflow connection 'm1'"


def test_bad_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, "m1", conn_type="metronome", password=TOKEN, extra={"timeout": "soon"})
    with pytest.raises(MetronomeConfigError, match=r"Connection 'm1'.*timeout.*'soon'"):
        _ = MetronomeHook(metronome_conn_id="m1").settings


def test_missing_token_names_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, "m1", conn_type="metronome", host="http://x")
    with pytest.raises(MetronomeConfigError, match="'m1' has no API token"):
        _ = MetronomeHook(metronome_conn_id="m1").settings


def test_unsupported_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, "m1", conn_type="metronome", host="ftp://x", password=TOKEN)
    with pytest.raises(MetronomeConfigError, match="http or https"):
        _ = MetronomeHook(metronome_conn_id="m1").settings


def test_init_does_not_touch_the_connection() -> None:
    hook = MetronomeHook(metronome_conn_id="does_not_exist")
    assert hook.metronome_conn_id == "does_not_exist"
    assert "settings" not in vars(hook)
    assert "client" not in vars(hook)


def test_get_conn_is_the_configured_official_sdk_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from metronome import Metronome

    from airflow_provider_metronome import __version__

    _set_conn(monkeypatch, "m1", conn_type="metronome", host="http://127.0.0.1:9", password=TOKEN,
              extra={"timeout": 7, "max_retries": 3})  # fmt: skip
    hook = MetronomeHook(metronome_conn_id="m1")
    client = hook.get_conn()
    assert isinstance(client, Metronome)
    assert str(client.base_url).rstrip("/") == "http://127.0.0.1:9"
    assert client.bearer_token == TOKEN
    assert client.max_retries == 3
    assert client.timeout == 7
    assert client.default_headers["User-Agent"] == f"airflow-provider-metronome/{__version__}"
    assert hook.get_conn() is client
    assert TOKEN not in repr(hook)
    assert TOKEN not in repr(hook.settings)


def test_default_connection_id() -> None:
    assert MetronomeHook().metronome_conn_id == "metronome_default"
    assert MetronomeHook.conn_type == "metronome"
    assert AvalaraHook().avalara_conn_id == "avalara_default"


def test_sdk_is_not_imported_by_the_hook_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import airflow_provider_metronome.hooks.metronome; "
        "import airflow_provider_metronome.operators.billing_config; "
        "import airflow_provider_metronome.operators.avalara; "
        "mods=('metronome','pydantic','airflow_provider_metronome.sync.engine'); "
        "heavy=[m for m in mods if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert "metronome" not in out.split(","), out
    assert "airflow_provider_metronome.sync.engine" not in out.split(","), out


def test_avalara_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, "av", conn_type="avalara", login="tax@example.com", password="av-Pa55word!",
              extra={"environment": "production", "commit_transactions": "true"})  # fmt: skip
    creds = AvalaraHook(avalara_conn_id="av").get_credentials()
    assert (creds.username, creds.environment, creds.commit_transactions) == (
        "tax@example.com",
        "PRODUCTION",
        True,
    )
    assert "av-Pa55word!" not in repr(creds)
    overridden = AvalaraHook(avalara_conn_id="av").get_credentials(
        environment="SANDBOX", commit_transactions=False
    )
    assert (overridden.environment, overridden.commit_transactions) == ("SANDBOX", False)


def test_avalara_defaults_to_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, "av", conn_type="avalara", login="u", password="p")
    creds = AvalaraHook(avalara_conn_id="av").get_credentials()
    assert (creds.environment, creds.commit_transactions) == ("SANDBOX", None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"login": "u", "password": "p", "extra": {"environment": "STAGING"}}, "SANDBOX or PRODUCTION"),
        ({"password": "p"}, "no login"),
        ({"login": "u"}, "no password"),
        ({"login": "u", "password": "p", "extra": {"commit_transactions": "maybe"}}, "commit_transactions"),
    ],
)
def test_avalara_bad_connections(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, object], message: str
) -> None:
    _set_conn(monkeypatch, "av", conn_type="avalara", **fields)
    with pytest.raises(MetronomeConfigError, match=message):
        AvalaraHook(avalara_conn_id="av").get_credentials()
    ok, text = AvalaraHook(avalara_conn_id="av").test_connection()
    assert not ok
    assert message.split()[0] in text


def test_undefined_connection_is_a_config_error() -> None:
    with pytest.raises(MetronomeConfigError, match=r"'nowhere' is not defined.*AIRFLOW_CONN_NOWHERE"):
        _ = MetronomeHook(metronome_conn_id="nowhere").settings
    with pytest.raises(
        MetronomeConfigError, match=r"'nowhere' is not defined: create a 'avalara' connection"
    ):
        AvalaraHook(avalara_conn_id="nowhere").get_credentials()


# -- connection values the client cannot use are config errors naming the connection


def test_a_token_with_surrounding_whitespace_is_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, "m1", conn_type="metronome", host="http://127.0.0.1:9", password=f"{TOKEN}\n")
    hook = MetronomeHook(metronome_conn_id="m1")
    assert hook.settings.token == TOKEN
    assert hook.get_conn().bearer_token == TOKEN


def test_a_token_of_whitespace_only_is_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, "m1", conn_type="metronome", password=" \n")
    with pytest.raises(MetronomeConfigError, match="'m1' has no API token"):
        _ = MetronomeHook(metronome_conn_id="m1").settings


@pytest.mark.parametrize(
    "token", ["tok_ünïcode_1a2b3c4d5e6f", "tok_with space_1a2b3c4d", "tok_ctrl\x07_1a2b3c4d5e"]
)
def test_a_token_a_header_cannot_carry_is_a_config_error_naming_the_connection(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    _set_conn(monkeypatch, "m1", conn_type="metronome", host="http://127.0.0.1:9", password=token)
    with pytest.raises(MetronomeConfigError, match=r"API token in Airflow connection 'm1'") as info:
        MetronomeHook(metronome_conn_id="m1").get_conn()
    assert token not in str(info.value)
    ok, message = MetronomeHook(metronome_conn_id="m1").test_connection()
    assert not ok
    assert "Airflow connection 'm1'" in message
    assert "UnicodeEncodeError" not in message
    assert token not in message


@pytest.mark.parametrize("timeout", [0, "0", -1, "nan", "inf"])
def test_a_timeout_that_is_not_above_zero_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, timeout: object
) -> None:
    _set_conn(monkeypatch, "m1", conn_type="metronome", password=TOKEN, extra={"timeout": timeout})
    with pytest.raises(MetronomeConfigError, match=r"Connection 'm1'.*timeout"):
        _ = MetronomeHook(metronome_conn_id="m1").settings
    ok, message = MetronomeHook(metronome_conn_id="m1").test_connection()
    assert not ok
    assert "timeout" in message
    assert "Operation now in progress" not in message


def test_a_timeout_argument_of_zero_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_metronome.client import MetronomeClient

    _set_conn(monkeypatch, "m1", conn_type="metronome", password=TOKEN)
    with pytest.raises(MetronomeConfigError, match=r"'m1'.*timeout must be a number of seconds above 0"):
        _ = MetronomeHook(metronome_conn_id="m1", timeout=0).settings
    ok, message = MetronomeClient("http://127.0.0.1:9", TOKEN, timeout=0).test_connection()
    assert not ok
    assert "timeout of the Metronome client must be a number of seconds above 0" in message


@pytest.mark.parametrize(
    "host", ["https://api.metronome.example/?token=abc", "https://api.metronome.example/#x"]
)
def test_a_base_url_with_a_query_or_fragment_is_refused(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    _set_conn(monkeypatch, "m1", conn_type="metronome", host=host, password=TOKEN)
    with pytest.raises(MetronomeConfigError, match="'m1': Base URL must not have a query string or fragment"):
        _ = MetronomeHook(metronome_conn_id="m1").settings


def test_cleartext_to_a_remote_host_is_warned_once_naming_the_host(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.WARNING, logger="airflow_provider_metronome.client")
    _set_conn(
        monkeypatch, "m1", conn_type="metronome", host="http://metronome-gw.hook.example:8080", password=TOKEN
    )
    for _ in range(2):
        hook = MetronomeHook(metronome_conn_id="m1")
        hook.get_conn()
        hook.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "metronome-gw.hook.example" in warnings[0]
