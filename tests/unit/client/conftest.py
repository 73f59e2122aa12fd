"""Fixtures of the client's unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry waits the request executor asked for (none is slept)."""
    waits: list[float] = []
    monkeypatch.setattr("airflow_provider_metronome.client.executor.time.sleep", waits.append)
    return waits
