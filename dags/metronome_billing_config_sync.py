"""Sync Metronome billing provider configurations from a warehouse table, daily.

Copy this DAG and change its defaults. Which rows a run reads:

* a **scheduled** or **backfill** run: the rows whose ``updated_at`` falls in its data
  interval (the day before it);
* a **manual** run (Trigger button, REST API, ``airflow dags trigger``): every row,
  unless ``window_start`` / ``window_end`` narrow it;
* ``full_refresh``: every row, whatever the run.

It then makes Metronome's billing provider configurations follow those rows and
sets Avalara credentials on the delivery methods whose synced rows ask for
``tax_provider = avalara``.

Re-runs, retries, overlapping backfills and manual runs during a backfill never
create a configuration twice: the sync creates only what is missing, and every
sync locks the customers it is writing (see the README, "Concurrent runs").
Backfill from the UI (Trigger, then Backfill) or with
``airflow backfill create --dag-id metronome_billing_config_sync --from-date 2024-06-01
--to-date 2024-06-07``.
"""

# TaskFlow hands XComArgs to arguments typed as plain values; mypy cannot follow that.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

import logging
from datetime import UTC
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, task

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.0
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment]

from airflow_provider_metronome.operators.avalara import UpsertAvalaraCredentialsOperator
from airflow_provider_metronome.operators.billing_config import SetBillingProviderConfigOperator

log = logging.getLogger(__name__)

# Downstream DAGs (e.g. contract provisioning) can schedule on this asset.
# The "x-" scheme marks a custom URI (Airflow looks for no provider to normalise it).
BILLING_CONFIGS = Asset("x-metronome://billing-provider-configurations", group="metronome")

# Run types that read their data interval; every other run (manual, asset-triggered)
# reads every row unless the window params narrow it.
_INTERVAL_RUN_TYPES = ("scheduled", "backfill")
# updated_at is compared as text in this form (UTC), which every warehouse casts.
_STAMP = "%Y-%m-%d %H:%M:%S"

with DAG(
    dag_id="metronome_billing_config_sync",
    description="Warehouse table → Metronome billing provider configurations (+ Avalara credentials)",
    # Data intervals (not the default CronTriggerTimetable) so each daily run reads
    # exactly the rows updated during the day before it.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    # Scheduled runs one at a time keeps the log readable; it is not what keeps
    # concurrent runs safe (backfills ignore it): the sync's customer locks do that.
    max_active_runs=1,
    # A task that runs past execution_timeout is stopped and retried; a sync of a few
    # million rows takes well under an hour (see the README's Performance section).
    default_args={
        "retries": 2,
        "retry_delay": pendulum.duration(minutes=1),
        "execution_timeout": pendulum.duration(hours=3),
    },
    tags=["metronome", "billing"],
    doc_md=__doc__,
    params={
        "warehouse_conn_id": Param(
            "billing_warehouse",
            type="string",
            title="Warehouse connection",
            description="Airflow connection id of the SQL warehouse that holds the rows.",
        ),
        "source_table": Param(
            "customer_billing_configs",
            type="string",
            pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$",
            title="Source table",
            description="Table or view with one row per billing configuration (the README's row contract).",
        ),
        "source_sql": Param(
            None,
            type=["null", "string"],
            title="Source SQL (optional)",
            description="A full SELECT to read instead of the source table. Leave empty to read the table.",
        ),
        "full_refresh": Param(
            False,
            type="boolean",
            title="Full refresh",
            description="Read every row. Manual runs already read every row unless a window is given; "
            "scheduled and backfill runs read their day only.",
        ),
        "window_start": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Window start (optional)",
            description="Read only rows with updated_at at or after this time (UTC).",
        ),
        "window_end": Param(
            None,
            type=["null", "string"],
            format="date-time",
            title="Window end (optional)",
            description="Read only rows with updated_at before this time (UTC).",
        ),
        "mode": Param(
            "create_missing",
            enum=["create_missing", "replace"],
            title="Mode",
            description="create_missing adds the configurations that are missing and touches nothing else; "
            "replace also archives each customer's other configurations of the same billing provider.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Plan only: log every configuration that would be created or archived; "
            "change nothing.",
        ),
        "partitions": Param(
            1,
            type="integer",
            minimum=1,
            maximum=64,
            title="Partitions",
            description="Split the sync into this many parallel tasks, each owning a share of the customers.",
        ),
        "max_concurrency": Param(
            24,
            type="integer",
            minimum=1,
            maximum=64,
            title="Max concurrency",
            description="Metronome requests in flight per task. Lower it if Metronome answers 429 "
            "(rate limited).",
        ),
        "batch_size": Param(
            100,
            type="integer",
            minimum=1,
            maximum=1000,
            title="Batch size",
            description="Billing configurations created per request.",
        ),
        "max_rejected_rows": Param(
            0,
            type="integer",
            minimum=0,
            title="Rejected rows tolerated",
            description="The sync task fails when more rows than this are rejected (the good rows are "
            "synced either way).",
        ),
        "rejects_path": Param(
            None,
            type=["null", "string"],
            title="Rejects file (optional)",
            description="Write rejected rows as JSON lines here: a local path or an s3://, gs://, ... URL.",
        ),
    },
) as dag:

    @task(doc_md="Decides which rows this run reads and splits the sync into `partitions` mapped tasks.")
    def plan_partitions(**context: Any) -> list[dict[str, Any]]:
        """One entry per partition: the arguments of each mapped sync task."""
        params = context["params"]
        sql = _source_sql(params, context)
        count = int(params["partitions"])
        rejects = params["rejects_path"] or None
        return [
            {
                "sql": sql,
                "partition": i,
                "partitions": count,
                "max_rejected_rows": int(params["max_rejected_rows"]),
                "batch_size": int(params["batch_size"]),
                "max_concurrency": int(params["max_concurrency"]),
                "rejects_path": f"{rejects}.part{i}" if rejects and count > 1 else rejects,
            }
            for i in range(count)
        ]

    sync = SetBillingProviderConfigOperator.partial(
        task_id="sync_billing_configs",
        conn_id="{{ params.warehouse_conn_id }}",
        mode="{{ params.mode }}",
        dry_run="{{ params.dry_run }}",
        doc_md=(
            "Reads the warehouse rows of this run and makes Metronome follow them. "
            "**Logs**: progress, every rejected row with its reason, the final counts. "
            "**XCom** `return_value`: the summary. **Metronome** button: where to look."
        ),
    ).expand_kwargs(plan_partitions())

    # multiple_outputs=False: a dict return would otherwise be stored key by key.
    @task(
        outlets=[BILLING_CONFIGS],
        multiple_outputs=False,
        doc_md="Adds up the partitions' summaries; emits the asset.",
    )
    def summarize(summaries: list[dict[str, Any]]) -> dict[str, Any]:
        from airflow_provider_metronome.models.report import merge_summaries

        total = merge_summaries(summaries)
        log.info(
            "Metronome sync: %d rows read, %d created, %d unchanged, %d archived, %d duplicates, "
            "%d rejected (%d partition(s), %d API calls)",
            total["rows_read"], total["created"], total["unchanged"], total["archived"],
            total["duplicates"], total["rejected"], total["partitions"], total["api_calls"],
        )  # fmt: skip
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


