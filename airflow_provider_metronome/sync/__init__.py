"""The reconcile engine: rows in → validate → resolve → diff against Metronome → write → report.

No Airflow imports: it runs with any :class:`~airflow_provider_metronome.client.api.MetronomeApi`
(the Airflow hook, or the standalone client).
"""

from __future__ import annotations

from airflow_provider_metronome.sync.engine import BillingConfigSync, SyncOptions

__all__ = ["BillingConfigSync", "SyncOptions"]
