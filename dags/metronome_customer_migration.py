"""Migrate customers onto Metronome: create the ones it lacks, then their billing configurations.

Trigger it by hand. It reads every row of the warehouse table (the sync's row contract
plus the migration columns ``customer_name``, ``ingest_aliases`` and ``custom_fields``:
README, "Migrations") and:

1. **plan_migration**: a dry run of the sync with customer creation. Its log lists each
   customer it would create, each ingest alias it would add to an existing customer,
   each configuration and each rejected row with its reason. It changes nothing.
2. **approve_migration** (Airflow 3.1+): waits for a person to read that plan (counts,
   the first customers to create, the first rejections) under the task's *Required
   Actions* and choose Approve or Reject. Reject ends the run with nothing written.
   Skipped when the ``require_approval`` param is off; older Airflow has no such step.
3. **migrate**: the same rows for real. A row whose ``ingest_alias`` matches no
   Metronome customer creates it (``POST /v1/customers``: its name, every alias, its
   custom fields and its configurations in one request); rows of customers that exist
   get their missing configurations, and their missing aliases added (none removed).
4. **upsert_avalara_credentials**: Avalara credentials on the delivery methods whose
   rows ask for Avalara.

Re-running it is safe, also after a failure or a kill: every customer is created once
(a deterministic Idempotency-Key per customer, and an alias already in use means the
customer exists), every configuration once. The daily sync DAG then keeps the
configurations in step; both record every row in the same results table.
"""

# TaskFlow hands XComArgs to arguments typed as plain values; mypy cannot follow that.
# mypy: disable-error-code="arg-type"
from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, chain, task

from airflow_provider_metronome.operators.avalara import UpsertAvalaraCredentialsOperator
from airflow_provider_metronome.operators.billing_config import SetBillingProviderConfigOperator
from airflow_provider_metronome.run_conf import refuse_foreign_conf

try:  # human-in-the-loop operators: Airflow 3.1+ with a recent standard provider
    from airflow.providers.standard.operators.hitl import ApprovalOperator
except Exception:  # ImportError, or the provider's own "needs Airflow 3.1+" exception
    ApprovalOperator = None  # type: ignore[assignment,misc]

# == DAG-author settings: edit these =========================================================
# What this DAG reads and writes; never params (README, "Who chooses what"). Each may come
# from the deployment's environment (METRONOME_MIGRATION_*), set alike on every worker.

# The SQL connection (any DbApiHook) holding the rows.
WAREHOUSE_CONN_ID: str = os.environ.get("METRONOME_MIGRATION_WAREHOUSE_CONN_ID") or "billing_warehouse"
# The table or view following the row contract, with the migration columns ...
SOURCE_TABLE: str = os.environ.get("METRONOME_MIGRATION_SOURCE_TABLE") or "customer_billing_configs"
# ... or a full SELECT mapping your own tables onto it (used instead of SOURCE_TABLE when set).
SOURCE_SQL: str | None = os.environ.get("METRONOME_MIGRATION_SOURCE_SQL") or None
# The results table (README, "The results table"); the same one as the sync DAG's, so the
# daily sync trusts what the migration created. None: no table.
RESULTS_TABLE: str | None = (
    os.environ.get("METRONOME_MIGRATION_RESULTS_TABLE", "metronome_sync_results") or None
)
# Customer locks shared across machines (README, "Concurrent runs"); None: lock files.
LOCK_CONN_ID: str | None = os.environ.get("METRONOME_MIGRATION_LOCK_CONN_ID") or None
METRONOME_CONN_ID = "metronome_default"
AVALARA_CONN_ID = "avalara_default"
# How long the approval step waits for a person; past it the step fails, nothing written.
# A datetime.timedelta: the task hands it to its supervisor, which cannot encode pendulum's.
APPROVAL_TIMEOUT = timedelta(days=3)
# ==============================================================================================

log = logging.getLogger(__name__)

