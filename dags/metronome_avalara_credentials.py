"""Set or rotate Avalara credentials on Metronome delivery methods, on demand.

Trigger it with the delivery method ids to update, or with a billing provider (and
optionally a delivery method kind) to update every matching delivery method. A run
that chooses nothing fails and says so. The
credentials come from the ``avalara_default`` connection: rotate the password there,
then trigger this DAG. Nothing secret is ever passed as a parameter.

Whoever may trigger it chooses which delivery methods get the credentials (and may
override the connection's Avalara environment); the connections it uses are the DAG
author's settings below. A run conf with any key that is not a param fails before
anything is sent (README, "Who chooses what").
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_metronome.operators.avalara import UpsertAvalaraCredentialsOperator
from airflow_provider_metronome.run_conf import refuse_foreign_conf

# == DAG-author settings: edit these =========================================================
# Which credentials this DAG sends, and with which Metronome token. Never params: whoever
# may trigger a run must not point it at another connection of this Airflow.
METRONOME_CONN_ID = "metronome_default"
AVALARA_CONN_ID = "avalara_default"
# ==============================================================================================

# What whoever may trigger chooses: which delivery methods, and the Avalara environment.
_PARAMS: dict[str, Param] = {
    "delivery_method_ids": Param(
        [],
        type="array",
        items={"type": "string"},
        title="Delivery method ids",
        description="Delivery methods to update (ids from listConfiguredBillingProviders). "
        "Or leave empty and choose a billing provider below.",
    ),
    "billing_provider": Param(
        "",
        enum=[
            "",
            "stripe",
            "aws_marketplace",
            "azure_marketplace",
            "gcp_marketplace",
            "netsuite",
            "quickbooks_online",
            "workday",
            "custom",
            "metronome",
        ],
        title="Billing provider",
        description="Or: update every delivery method of this billing provider.",
    ),
    "delivery_method": Param(
        "",
        enum=["", "direct_to_billing_provider", "aws_sqs", "tackle", "aws_sns"],
        title="Delivery method",
        description="Narrow the selection to this kind of delivery method (optional).",
    ),
    "avalara_environment": Param(
        "",
        enum=["", "SANDBOX", "PRODUCTION"],
        title="Avalara environment",
        description="Override the avalara_default connection's environment (optional).",
    ),
}


def _refuse_foreign_conf(context: Any) -> None:
    refuse_foreign_conf(
        context["dag_run"],
        _PARAMS,
        hint="; connections are DAG-author settings (METRONOME_CONN_ID, AVALARA_CONN_ID at the top of "
        "the DAG file)",
        nothing_done="nothing was sent",
    )


with DAG(
    dag_id="metronome_avalara_credentials",
    description="Set or rotate Avalara credentials on Metronome delivery methods",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["metronome", "tax"],
    doc_md=__doc__,
    params=_PARAMS,
) as dag:
    UpsertAvalaraCredentialsOperator(
        task_id="upsert_avalara_credentials",
        delivery_method_ids="{{ params.delivery_method_ids | tojson }}",
        billing_provider="{{ params.billing_provider }}",
        delivery_method="{{ params.delivery_method }}",
        avalara_environment="{{ params.avalara_environment }}",
        avalara_conn_id=AVALARA_CONN_ID,
        metronome_conn_id=METRONOME_CONN_ID,
        allow_empty=False,
        # Runs before execute, so before any request: a conf key that is not a param (say
        # "avalara_conn_id") fails the task instead of being silently ignored.
        pre_execute=_refuse_foreign_conf,
        doc_md="Reads the Avalara connection and sets its credentials on the chosen delivery methods.",
    )
