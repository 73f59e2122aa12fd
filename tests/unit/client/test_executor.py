"""The request executor alone: no SDK client, no HTTP server, only what ``send`` raises."""

from __future__ import annotations

import httpx
import pytest
from metronome import APIConnectionError, InternalServerError, RateLimitError

from airflow_provider_metronome.client.errors import ErrorMapper
from airflow_provider_metronome.client.executor import RequestExecutor
from airflow_provider_metronome.client.responses import MalformedResponse
from airflow_provider_metronome.client.retry import RetryPolicy
from airflow_provider_metronome.client.settings import ClientSettings
from airflow_provider_metronome.exceptions import (
    MetronomeConnectionError,
    MetronomeResponseError,
    MetronomeServerError,
)

TOKEN = "tok_exec_0a1b2c3d4e5f6a7b8c9d"
REQUEST = httpx.Request("POST", "http://metronome.test/v1/x")


def _executor(**policy: object) -> RequestExecutor:
    settings = ClientSettings(base_url="http://metronome.test", token=TOKEN)
    return RequestExecutor(RetryPolicy(jitter=0.0, **policy), ErrorMapper(settings))  # type: ignore[arg-type]


def _status(cls: type, status: int, **headers: str) -> Exception:
    response = httpx.Response(status, headers=headers, json={"message": f"bad {TOKEN}"}, request=REQUEST)
    return cls(f"status {status}", response=response, body={"message": f"bad {TOKEN}"})  # type: ignore[no-any-return]


def test_a_keyed_write_keeps_its_key_after_a_429_and_gets_a_new_one_after_a_5xx(sleeps: list[float]) -> None:
    executor = _executor()
    keys: list[str] = []
    answers: list[Exception | None] = [_status(RateLimitError, 429, **{"retry-after": "1"}),
                                       _status(InternalServerError, 500), None]  # fmt: skip

    def send(headers: dict[str, str]) -> str:
        keys.append(headers["Idempotency-Key"])
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        return "created"

    assert executor.request("POST", "/v1/x", send, idempotency_key="k-1") == "created"
    assert keys[0] == keys[1] == "k-1"
    assert keys[2].startswith("k-1-r")
    assert executor.calls == 3
    assert sleeps[0] >= 1.0


def test_after_a_5xx_a_write_verify_finds_applied_is_not_sent_again(sleeps: list[float]) -> None:
    executor = _executor()
    sent: list[dict[str, str]] = []

    def send(headers: dict[str, str]) -> str:
        sent.append(headers)
        raise _status(InternalServerError, 502)

    assert executor.request("POST", "/v1/x", send, idempotency_key="k", verify=lambda: "found") == "found"
    assert len(sent) == 1


def test_errors_are_the_providers_scrubbed_and_unchained(sleeps: list[float]) -> None:
    executor = _executor(max_retries=1)

    def down(headers: dict[str, str]) -> None:
        raise _status(InternalServerError, 503)

    with pytest.raises(MetronomeServerError) as info:
        executor.request("GET", "/v1/x", down)
    assert info.value.attempts == 2
    assert TOKEN not in str(info.value)
    assert info.value.__context__ is None

    def unreachable(headers: dict[str, str]) -> None:
        raise APIConnectionError(request=REQUEST)

    with pytest.raises(MetronomeConnectionError) as lost:
        executor.request("GET", "/v1/x", unreachable)
    assert lost.value.reason.startswith("APIConnectionError")

    def malformed(headers: dict[str, str]) -> None:
        raise MalformedResponse(f"echoed {TOKEN}", 200)

    with pytest.raises(
        MetronomeResponseError, match=r"GET /v1/x with what the client cannot use: echoed \*\*\*"
    ):
        executor.request("GET", "/v1/x", malformed)
    assert executor.calls == 5, "2 attempts, 2 attempts, 1 (a malformed answer is not retried)"