_PARAMS: dict[str, Param] = {
    "require_approval": Param(
        True,
        type="boolean",
        title="Require approval",
        description="Wait for a person to approve the dry run's plan (customers to create, rows "
        "rejected) before anything is written (Airflow 3.1+). Off: migrate right after the plan.",
    ),
    "max_rejected_rows": Param(
        0,
        type="integer",
        minimum=0,
        title="Rejected rows tolerated",
        description="The migrate task fails when more rows than this are rejected (the good rows "
        "are migrated either way). The plan never fails for rejections: it shows them.",
    ),
    "max_concurrency": Param(
        48,
        type="integer",
        minimum=1,
        maximum=64,
        title="Max concurrency",
        description="Metronome requests in flight. Lower it if Metronome answers 429 (rate limited).",
    ),
    "batch_size": Param(
        100,
        type="integer",
        minimum=1,
        maximum=1000,
        title="Batch size",
        description="Billing configurations of existing customers created per request.",
    ),
}

# The plan shows every rejection instead of failing on the first: a person reads them.
_PLAN_TOLERATES = 2**31 - 1
# Sample lines the approval form shows (the plan's task log has every one).
_SHOWN = 10


def _planning(arguments: dict[str, Any]) -> dict[str, Any]:
    """The plan's arguments: the migration's, tolerating every rejection (a person reads them)."""
    return {**arguments, "max_rejected_rows": _PLAN_TOLERATES}


def _describe(plan: dict[str, Any]) -> tuple[str, str]:
    """The approval's subject and its Markdown body, from the plan's merged summary."""
    subject = (
        f"Create {plan['customers_created']} customer(s) and {plan['created']} billing "
        f"configuration(s) in Metronome? ({plan['rejected']} row(s) rejected)"
    )
    lines = [
        f"The dry run read **{plan['rows_read']} rows** and changed nothing. Approving writes:",
        "",
        f"- **{plan['customers_created']}** new customer(s), each created once with its aliases, "
        "custom fields and configurations",
        f"- **{plan['aliases_added']}** ingest alias(es) added to existing customers (none removed)",
        f"- **{plan['created']}** billing configuration(s) created; {plan['unchanged']} already in place",
        f"- **{plan['rejected']}** row(s) rejected: nothing is written for them",
    ]
    customers = plan.get("customers_created_sample") or []
    if customers:
        lines += ["", f"First customers to create (of {plan['customers_created']}):", ""]
        lines += ["| name | ingest aliases |", "|---|---|"]
        for c in customers:
            more = c.get("alias_count", 0) - len(c.get("ingest_aliases", []))
            aliases = ", ".join(f"`{a}`" for a in c.get("ingest_aliases", [])) + (
                f" (+{more})" if more > 0 else ""
            )
            lines.append(f"| {_cell(c.get('name'))} | {aliases} |")
    rejections = plan.get("rejections_sample") or []
    if rejections:
        lines += ["", f"First rejected rows (of {plan['rejected']}):", ""]
        lines += [
            f"- row {r['row']} ({_cell(r['key'])}) `{r['field']}`: {_cell(r['reason'])}" for r in rejections
        ]
    lines += ["", "The log of `plan_migration` lists every planned change and every rejected row."]
    return subject, "\n".join(lines)


def _cell(text: Any) -> str:
    """Warehouse text shown in Markdown: no table breaks, no markup, one line."""
    return "".join("\\" + ch if ch in "|*_`[]<>\\" else ch for ch in str(text or "").replace("\n", " "))[:200]