def _source_sql(params: Any, context: Any) -> str:
    """The query of this run: the source, narrowed to the rows this run reads (logged)."""
    source = params["source_sql"]
    base = (
        f"SELECT * FROM ({str(source).strip().rstrip(';')}) source"
        if source and str(source).strip()
        else f"SELECT * FROM {params['source_table']} source"
    )
    run_type = str(getattr(context["dag_run"], "run_type", "") or "")
    start, end = _stamp(params["window_start"], "window_start"), _stamp(params["window_end"], "window_end")
    if params["full_refresh"]:
        reason, start, end = "full_refresh: every row", None, None
    elif start or end:
        reason = f"the window {start or '…'} to {end or '…'}"
    elif run_type.lower().rsplit(".", 1)[-1] in _INTERVAL_RUN_TYPES and context.get("data_interval_end"):
        start = context["data_interval_start"].astimezone(UTC).strftime(_STAMP)
        end = context["data_interval_end"].astimezone(UTC).strftime(_STAMP)
        reason = f"the {run_type} run's data interval {start} to {end}"
    else:
        reason = f"a {run_type or 'manual'} run without a window: every row"
    log.info("This run reads %s (updated_at, UTC)", reason)
    conditions = []
    if start:
        conditions.append(f"source.updated_at >= '{start}'")
    if end:
        conditions.append(f"source.updated_at < '{end}'")
    return base + (" WHERE " + " AND ".join(conditions) if conditions else "")


def _stamp(value: Any, name: str) -> str | None:
    """A window bound as ``YYYY-MM-DD HH:MM:SS`` in UTC (naive values are UTC)."""
    if value is None or not str(value).strip():
        return None
    try:
        moment = pendulum.parse(str(value).strip())
    except Exception as err:  # pendulum's ParserError, ValueError, ...
        raise ValueError(f"{name} must be a date-time such as 2024-06-01T00:00:00Z, got {value!r}") from err
    if isinstance(moment, pendulum.Date) and not isinstance(moment, pendulum.DateTime):
        moment = pendulum.datetime(moment.year, moment.month, moment.day, tz="UTC")  # a bare date
    if not isinstance(moment, pendulum.DateTime):
        raise ValueError(f"{name} must be a date-time such as 2024-06-01T00:00:00Z, got {value!r}")
    return moment.in_timezone("UTC").strftime(_STAMP)
