"""Sync Metronome billing provider configurations from a warehouse table, daily.

Copy this DAG and edit the settings at the top of the file (connections, source,
rejects file). Which rows a run reads:

* a **scheduled** or **backfill** run: the rows whose ``updated_at`` falls in its data
  interval (the day before it);
* a **manual** run (Trigger button, REST API, ``airflow dags trigger``): every row,
  unless ``window_start`` / ``window_end`` narrow it;
* ``full_refresh``: every row, whatever the run.

It then makes Metronome's billing provider configurations follow those rows and
sets Avalara credentials on the delivery methods whose synced rows ask for
``tax_provider = avalara``.

Whoever may trigger this DAG chooses only the params of the Trigger form (which rows,
how fast, dry run, ...). Which connection it reads, which SQL it runs and where it
writes files are the DAG author's settings: a run conf that names one of them, or any
key that is not a param, fails the run before anything is read (README, "Who chooses what").

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
import os
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
from airflow_provider_metronome.run_conf import refuse_foreign_conf

# == DAG-author settings: edit these =========================================================
# What this DAG reads and writes. Whoever may trigger it cannot change these (run conf
# chooses only the params below): a trigger that could name a connection, a query or a
# file path could read any connection of this Airflow or overwrite any file the worker can
# write. Each one may also come from the deployment's environment (the METRONOME_SYNC_*
# variables, set alike on the dag-processor and every worker): whoever sets a worker's
# environment can already read every connection, so is trusted like this file's author.

# The SQL connection (any DbApiHook: PostgreSQL, Snowflake, BigQuery, SQLite, ...) holding the rows.
WAREHOUSE_CONN_ID: str = os.environ.get("METRONOME_SYNC_WAREHOUSE_CONN_ID") or "billing_warehouse"
# The table or view that follows the README's row contract ...
SOURCE_TABLE: str = os.environ.get("METRONOME_SYNC_SOURCE_TABLE") or "customer_billing_configs"
# ... or a full SELECT mapping your own tables onto it (used instead of SOURCE_TABLE when set).
# Plain SQL, not a template: the DAG adds the run's updated_at window around it.
SOURCE_SQL: str | None = os.environ.get("METRONOME_SYNC_SOURCE_SQL") or None
# Where to write rejected rows as JSON lines (a local path or an s3://, gs://, ... URL), or None
# for no file (every rejection is in the task log anyway; XCom keeps a sample). A Jinja
# template rendered per run, e.g. "s3://billing-ops/rejects/{{ ds }}/{{ run_id }}.jsonl": keep
# {{ run_id }} in it so runs side by side never share a file, and never {{ params }} or
# {{ dag_run.conf }}, which the trigger chooses. With partitions > 1 each partition writes
# <path>.part<N>.
REJECTS_PATH: str | None = os.environ.get("METRONOME_SYNC_REJECTS_PATH") or None
# A PostgreSQL connection for customer locks shared by workers on several machines (Celery,
# Kubernetes); None keeps lock files on the worker's machine (README, "Concurrent runs").
LOCK_CONN_ID: str | None = os.environ.get("METRONOME_SYNC_LOCK_CONN_ID") or None
# The results table (README, "The results table"): one row per source row per run, with the
# created configuration ids, and a view <table>_latest. It lives in the warehouse
# (WAREHOUSE_CONN_ID), so that rows it saw rejected are read again by every later run until
# they sync, and rows it saw synced cost no Metronome call. None: no table, no carry-over.
RESULTS_TABLE: str | None = os.environ.get("METRONOME_SYNC_RESULTS_TABLE", "metronome_sync_results") or None
# Scheduled runs on this weekday (0 = Monday ... 6 = Sunday; None: never) verify: they read every
# customer from Metronome instead of trusting the results table, and repair what was archived
# or changed outside the sync. Any run can verify with the `verify` param.
VERIFY_WEEKDAY: int | None = 6
# The Metronome API token and the Avalara credentials.
METRONOME_CONN_ID = "metronome_default"
AVALARA_CONN_ID = "avalara_default"
# ==============================================================================================

log = logging.getLogger(__name__)

# Downstream DAGs (e.g. contract provisioning) can schedule on this asset.
# The "x-" scheme marks a custom URI (Airflow looks for no provider to normalise it).
BILLING_CONFIGS = Asset("x-metronome://billing-provider-configurations", group="metronome")

# Run types that read their data interval; every other run (manual, asset-triggered)
# reads every row unless the window params narrow it.
_INTERVAL_RUN_TYPES = ("scheduled", "backfill")
# updated_at is compared as text in this form (UTC), which every warehouse casts.
_STAMP = "%Y-%m-%d %H:%M:%S"

# What whoever may trigger chooses (the Trigger form; run conf). Each is safe in any hands:
# the window bounds are parsed into timestamps before they reach SQL, the rest are
# validated by type and range (Airflow refuses a run whose conf does not fit them).
_PARAMS: dict[str, Param] = {
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
        description="Plan only: log every configuration that would be created or archived; change nothing.",
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
        48,
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
    "verify": Param(
        False,
        type="boolean",
        title="Verify against Metronome",
        description="Read every customer from Metronome instead of trusting the results table, and "
        "repair configurations archived or changed outside the sync (scheduled runs do it weekly).",
    ),
    "create_missing_customers": Param(
        False,
        type="boolean",
        title="Create missing customers",
        description="A row whose ingest_alias matches no Metronome customer creates one (named by "
        "its customer_name column, with its ingest_aliases and custom_fields) instead of being "
        "rejected. For migrations; see also the metronome_customer_migration DAG.",
    ),
    "max_rejected_rows": Param(
        0,
        type="integer",
        minimum=0,
        title="Rejected rows tolerated",
        description="The sync task fails when more rows than this are rejected (the good rows are "
        "synced either way).",
    ),
}
# Run conf keys that were params once and are DAG-author settings now (above): a run that
# still passes one fails and says where the setting lives, rather than silently ignoring it.
_AUTHOR_SETTINGS = {
    "warehouse_conn_id": "WAREHOUSE_CONN_ID (env METRONOME_SYNC_WAREHOUSE_CONN_ID)",
    "source_table": "SOURCE_TABLE (env METRONOME_SYNC_SOURCE_TABLE)",
    "source_sql": "SOURCE_SQL (env METRONOME_SYNC_SOURCE_SQL)",
    "rejects_path": "REJECTS_PATH (env METRONOME_SYNC_REJECTS_PATH)",
    "lock_conn_id": "LOCK_CONN_ID (env METRONOME_SYNC_LOCK_CONN_ID)",
    "results_table": "RESULTS_TABLE (env METRONOME_SYNC_RESULTS_TABLE)",
    "metronome_conn_id": "METRONOME_CONN_ID",
    "avalara_conn_id": "AVALARA_CONN_ID",
}

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
    params=_PARAMS,
) as dag:

    @task(
        doc_md="Checks the run conf, decides which rows this run reads and splits the sync into "
        "`partitions` mapped tasks."
    )
    def plan_partitions(**context: Any) -> list[dict[str, Any]]:
        """One entry per partition: the arguments of each mapped sync task."""
        refuse_foreign_conf(context["dag_run"], _PARAMS, author_settings=_AUTHOR_SETTINGS)
        params = context["params"]
        sql = _source_sql(params, context)
        count = int(params["partitions"])
        rejects = _rejects_path(context)
        verify = _verify(params, context)
        return [
            {
                "sql": sql,
                "partition": i,
                "partitions": count,
                "max_rejected_rows": int(params["max_rejected_rows"]),
                "batch_size": int(params["batch_size"]),
                "max_concurrency": int(params["max_concurrency"]),
                "rejects_path": f"{rejects}.part{i}" if rejects and count > 1 else rejects,
                "verify": verify,
            }
            for i in range(count)
        ]

    sync = SetBillingProviderConfigOperator.partial(
        task_id="sync_billing_configs",
        conn_id=WAREHOUSE_CONN_ID,
        metronome_conn_id=METRONOME_CONN_ID,
        lock_conn_id=LOCK_CONN_ID,
        results_table=RESULTS_TABLE,
        mode="{{ params.mode }}",
        dry_run="{{ params.dry_run }}",
        create_missing_customers="{{ params.create_missing_customers }}",
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
        if total["settled_by_ledger"] or total["drift"]:
            log.info(
                "Results table: %d unchanged rows needed no Metronome call; %d drifted (repaired)",
                total["settled_by_ledger"], total["drift"],
            )  # fmt: skip
        return total

    @task(doc_md="Delivery methods whose synced rows ask for Avalara (none in a dry run).")
    def avalara_delivery_methods(summary: dict[str, Any]) -> list[str]:
        return [] if summary.get("dry_run") else list(summary["avalara_delivery_method_ids"])

    totals = summarize(sync.output)
    avalara = UpsertAvalaraCredentialsOperator(
        task_id="upsert_avalara_credentials",
        delivery_method_ids=avalara_delivery_methods(totals),
        avalara_conn_id=AVALARA_CONN_ID,
        metronome_conn_id=METRONOME_CONN_ID,
        doc_md=(
            f"Sets the Avalara credentials of the `{AVALARA_CONN_ID}` connection on the delivery methods "
            "found above. Nothing to do (and no connection needed) when no row asks for Avalara."
        ),
    )


def _rejects_path(context: Any) -> str | None:
    """REJECTS_PATH rendered for this run (it may use {{ run_id }}, {{ ds }}, ...)."""
    if not REJECTS_PATH:
        return None
    rendered = str(context["task"].render_template(REJECTS_PATH, context)).strip()
    return rendered or None


def _source_sql(params: Any, context: Any) -> str:
    """The query of this run: the source, narrowed to the rows this run reads (logged)."""
    base = (
        f"SELECT * FROM ({SOURCE_SQL.strip().rstrip(';')}) source"
        if SOURCE_SQL and SOURCE_SQL.strip()
        else f"SELECT * FROM {SOURCE_TABLE} source"
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
    conditions = []
    if start:
        conditions.append(f"source.updated_at >= '{start}'")
    if end:
        conditions.append(f"source.updated_at < '{end}'")
    if not conditions:
        log.info("This run reads %s (updated_at, UTC)", reason)
        return base
    window = " AND ".join(conditions)
    if not RESULTS_TABLE:
        log.info("This run reads %s (updated_at, UTC)", reason)
        return f"{base} WHERE {window}"
    from airflow_provider_metronome.sync.ledger import carry_over_condition

    # Rows an earlier run rejected are read again until they sync, leave the source or change.
    log.info("This run reads %s (updated_at, UTC), and the rows still rejected in %s", reason, RESULTS_TABLE)
    return f"{base} WHERE ({window}) OR {carry_over_condition(RESULTS_TABLE)}"


def _verify(params: Any, context: Any) -> bool:
    """Whether this run reads every customer from Metronome: asked for, or the weekly scheduled one."""
    if params.get("verify"):
        log.info("This run verifies every customer against Metronome (verify param)")
        return True
    run_type = str(getattr(context["dag_run"], "run_type", "") or "").lower().rsplit(".", 1)[-1]
    end = context.get("data_interval_end")
    weekly = VERIFY_WEEKDAY is not None and run_type == "scheduled" and end is not None
    if weekly and end.astimezone(UTC).weekday() == VERIFY_WEEKDAY:
        log.info("This run verifies every customer against Metronome (the weekly scheduled check)")
        return True
    return False


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