with DAG(
    dag_id="metronome_customer_migration",
    description="Warehouse table → Metronome customers (created once) and billing configurations",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    # One migration at a time keeps the plan a person approves the plan that runs.
    max_active_runs=1,
    default_args={
        "retries": 2,
        "retry_delay": pendulum.duration(minutes=1),
        "execution_timeout": pendulum.duration(hours=3),
    },
    tags=["metronome", "billing", "migration"],
    doc_md=__doc__,
    params=_PARAMS,
) as dag:

    @task(doc_md="Checks the run conf; the arguments of the plan and migrate tasks.")
    def prepare(**context: Any) -> list[dict[str, Any]]:
        refuse_foreign_conf(context["dag_run"], _PARAMS)
        params = context["params"]
        source = (
            f"SELECT * FROM ({SOURCE_SQL.strip().rstrip(';')}) source"
            if SOURCE_SQL and SOURCE_SQL.strip()
            else f"SELECT * FROM {SOURCE_TABLE} source"
        )
        return [
            {
                "sql": source,
                "max_concurrency": int(params["max_concurrency"]),
                "batch_size": int(params["batch_size"]),
                "max_rejected_rows": int(params["max_rejected_rows"]),
            }
        ]

    arguments = prepare()
    shared: dict[str, Any] = {
        "conn_id": WAREHOUSE_CONN_ID,
        "metronome_conn_id": METRONOME_CONN_ID,
        "lock_conn_id": LOCK_CONN_ID,
        "results_table": RESULTS_TABLE,
        "create_missing_customers": True,
    }
    plan = SetBillingProviderConfigOperator.partial(
        task_id="plan_migration",
        dry_run=True,
        doc_md="A dry run: logs every customer, alias and configuration the migration would "
        "create and every rejected row. Changes nothing.",
        **shared,
    ).expand_kwargs(arguments.map(_planning))

    @task(multiple_outputs=True, doc_md="Turns the plan into the text a person approves.")
    def describe_plan(summaries: list[dict[str, Any]]) -> dict[str, str]:
        from airflow_provider_metronome.models.report import merge_summaries

        plan = merge_summaries(summaries, sample=_SHOWN)
        subject, body = _describe(plan)
        log.info("%s\n%s", subject, body)
        return {"subject": subject, "body": body}

    described: Any = describe_plan(plan.output)

    migrate = SetBillingProviderConfigOperator.partial(
        task_id="migrate",
        # Runs after an approval, or straight after the plan when the approval is skipped.
        trigger_rule="none_failed_min_one_success",
        doc_md="Creates the missing customers (each once) and configurations, adds missing "
        "aliases. **Logs**: every creation and rejection. **XCom**: the summary.",
        **shared,
    ).expand_kwargs(arguments)

    if ApprovalOperator is not None:
        from airflow.providers.standard.operators.empty import EmptyOperator

        @task.branch(doc_md="Asks for an approval unless the require_approval param is off.")
        def approval_needed(**context: Any) -> str:
            return "approve_migration" if context["params"]["require_approval"] else "approval_not_required"

        approve = ApprovalOperator(
            task_id="approve_migration",
            subject=described["subject"],
            body=described["body"],
            response_timeout=APPROVAL_TIMEOUT,
            # Reject skips everything after it, whatever its trigger rule.
            ignore_downstream_trigger_rules=True,
            doc_md="Read the plan and choose Approve (migrate) or Reject (end, nothing written).",
        )
        # The branch picks one of the two; migrate runs after whichever ran (a branch
        # skips its direct downstream tasks it did not pick, so migrate is not one of them).
        skipped = EmptyOperator(task_id="approval_not_required", doc_md="The require_approval param was off.")
        chain(described, approval_needed(), [approve, skipped], migrate)
    else:
        described >> migrate

    @task(
        multiple_outputs=False,
        doc_md="The migration's summary (customers created, configurations, rejections).",
    )
    def summarize(summaries: list[dict[str, Any]]) -> dict[str, Any]:
        from airflow_provider_metronome.models.report import merge_summaries

        total = merge_summaries(summaries)
        log.info(
            "Metronome migration: %d rows read, %d customers created, %d ingest aliases added, "
            "%d configurations created, %d unchanged, %d rejected (%d API calls)",
            total["rows_read"], total["customers_created"], total["aliases_added"], total["created"],
            total["unchanged"], total["rejected"], total["api_calls"],
        )  # fmt: skip
        return total

    @task(doc_md="Delivery methods whose migrated rows ask for Avalara.")
    def avalara_delivery_methods(summary: dict[str, Any]) -> list[str]:
        return list(summary["avalara_delivery_method_ids"])

    totals = summarize(migrate.output)
    UpsertAvalaraCredentialsOperator(
        task_id="upsert_avalara_credentials",
        delivery_method_ids=avalara_delivery_methods(totals),
        avalara_conn_id=AVALARA_CONN_ID,
        metronome_conn_id=METRONOME_CONN_ID,
        doc_md="Sets the Avalara credentials on the delivery methods found above (none: nothing to do).",
    )
