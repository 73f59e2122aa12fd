"""Settings checks, and the package's one boolean parser."""

from __future__ import annotations

import pytest

from airflow_provider_metronome.client.settings import ClientSettings, parse_bool, valid_timeout
from airflow_provider_metronome.exceptions import MetronomeConfigError


@pytest.mark.parametrize("text", [True, "true", "TRUE", " yes ", "y", "on", "1", 1])
def test_true_words(text: object) -> None:
    assert parse_bool(text, name="flag") is True


@pytest.mark.parametrize("text", [False, "false", "False", "no", "n", "off", "0", 0])
def test_false_words(text: object) -> None:
    assert parse_bool(text, name="flag") is False


@pytest.mark.parametrize("text", [None, "", "  ", "None", "null"])
def test_empty_values_mean_what_the_caller_says(text: object) -> None:
    assert parse_bool(text, name="flag", empty=False) is False
    assert parse_bool(text, name="flag", empty=True) is True
    with pytest.raises(MetronomeConfigError, match="flag must be true or false"):
        parse_bool(text, name="flag")


def test_anything_else_is_an_error_naming_the_field_and_the_source() -> None:
    with pytest.raises(
        MetronomeConfigError, match=r"^Airflow connection 'av': commit must be true or false, got 'maybe'$"
    ):
        parse_bool("maybe", name="commit", source="Airflow connection 'av'", empty=False)


@pytest.mark.parametrize(
    ("timeout", "ok"),
    [
        (1, True),
        (0.5, True),
        (0, False),
        (-1, False),
        (float("nan"), False),
        (float("inf"), False),
        ("5", False),
    ],
)
def test_valid_timeout(timeout: object, ok: bool) -> None:
    assert valid_timeout(timeout) is ok


def test_check_names_the_source_never_the_token() -> None:
    token = "tok_ünïcode_1a2b3c4d5e6f"
    settings = ClientSettings(base_url="https://x.example", token=token, source="Airflow connection 'm'")
    with pytest.raises(MetronomeConfigError, match="API token in Airflow connection 'm'") as info:
        settings.check()
    assert token not in str(info.value)
    with pytest.raises(MetronomeConfigError, match="No API token"):
        ClientSettings(base_url="https://x.example", token=" \n").check()


def test_secret_forms_hold_the_token_as_given_and_as_sent() -> None:
    settings = ClientSettings(base_url="https://x.example", token="tok_abcdefgh\n")
    assert settings.token == "tok_abcdefgh"
    assert set(settings.secret_forms) == {"tok_abcdefgh", "Bearer tok_abcdefgh", "tok_abcdefgh\n"}
    assert ClientSettings(base_url="https://x.example", token="").secret_forms == ("",)
