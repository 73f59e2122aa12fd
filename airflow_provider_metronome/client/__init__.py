"""Airflow-free Metronome client: typed operations, retry policy, idempotency keys."""

from __future__ import annotations

from airflow_provider_metronome.client.api import MetronomeApi
from airflow_provider_metronome.client.client import MetronomeClient
from airflow_provider_metronome.client.retry import RetryPolicy
from airflow_provider_metronome.client.settings import ClientSettings

__all__ = ["ClientSettings", "MetronomeApi", "MetronomeClient", "RetryPolicy"]
