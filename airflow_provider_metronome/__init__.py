"""Apache Airflow provider for Metronome."""

from __future__ import annotations

__version__ = "0.1.0"
