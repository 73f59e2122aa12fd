"""Set or rotate Avalara credentials on Metronome delivery methods, on demand.

Trigger it with the delivery method ids to update, or with a billing provider (and
optionally a delivery method kind) to update every matching delivery method. A run
that chooses nothing fails and says so. The
credentials come from the ``avalara_default`` connection: rotate the password there,
then trigger this DAG. Nothing secret is ever passed as a parameter.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_metronome.operators.avalara import UpsertAvalaraCredentialsOperator

with DAG(
    dag_id="metronome_avalara_credentials",
    description="Set or rotate Avalara credentials on Metronome delivery methods",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["metronome", "tax"],
    doc_md=__doc__,
    params={
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
    },
) as dag:
    UpsertAvalaraCredentialsOperator(
        task_id="upsert_avalara_credentials",
        delivery_method_ids="{{ params.delivery_method_ids | tojson }}",
        billing_provider="{{ params.billing_provider }}",
        delivery_method="{{ params.delivery_method }}",
        avalara_environment="{{ params.avalara_environment }}",
        avalara_conn_id="avalara_default",
        allow_empty=False,
        doc_md="Reads the Avalara connection and sets its credentials on the chosen delivery methods.",
    )
