"""The public connection helpers both hooks use, and the one boolean reading of them."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from airflow_provider_metronome.exceptions import MetronomeConfigError
from airflow_provider_metronome.hooks.avalara import AvalaraHook
from airflow_provider_metronome.hooks.connections import extra_bool, extra_number, extra_value, get_connection
from airflow_provider_metronome.hooks.metronome import MetronomeHook

PACKAGE = Path(__file__).resolve().parents[3] / "airflow_provider_metronome"


def test_a_missing_connection_is_a_config_error_saying_how_to_define_it() -> None:
    with pytest.raises(MetronomeConfigError) as info:
        get_connection(AvalaraHook(), "no_such_conn", "avalara")
    assert str(info.value) == (
        "Airflow connection 'no_such_conn' is not defined: create a 'avalara' connection with that id "
        "(UI, CLI, or the AIRFLOW_CONN_NO_SUCH_CONN environment variable)"
    )


def test_a_defined_connection_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_HERE", json.dumps({"conn_type": "avalara", "login": "u"}))
    assert get_connection(AvalaraHook(), "here", "avalara").login == "u"


def test_extras_are_read_plain_or_prefixed() -> None:
    assert extra_value({"timeout": 3}, "timeout", "metronome") == 3
    assert extra_value({"extra__metronome__timeout": 4}, "timeout", "metronome") == 4
    assert extra_number({"extra__metronome__timeout": "2.5"}, "timeout", 60.0, "m") == 2.5
    assert extra_number({}, "timeout", 60.0, "m") == 60.0
    assert extra_bool(
        {"extra__avalara__commit_transactions": "yes"}, "commit_transactions", "s", conn_type="avalara"
    )
    assert extra_bool({"commit_transactions": ""}, "commit_transactions", "s", conn_type="avalara") is None


@pytest.mark.parametrize(
    ("value", "message"),
    [("x", "must be a number"), ("inf", "must be a finite number"), (-1, "must be >= 0")],
)
def test_bad_numbers_name_the_connection_and_field(value: object, message: str) -> None:
    with pytest.raises(MetronomeConfigError, match=rf"Connection 'm': extra field 'max_retries' {message}"):
        extra_number({"max_retries": value}, "max_retries", 5, "m")


def test_no_hook_client_or_operator_module_imports_a_private_name_of_another() -> None:
    offenders = []
    paths = [p for part in ("client", "hooks", "operators") for p in (PACKAGE / part).glob("*.py")]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "airflow_provider_metronome"
            ):
                offenders += [
                    f"{path.relative_to(PACKAGE)}: {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert offenders == []


def test_the_hooks_share_one_connection_helper() -> None:
    for module in ("hooks/avalara.py", "hooks/metronome.py"):
        source = (PACKAGE / module).read_text()
        assert "from airflow_provider_metronome.hooks.connections import" in source, module
    assert MetronomeHook.conn_type == "metronome"
