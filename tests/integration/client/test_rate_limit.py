"""A sync against a rate-limited Metronome: it paces itself, retries 429s within its budget, logs little.

Metronome answers 429 when a client goes over its rate limit
(https://docs.metronome.com/api-reference/status-codes.md). The emulator here runs with
the limits a real deployment saw fail (``--rate-limit 10 --rate-burst 2``): every sync
try died with ``Metronome API answered 429 ... after 6 attempts`` and ~212 retry log
lines, having waited a sliver of its retry budget.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.emulator.testing import running_emulator
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from airflow_provider_metronome.sync.locks import FileCustomerLocks
from tests import seeds
from tests.conftest import TOKEN

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from airflow_provider_metronome.models.report import Rejection

CUSTOMERS = 100
RATE = 10
BURST = 2
DIRECT = "direct_to_billing_provider"


def _rows() -> list[dict[str, Any]]:
    """300 rows: per customer a Stripe row by ingest alias and two marketplace rows by id."""
    rows: list[dict[str, Any]] = []
    for i in range(CUSTOMERS):
        rows.append(
            {"ingest_alias": f"cust-{i}", "billing_provider": "stripe", "delivery_method": DIRECT,
             "configuration": {"stripe_customer_id": f"cus_{i}"}}
        )  # fmt: skip
        rows.append(
            {"customer_id": seeds.customer_uuid(i), "billing_provider": "aws_marketplace",
             "delivery_method_id": seeds.AWS_DM,
             "configuration": json.dumps({"aws_customer_id": f"aws-{i}", "aws_product_code": "p1",
                                          "aws_region": "us-east-1"})}
        )  # fmt: skip
        rows.append(
            {"customer_id": seeds.customer_uuid(i), "billing_provider": "azure_marketplace",
             "delivery_method": DIRECT, "configuration": {"azure_subscription_id": f"sub-{i}"}}
        )  # fmt: skip
    return rows


def _desired() -> list[tuple[str, str, str]]:
    want = []
    for i in range(CUSTOMERS):
        cid = seeds.customer_uuid(i)
        want += [(cid, "stripe", f"cus_{i}"), (cid, "aws_marketplace", f"aws-{i}"),
                 (cid, "azure_marketplace", f"sub-{i}")]  # fmt: skip
    return sorted(want)


def _identity(config: dict[str, Any]) -> tuple[str, str, str]:
    c = config["configuration"]
    value = c.get("stripe_customer_id") or c.get("aws_customer_id") or c.get("azure_subscription_id")
    return config["customer_id"], config["billing_provider"], value


def test_sync_paces_itself_under_a_rate_limit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="airflow_provider_metronome")
    args = ["--rate-limit", str(RATE), "--rate-burst", str(BURST)]
    with running_emulator(seed=seeds.many_customers(CUSTOMERS), token=TOKEN, args=args) as emu:
        client = MetronomeClient(emu.url, TOKEN, retry=RetryPolicy())  # the hook's defaults
        rejected: list[Rejection] = []
        sync = BillingConfigSync(
            client,
            SyncOptions(),  # 24 requests in flight, as the DAG runs it
            on_reject=rejected.append,
            locks=FileCustomerLocks(str(tmp_path)),
        )
        start = time.monotonic()
        report = sync.run(_rows())
        seconds = time.monotonic() - start
        client.close()

        assert (report.rejected, rejected) == (0, [])
        assert report.created == 3 * CUSTOMERS
        state = emu.admin("state")["billing_provider_configurations"]
        assert sorted(_identity(c) for c in state if not c["archived_at"]) == _desired()
        assert len(state) == 3 * CUSTOMERS, "nothing created twice"

        stats = emu.admin("stats")["by_operation_status"]
        refused = sum(n for key, n in stats.items() if key.endswith(" 429"))
        answered = sum(n for key, n in stats.items() if not key.endswith(" 429"))

    lines = [r.getMessage() for r in caplog.records if r.name.startswith("airflow_provider_metronome.client")]
    summaries = [line for line in lines if line.startswith("Metronome rate limit: ")]
    print(
        f"\nrate-limit sync: {seconds:.1f}s, {answered} requests answered, {refused} answered 429, "
        f"{len(lines)} client log lines ({len(summaries)} rate-limit summaries), "
        f"{len(caplog.records)} log lines in all"
    )
    for line in summaries:
        print(f"  {line}")
    # Paced to the limit: the ~205 answered requests take at least 20 s at 10 requests/s.
    assert seconds < 60
    assert answered / seconds > 0.6 * RATE, "the pace should stay close to the server's limit"
    assert refused > 0, "the limit was reached"
    # One summary line when the 429s start, then one per 15 s (and one when the client
    # closes), never a line per 429.
    assert not [line for line in lines if "HTTP 429" in line]
    assert summaries[0].startswith("Metronome rate limit: 1 request answered 429 in the last ")
    assert sum(int(line.split()[3]) for line in summaries) == refused
    assert len(lines) <= 2 + seconds / 15
    assert len(caplog.records) < 30
