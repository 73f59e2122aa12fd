"""The baseline: what a user would write instead of this provider.

A ``PythonOperator`` loop around the official ``metronome-sdk``: per row, find the
customer (by ingest alias when the row has one), read its configurations, create one
configuration. Sequential, the SDK's own retries, no idempotency key. (It reads the
configurations, as a careful user would, but a plain loop does not diff them, so a
re-run creates duplicates.)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


def baseline_sync(base_url: str, token: str, rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Run the naive loop; return counts.

    :param base_url: Metronome base URL.
    :param token: API token.
    :param rows: warehouse rows (row contract).
    """
    from metronome import Metronome

    client = Metronome(bearer_token=token, base_url=base_url)
    created = 0
    for row in rows:
        customer_id = row.get("customer_id")
        if not customer_id:
            page = client.v1.customers.list(ingest_alias=str(row["ingest_alias"]))
            customer_id = page.data[0].id
        client.v1.customers.retrieve_billing_configurations(customer_id=str(customer_id))
        config = row["configuration"]
        item: dict[str, Any] = {
            "customer_id": str(customer_id),
            "billing_provider": row["billing_provider"],
            "configuration": json.loads(config) if isinstance(config, str) else config,
        }
        for key in ("delivery_method", "delivery_method_id", "tax_provider"):
            if row.get(key):
                item[key] = row[key]
        client.v1.customers.set_billing_configurations(data=[item])  # type: ignore[list-item]
        created += 1
    client.close()
    return {"created": created}
