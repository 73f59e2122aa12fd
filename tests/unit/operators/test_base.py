"""MetronomeBaseOperator: the hook, and the one place where errors no retry can fix fail the task."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowNotFoundException

from airflow_provider_metronome.exceptions import (
    MetronomeAuthError,
    MetronomeConfigError,
    MetronomeServerError,
)
from airflow_provider_metronome.hooks.avalara import AvalaraHook
from airflow_provider_metronome.operators.avalara import UpsertAvalaraCredentialsOperator
from airflow_provider_metronome.operators.base import MetronomeBaseOperator
from airflow_provider_metronome.operators.billing_config import SetBillingProviderConfigOperator


def _operators() -> list[MetronomeBaseOperator]:
    return [
        SetBillingProviderConfigOperator(task_id="sync", configurations=[], metronome_conn_id="m_x"),
        UpsertAvalaraCredentialsOperator(task_id="av", delivery_method_ids=[], metronome_conn_id="m_x"),
    ]


@pytest.mark.parametrize("operator", _operators(), ids=lambda o: o.task_id)
def test_both_operators_share_the_base_and_template_the_metronome_connection(
    operator: MetronomeBaseOperator,
) -> None:
    assert isinstance(operator, MetronomeBaseOperator)
    assert "metronome_conn_id" in operator.template_fields
    assert [link.name for link in operator.operator_extra_links] == ["Metronome"]
    operator.metronome_conn_id = "m_rendered"  # what rendering the template does
    assert operator.hook.metronome_conn_id == "m_rendered"
    assert operator.hook is operator.hook


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (MetronomeConfigError("Airflow connection 'm_x' is not defined: create ..."),
         "Airflow connection 'm_x' is not defined: create ..."),
        (MetronomeAuthError(401, "unauthorized", method="GET", path="/v1/customers"),
         "Metronome refused the credentials of connection 'm_x': Metronome API answered 401 on GET /v1/customers"),
        (AirflowNotFoundException("The conn_id `warehouse` isn't defined"), "The conn_id `warehouse` isn't defined"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("operator", _operators(), ids=lambda o: o.task_id)
def test_errors_no_retry_can_fix_fail_the_task_at_once(
    operator: MetronomeBaseOperator, raised: Exception, message: str
) -> None:
    with pytest.raises(AirflowFailException) as info, operator.failing_fast():
        raise raised
    assert str(info.value).startswith(message)
    assert info.value.__cause__ is None


def test_other_errors_are_left_to_the_tasks_retries() -> None:
    operator = _operators()[0]
    with pytest.raises(MetronomeServerError), operator.failing_fast():
        raise MetronomeServerError(503, "unavailable")


def test_the_hook_is_closed_when_the_block_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    operator = _operators()[1]
    closed: list[bool] = []
    monkeypatch.setattr(operator.hook, "close", lambda: closed.append(True))
    with pytest.raises(AirflowFailException), operator.failing_fast():
        raise MetronomeConfigError("nope")
    with operator.failing_fast():
        pass
    assert closed == [True, True]


def test_the_sync_operator_opens_a_connection_per_request_in_flight() -> None:
    assert (
        SetBillingProviderConfigOperator(task_id="t", configurations=[], max_concurrency=40).http_connections
        == 40
    )
    assert (
        SetBillingProviderConfigOperator(task_id="t", configurations=[], max_concurrency=2).http_connections
        == 8
    )
    assert _operators()[1].http_connections == 64


def test_dry_run_is_a_template_field_stored_under_its_name_and_read_in_execute() -> None:
    operator = SetBillingProviderConfigOperator(task_id="t", configurations=[], dry_run="{{ params.dry }}")
    assert "dry_run" in operator.template_fields
    assert operator.dry_run == "{{ params.dry }}", "not parsed before rendering"
    operator.dry_run = "True"
    assert operator._options().dry_run is True
    operator.dry_run = "maybe"
    with pytest.raises(MetronomeConfigError, match="dry_run must be true or false, got 'maybe'"):
        operator._options()


def test_a_conn_id_that_renders_empty_fails_at_execute() -> None:
    operator = SetBillingProviderConfigOperator(task_id="t", sql="SELECT 1", conn_id="{{ params.wh }}")
    operator.conn_id = ""
    with pytest.raises(AirflowFailException, match="sql needs conn_id"):
        operator._options()


@pytest.mark.parametrize(
    ("word", "expected"), [("on", True), ("Y", True), ("off", False), ("n", False), ("0", False)]
)
def test_avalara_commit_transactions_and_the_sync_dry_run_read_the_same_words(
    monkeypatch: pytest.MonkeyPatch, word: str, expected: bool
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_AV_WORDS",
        json.dumps({"conn_type": "avalara", "login": "u", "password": "p4ss-word",
                    "extra": {"commit_transactions": word}}),
    )  # fmt: skip
    assert AvalaraHook(avalara_conn_id="av_words").get_credentials().commit_transactions is expected
    operator = SetBillingProviderConfigOperator(task_id="t", configurations=[], dry_run=word)
    assert operator._options().dry_run is expected


def test_the_avalara_operator_fails_on_ids_and_a_selector_at_once_before_reading_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    operator = UpsertAvalaraCredentialsOperator(
        task_id="av", delivery_method_ids="a,b", billing_provider="stripe"
    )

    def no_credentials(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("credentials read")

    monkeypatch.setattr(AvalaraHook, "get_credentials", no_credentials)
    with pytest.raises(AirflowFailException, match="not both"):
        operator.execute({})  # type: ignore[arg-type]


def test_the_avalara_operator_with_nothing_chosen_does_nothing_or_fails_when_told() -> None:
    assert UpsertAvalaraCredentialsOperator(task_id="av", delivery_method_ids="").execute({}) == []  # type: ignore[arg-type]
    strict = UpsertAvalaraCredentialsOperator(task_id="av", billing_provider=" ", allow_empty=False)
    with pytest.raises(AirflowFailException, match="No delivery method chosen"):
        strict.execute({})  # type: ignore[arg-type]
