"""MetronomeHook: the connection read once, the client a cached property, nothing built before it is needed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.hooks.metronome import MetronomeHook

TOKEN = "tok_hookparts_1a2b3c4d5e6f7a8b"


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv(
        "AIRFLOW_CONN_M_ONCE",
        json.dumps({"conn_type": "metronome", "host": "http://127.0.0.1:9", "password": TOKEN,
                    "extra": {"app_url": "https://app.example.test", "max_retries": 2}}),
    )  # fmt: skip
    seen: list[str] = []
    real = MetronomeHook.get_connection.__func__  # type: ignore[attr-defined]

    def counting(cls: Any, conn_id: str) -> Any:
        seen.append(conn_id)
        return real(cls, conn_id)

    monkeypatch.setattr(MetronomeHook, "get_connection", classmethod(counting))
    return seen


def test_the_connection_is_read_once_and_only_when_needed(lookups: list[str]) -> None:
    hook = MetronomeHook(metronome_conn_id="m_once", max_connections=12)
    hook.close()  # nothing to close yet: builds nothing
    assert hook.api_calls == 0
    assert lookups == []
    assert "client" not in vars(hook)
    client = hook.client
    assert isinstance(client, MetronomeClient)
    assert hook.client is client
    assert client.settings is hook.settings
    assert (hook.settings.max_connections, hook.settings.retry.max_retries) == (12, 2)
    assert hook.app_url == "https://app.example.test"
    assert hook.get_conn() is client.get_conn()
    assert lookups == ["m_once"]
    hook.close()
    assert client.get_conn() is not None, "the client reopens after close"
    hook.close()


def test_test_connection_of_a_connection_that_does_not_exist_says_so() -> None:
    ok, message = MetronomeHook(metronome_conn_id="m_nowhere").test_connection()
    assert not ok
    assert message.startswith(
        "Cannot test the Metronome connection: Airflow connection 'm_nowhere' is not defined"
    )


def test_the_hook_module_keeps_the_sdk_unloaded() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import airflow_provider_metronome.hooks.metronome, airflow_provider_metronome.hooks.avalara; "
        "print(','.join(m for m in ('metronome', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "metronome" not in out.strip().split(","), out
