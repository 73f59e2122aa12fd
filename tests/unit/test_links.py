"""Where the task's Metronome button points."""

from __future__ import annotations

import pytest

from airflow_provider_metronome.links import METRONOME_APP_URL, app_url_for, metronome_url


@pytest.mark.parametrize(
    ("base_url", "configured", "expected"),
    [
        ("https://api.metronome.com", None, METRONOME_APP_URL),
        ("https://api.metronome.com/", "", METRONOME_APP_URL),
        ("http://127.0.0.1:8080", None, None),
        ("https://metronome-proxy.internal", None, None),
        ("http://127.0.0.1:8080", "https://app.example.test/", "https://app.example.test"),
        ("https://api.metronome.com", "https://sandbox.example.test", "https://sandbox.example.test"),
    ],
)
def test_app_url_is_decided_by_the_connection(base_url: str, configured: str | None, expected: str) -> None:
    assert app_url_for(base_url, configured) == expected


def test_most_specific_page() -> None:
    assert metronome_url(METRONOME_APP_URL, "c-1") == f"{METRONOME_APP_URL}/customers/c-1"
    assert metronome_url(METRONOME_APP_URL) == f"{METRONOME_APP_URL}/customers"
    assert metronome_url(None, "c-1") == "", "no app, no link"
