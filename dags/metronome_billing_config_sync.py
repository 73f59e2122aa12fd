"""Sync Metronome billing provider configurations from a warehouse table, daily.

Copy this DAG and change its defaults. Each run reads the rows whose ``updated_at``
falls in its data interval (or every row with ``full_refresh``), makes Metronome's
billing provider configurations follow them, then sets Avalara credentials on the
delivery methods whose synced rows ask for ``tax_provider = avalara``.

Re-runs, retries and overlapping backfills are safe: the sync creates only what is
missing. Backfill with ``airflow backfill create --dag-id metronome_billing_config_sync
--from-date 2024-06-01 --to-date 2024-06-07`` or from the UI.
"""

# TaskFlow hands XComArgs to arguments typed as plain values; mypy cannot follow that.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, task

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.0
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment]

from airflow_provider_metronome.operators.avalara import UpsertAvalaraCredentialsOperator
from airflow_provider_metronome.operators.billing_config import SetBillingProviderConfigOperator

# Downstream DAGs (e.g. contract provisioning) can schedule on this asset.
# The "x-" scheme marks a custom URI (Airflow looks for no provider to normalise it).
BILLING_CONFIGS = Asset("x-metronome://billing-provider-configurations", group="metronome")

# Rows of the run's data interval, or all rows. Manual runs without a logical date
# have no data interval and read everything.
SOURCE_SQL = """
{%- if params.source_sql -%}
SELECT * FROM ({{ params.source_sql }}) source
{%- else -%}
SELECT * FROM {{ params.source_table }} source
{%- endif %}
{%- if not params.full_refresh and data_interval_start and data_interval_end %}
WHERE source.updated_at >= '{{ data_interval_start.strftime("%Y-%m-%d %H:%M:%S") }}'
  AND source.updated_at < '{{ data_interval_end.strftime("%Y-%m-%d %H:%M:%S") }}'
{%- endif %}
"""

with DAG(
    dag_id="metronome_billing_config_sync",
    description="Warehouse table → Metronome billing provider configurations (+ Avalara credentials)",
    # Data intervals (not the default CronTriggerTimetable) so each daily run reads
    # exactly the rows updated during the day before it.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    # One run at a time: overlapping runs would diff against the same state.
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    tags=["metronome", "billing"],
    doc_md=__doc__,
    params={
        "warehouse_conn_id": Param(
            "billing_warehouse", type="string", description="SQL connection of the warehouse"
        ),
        "source_table": Param(
            "customer_billing_configs",
            type="string",
            pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
            description="Table or view following the row contract (see README)",
        ),
        "source_sql": Param("", type="string", description="A full query instead of source_table (optional)"),
        "full_refresh": Param(
            False, type="boolean", description="Read every row, not just the data interval"
        ),
        "partitions": Param(1, type="integer", minimum=1, maximum=64, description="Parallel sync tasks"),
        "mode": Param(
            "create_missing", enum=["create_missing", "replace"], description="replace also archives"
        ),
        "dry_run": Param(False, type="boolean", description="Plan only: log what would change"),
        "max_rejected_rows": Param(0, type="integer", minimum=0, description="Rejected rows tolerated"),
        "batch_size": Param(100, type="integer", minimum=1, maximum=1000, description="Configs per write"),
        "rejects_path": Param("", type="string", description="JSON-lines file for rejected rows (optional)"),
    },
) as dag:

    @task(doc_md="Splits the sync into `partitions` mapped tasks, each reading its share of the rows.")
    def plan_partitions(**context: Any) -> list[dict[str, Any]]:
        """One entry per partition: the arguments of each mapped sync task."""
        params = context["params"]
        count = int(params["partitions"])
        rejects = params["rejects_path"] or None
        return [
            {
                "partition": i,
                "partitions": count,
                "max_rejected_rows": int(params["max_rejected_rows"]),
                "batch_size": int(params["batch_size"]),
                "rejects_path": f"{rejects}.part{i}" if rejects and count > 1 else rejects,
            }
            for i in range(count)
        ]

    sync = SetBillingProviderConfigOperator.partial(
        task_id="sync_billing_configs",
        sql=SOURCE_SQL,
        conn_id="{{ params.warehouse_conn_id }}",
        mode="{{ params.mode }}",
        dry_run="{{ params.dry_run }}",
        doc_md=(
            "Reads the warehouse rows of this run and makes Metronome follow them. "
            "**Logs**: progress, every rejected row with its reason, the final counts. "
            "**XCom** `return_value`: the summary. **Metronome** button: where to look."
        ),
    ).expand_kwargs(plan_partitions())

    @task(outlets=[BILLING_CONFIGS], doc_md="Adds up the partitions' summaries; emits the asset.")
    def summarize(summaries: list[dict[str, Any]]) -> dict[str, Any]:
        total: dict[str, Any] = {"partitions": 0, "by_provider": {}, "avalara_delivery_method_ids": []}
        for s in summaries:
            total["partitions"] += 1
            total["dry_run"] = s["dry_run"]
            for k in ("rows_read", "created", "unchanged", "archived", "duplicates", "rejected", "api_calls"):
                total[k] = total.get(k, 0) + s[k]
            for provider, counts in s["by_provider"].items():
                merged = total["by_provider"].setdefault(provider, {})
                for outcome, n in counts.items():
                    merged[outcome] = merged.get(outcome, 0) + n
            for dm_id in s.get("tax_delivery_methods", {}).get("avalara", []):
                if dm_id not in total["avalara_delivery_method_ids"]:
                    total["avalara_delivery_method_ids"].append(dm_id)
        print(
            f"Metronome sync: {total.get('rows_read', 0)} rows read, {total.get('created', 0)} created, "
            f"{total.get('unchanged', 0)} unchanged, {total.get('archived', 0)} archived, "
            f"{total.get('rejected', 0)} rejected"
        )
        return total

    @task(doc_md="Delivery methods whose synced rows ask for Avalara (none in a dry run).")
    def avalara_delivery_methods(summary: dict[str, Any]) -> list[str]:
        return [] if summary.get("dry_run") else list(summary["avalara_delivery_method_ids"])

    totals = summarize(sync.output)
    avalara = UpsertAvalaraCredentialsOperator(
        task_id="upsert_avalara_credentials",
        delivery_method_ids=avalara_delivery_methods(totals),
        avalara_conn_id="avalara_default",
        doc_md=(
            "Sets the Avalara credentials of the `avalara_default` connection on the delivery methods "
            "found above. Nothing to do (and no connection needed) when no row asks for Avalara."
        ),
    )
