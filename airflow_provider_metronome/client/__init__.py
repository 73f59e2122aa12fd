"""Airflow-free Metronome client: typed operations, retry policy, idempotency keys."""

from __future__ import annotations

from airflow_provider_metronome.client.api import ClientSettings, MetronomeApi, MetronomeClient
from airflow_provider_metronome.client.retry import RetryPolicy

__all__ = ["ClientSettings", "MetronomeApi", "MetronomeClient", "RetryPolicy"]
