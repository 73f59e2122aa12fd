"""Seed data for the emulator used by the tests."""

from __future__ import annotations

from typing import Any

STRIPE_DM = "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d01"
STRIPE_DM_2 = "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d02"
AWS_DM = "6b1f1d2f-1e9c-4d5f-8b54-6a4b7d1c2e02"
AWS_SQS_DM = "6b1f1d2f-1e9c-4d5f-8b54-6a4b7d1c2e03"
AZURE_DM = "7c2a2e3a-2fad-4e6a-9c65-7b5c8e2d3f03"
GCP_DM = "8d3b3f4b-3abe-4f7b-8d76-8c6d9f3e4a04"
NETSUITE_DM = "9e4c4a5c-4bcf-4a8c-9e87-9d7e0a4f5b05"

ACME = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a01"
GLOBEX = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a02"
INITECH = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a03"
UMBRELLA = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a04"
ARCHIVED = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a99"


# Every fault of the emulator switched off (POST /_emulator/faults).
NO_FAULTS: dict[str, float] = {
    "latency_ms": 0,
    "jitter_ms": 0,
    "p_429": 0,
    "p_500": 0,
    "p_503": 0,
    "p_reset": 0,
    "p_commit_500": 0,
    "rate_limit": 0,
    "rate_burst": 0,
}


def delivery_methods(*, two_stripe_accounts: bool = False) -> list[dict[str, Any]]:
    dms = [
        {"billing_provider": "stripe", "delivery_method": "direct_to_billing_provider",
         "delivery_method_id": STRIPE_DM, "delivery_method_configuration": {"stripe_account_id": "acct_1"}},
        {"billing_provider": "aws_marketplace", "delivery_method": "direct_to_billing_provider",
         "delivery_method_id": AWS_DM, "delivery_method_configuration": {"aws_region": "us-east-1"}},
        {"billing_provider": "aws_marketplace", "delivery_method": "aws_sqs",
         "delivery_method_id": AWS_SQS_DM, "delivery_method_configuration": {}},
        {"billing_provider": "azure_marketplace", "delivery_method": "direct_to_billing_provider",
         "delivery_method_id": AZURE_DM, "delivery_method_configuration": {}},
        {"billing_provider": "gcp_marketplace", "delivery_method": "direct_to_billing_provider",
         "delivery_method_id": GCP_DM, "delivery_method_configuration": {}},
        {"billing_provider": "netsuite", "delivery_method": "direct_to_billing_provider",
         "delivery_method_id": NETSUITE_DM, "delivery_method_configuration": {}},
    ]  # fmt: skip
    if two_stripe_accounts:
        dms.append(
            {"billing_provider": "stripe", "delivery_method": "direct_to_billing_provider",
             "delivery_method_id": STRIPE_DM_2,
             "delivery_method_configuration": {"stripe_account_id": "acct_2"}}
        )  # fmt: skip
    return dms


def small_seed(**kwargs: Any) -> dict[str, Any]:
    """Four active customers (with ingest aliases), one archived, six delivery methods."""
    return {
        "customers": [
            {"id": ACME, "name": "Acme", "ingest_aliases": ["acme"]},
            {"id": GLOBEX, "name": "Globex", "ingest_aliases": ["globex"]},
            {"id": INITECH, "name": "Initech", "ingest_aliases": ["initech"]},
            {"id": UMBRELLA, "name": "Umbrella", "ingest_aliases": ["umbrella"]},
            {"id": ARCHIVED, "name": "Gone", "ingest_aliases": ["gone"], "archived": True},
        ],
        "delivery_methods": delivery_methods(**kwargs),
    }


def many_customers(count: int, *, prefix: str = "cust") -> dict[str, Any]:
    """``count`` customers with deterministic ids and aliases ``{prefix}-{i}``."""
    return {
        "customers": [
            {"id": customer_uuid(i), "name": f"Customer {i}", "ingest_aliases": [f"{prefix}-{i}"]}
            for i in range(count)
        ],
        "delivery_methods": delivery_methods(),
    }


def customer_uuid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"
