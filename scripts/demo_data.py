"""Realistic demo data: a warehouse table of billing configurations and the matching Metronome seed.

Deterministic (no randomness): the same call always gives the same rows, so the demo
and the tests can assert exact outcomes.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

NAMESPACE = uuid.UUID("3c1b4ad6-5b8e-4d0e-9a6b-6f0e5f3c2a10")
DIRECT = "direct_to_billing_provider"

STRIPE_DM = "5a0f0c1e-0d8b-4c4e-9a43-5f3a6c0b1d01"
AWS_DM = "6b1f1d2f-1e9c-4d5f-8b54-6a4b7d1c2e02"
AWS_TACKLE_DM = "6b1f1d2f-1e9c-4d5f-8b54-6a4b7d1c2e03"
AZURE_DM = "7c2a2e3a-2fad-4e6a-9c65-7b5c8e2d3f03"
GCP_DM = "8d3b3f4b-3abe-4f7b-8d76-8c6d9f3e4a04"
NETSUITE_DM = "9e4c4a5c-4bcf-4a8c-9e87-9d7e0a4f5b05"

DELIVERY_METHODS = [
    {"billing_provider": "stripe", "delivery_method": DIRECT, "delivery_method_id": STRIPE_DM,
     "delivery_method_configuration": {"stripe_account_id": "acct_1P6FywIkTQSg6Mm3", "leave_invoices_in_draft": False}},
    {"billing_provider": "aws_marketplace", "delivery_method": DIRECT, "delivery_method_id": AWS_DM,
     "delivery_method_configuration": {"aws_region": "us-east-1", "aws_iam_role_arn": "arn:aws:iam::123456789012:role/Metronome"}},
    {"billing_provider": "aws_marketplace", "delivery_method": "tackle", "delivery_method_id": AWS_TACKLE_DM,
     "delivery_method_configuration": {}},
    {"billing_provider": "azure_marketplace", "delivery_method": DIRECT, "delivery_method_id": AZURE_DM,
     "delivery_method_configuration": {"azure_tenant_id": "tenant-demo"}},
    {"billing_provider": "gcp_marketplace", "delivery_method": DIRECT, "delivery_method_id": GCP_DM,
     "delivery_method_configuration": {"gcp_provider_id": "provider-demo"}},
    {"billing_provider": "netsuite", "delivery_method": DIRECT, "delivery_method_id": NETSUITE_DM,
     "delivery_method_configuration": {}},
]  # fmt: skip

_PREFIXES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent",
             "Vandelay", "Pied Piper", "Aperture", "Black Mesa", "Wonka", "Gringotts", "Oscorp", "Massive Dynamic"]  # fmt: skip
_SUFFIXES = ["Inc.", "Labs", "GmbH", "Ltd", "Systems", "Analytics", "Cloud", "Health", "Foods", "Energy"]
_REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"]
WAREHOUSE_COLUMNS = (
    "customer_id", "ingest_alias", "billing_provider", "configuration",
    "delivery_method", "delivery_method_id", "tax_provider", "updated_at",
)  # fmt: skip


# The migration's optional columns (README, "Migrations"): written only when rows have them.
MIGRATION_COLUMNS = ("customer_name", "ingest_aliases", "custom_fields")


def customer_id(i: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"customer-{i}"))


def alias(i: int) -> str:
    return f"acct-{i:05d}"


def _provider(i: int) -> str:
    slot = i % 20
    if slot < 9:
        return "stripe"
    if slot < 13:
        return "aws_marketplace"
    if slot < 15:
        return "azure_marketplace"
    if slot < 17:
        return "gcp_marketplace"
    return "netsuite"


def desired_row(i: int, *, version: int = 0) -> dict[str, Any]:
    """The good row of customer ``i``; ``version`` changes its configuration (a newer desired state)."""
    provider = _provider(i)
    row: dict[str, Any] = {"billing_provider": provider}
    if i % 3 == 0:
        row["ingest_alias"] = alias(i)
    else:
        row["customer_id"] = customer_id(i)
    suffix = f"{i:05d}" + (f"v{version}" if version else "")
    if provider == "stripe":
        method = ["charge_automatically", "send_invoice", "auto_charge_payment_intent"][i % 3]
        row["configuration"] = {"stripe_customer_id": f"cus_{suffix}", "stripe_collection_method": method}
        if method == "auto_charge_payment_intent" and i % 2 == 0:
            row["tax_provider"] = "avalara"
        row["delivery_method"] = DIRECT
    elif provider == "aws_marketplace":
        row["configuration"] = {"aws_customer_id": f"AWS{suffix}", "aws_product_code": "metered-api",
                                "aws_region": _REGIONS[i % len(_REGIONS)]}  # fmt: skip
        if i % 2:
            row["delivery_method_id"] = AWS_TACKLE_DM
        else:
            row["delivery_method"] = DIRECT
    elif provider == "azure_marketplace":
        row["configuration"] = {"azure_subscription_id": str(uuid.uuid5(NAMESPACE, f"azure-{suffix}"))}
        row["delivery_method_id"] = AZURE_DM
    elif provider == "gcp_marketplace":
        row["configuration"] = {"gcp_entitlement_id": f"ent-{suffix}", "gcp_service_name": "api.example.goog"}
        row["delivery_method"] = DIRECT
    else:
        row["configuration"] = {"netsuite_customer_id": str(10_000 + i) + (f"-{version}" if version else "")}
        row["delivery_method"] = DIRECT
    return row


def new_alias(k: int) -> str:
    return f"new-{k:03d}"


def new_customer_rows(k: int) -> list[dict[str, Any]]:
    """The rows of a customer only the warehouse knows, which a migration creates.

    Keyed by ``ingest_alias`` with a name, a second alias and custom fields; every
    other one is billed through two providers (two rows, one customer).
    """
    alias_k = new_alias(k)
    customer = {
        "ingest_alias": alias_k,
        "customer_name": f"{_PREFIXES[k % len(_PREFIXES)]} Newco #{k}",
        "ingest_aliases": [alias_k, f"{alias_k}-eu"],
        "custom_fields": {"crm_id": f"CRM-{k:05d}", "segment": "enterprise" if k % 2 else "startup"},
    }
    rows = [
        {**customer, "billing_provider": "stripe", "delivery_method": DIRECT,
         "configuration": {"stripe_customer_id": f"cus_new{k:03d}", "stripe_collection_method": "send_invoice"}},
    ]  # fmt: skip
    if k % 2 == 0:
        rows.append(
            {**customer, "billing_provider": "netsuite", "delivery_method": DIRECT,
             "configuration": {"netsuite_customer_id": f"NEW-{k:03d}"}}
        )  # fmt: skip
    return rows


def bad_rows(n: int) -> list[dict[str, Any]]:
    """A handful of rows a person must fix, each for a different reason (two conflict)."""
    conflict = {"customer_id": customer_id(1), "billing_provider": "netsuite", "delivery_method": DIRECT}
    return [
        {"customer_id": "7d1c-not-a-uuid", "billing_provider": "stripe", "delivery_method": DIRECT,
         "configuration": {"stripe_customer_id": "cus_bad"}},
        {"ingest_alias": alias(2), "billing_provider": "paypal", "delivery_method": DIRECT,
         "configuration": {"paypal_id": "x"}},
        {"ingest_alias": alias(4), "billing_provider": "stripe", "delivery_method": DIRECT,
         "configuration": {"stripe_collection_method": "charge_automatically"}},
        {"ingest_alias": alias(5), "billing_provider": "gcp_marketplace", "delivery_method": DIRECT,
         "configuration": '{"gcp_entitlement_id": "ent-5", '},
        {"ingest_alias": alias(n + 500), "billing_provider": "stripe", "delivery_method": DIRECT,
         "configuration": {"stripe_customer_id": "cus_ghost"}},
        {**conflict, "configuration": {"netsuite_customer_id": "NS-A"}},
        {**conflict, "configuration": {"netsuite_customer_id": "NS-B"}},
    ]  # fmt: skip


@dataclass
class DemoData:
    """Warehouse rows and the emulator seed that matches them.

    :param rows: warehouse rows (``configuration`` as JSON text, as a warehouse holds it).
    :param seed: the emulator seed (customers and delivery methods).
    :param good: how many rows are good and distinct.
    """

    rows: list[dict[str, Any]]
    seed: dict[str, Any]
    good: int


def build(n: int = 300, *, with_bad_rows: bool = True, start: datetime | None = None) -> DemoData:
    """Make ``n`` customers, one good row each, plus one duplicate and :func:`bad_rows`.

    ``updated_at`` spreads the rows evenly over the day before ``start``
    (default 2024-06-02 00:00 UTC), so a daily run of 2024-06-01 reads them all.
    """
    start = start or datetime(2024, 6, 2, tzinfo=UTC)
    rows = [desired_row(i) for i in range(n)]
    if with_bad_rows:
        rows.append(dict(rows[0]))  # an identical duplicate
        rows.extend(bad_rows(n))
    step = timedelta(days=1) / max(len(rows), 1)
    warehouse = []
    for k, row in enumerate(rows):
        stamp = start - timedelta(days=1) + step * k
        warehouse.append(to_warehouse(row, stamp))
    seed = {
        "customers": [
            {"id": customer_id(i), "name": f"{_PREFIXES[i % len(_PREFIXES)]} {_SUFFIXES[i % len(_SUFFIXES)]} #{i}",
             "ingest_aliases": [alias(i)]}
            for i in range(n)
        ],
        "delivery_methods": DELIVERY_METHODS,
    }  # fmt: skip
    return DemoData(rows=warehouse, seed=seed, good=n)


def to_warehouse(row: dict[str, Any], updated_at: datetime) -> dict[str, Any]:
    """A row as a warehouse stores it: every column present, configuration as JSON text."""
    out = {column: row.get(column) for column in WAREHOUSE_COLUMNS}
    config = row.get("configuration")
    out["configuration"] = config if isinstance(config, str) or config is None else json.dumps(config)
    out["updated_at"] = updated_at.strftime("%Y-%m-%d %H:%M:%S")
    for column in MIGRATION_COLUMNS:
        if column in row:
            value = row[column]
            out[column] = value if isinstance(value, str) or value is None else json.dumps(value)
    return out


def write_sqlite(path: str, rows: list[dict[str, Any]], table: str = "customer_billing_configs") -> None:
    """Create (or replace) the warehouse table in a SQLite file."""
    columns = WAREHOUSE_COLUMNS + tuple(c for c in MIGRATION_COLUMNS if any(c in r for r in rows))
    db = sqlite3.connect(path)
    with db:
        db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute(f"CREATE TABLE {table} ({', '.join(f'{c} TEXT' for c in columns)})")
        db.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            [tuple(r.get(c) for c in columns) for r in rows],
        )
    db.close()
