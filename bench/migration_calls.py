"""API calls of a migration: customers that exist only in the warehouse, created by the sync.

    uv run python -m bench.migration_calls --customers 5000 --existing 1000

Every customer has a Stripe row (every fourth one a NetSuite row too), a name, a second
ingest alias and a custom field; none exists in Metronome at first, where ``--existing``
other customers already are (an account is rarely empty: its customers are listed
while the run's aliases are resolved). Runs, in order, each
with ``create_missing_customers``:

1. **migration, results table kept**: each customer created with its aliases, fields
   and configurations in one request, then read once for the configuration ids;
2. **the same, no results table** (a fresh account): the create alone;
3. **re-run without a results table**: every customer exists now (what a migration
   costs per customer that is already in Metronome);
4. **re-run with the results table**: the table vouches for every row.

Prints one JSON line per run (``calls_per_customer`` = API calls / customers).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import tempfile
import time
from typing import Any

from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.emulator.testing import running_emulator
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from airflow_provider_metronome.sync.ledger import ResultsTable, Spool
from airflow_provider_metronome.sync.sources import iter_query_rows
from scripts import demo_data

COLUMNS = ("ingest_alias", "customer_name", "ingest_aliases", "custom_fields", "billing_provider",
           "delivery_method", "configuration")  # fmt: skip


def rows(customers: int) -> list[tuple[Any, ...]]:
    """The warehouse rows of ``customers`` customers to migrate."""
    out = []
    for i in range(customers):
        alias = f"mig-{i:05d}"
        common = (
            alias,
            f"Migrated customer {i}",
            json.dumps([f"{alias}-eu"]),
            json.dumps({"tier": str(i % 3)}),
        )
        stripe = {"stripe_customer_id": f"cus_m{i}", "stripe_collection_method": "send_invoice"}
        out.append((*common, "stripe", demo_data.DIRECT, json.dumps(stripe)))
        if i % 4 == 0:
            out.append(
                (*common, "netsuite", demo_data.DIRECT, json.dumps({"netsuite_customer_id": f"ns-{i}"}))
            )
    return out


def _hook(path: str) -> Any:
    from airflow.providers.sqlite.hooks.sqlite import SqliteHook

    os.environ["AIRFLOW_CONN_BENCH_MIGRATION"] = json.dumps({"conn_type": "sqlite", "host": path})
    return SqliteHook(sqlite_conn_id="bench_migration")


def main() -> None:
    logging.disable(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--existing", type=int, default=1000, help="customers already in Metronome")
    args = parser.parse_args()
    existing = demo_data.build(args.existing, with_bad_rows=False).seed["customers"] if args.existing else []
    seed = {"customers": existing, "delivery_methods": demo_data.DELIVERY_METHODS}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "warehouse.db")
        db = sqlite3.connect(path)
        db.execute(f"CREATE TABLE migration ({', '.join(COLUMNS)})")
        db.executemany(
            f"INSERT INTO migration VALUES ({', '.join('?' * len(COLUMNS))})", rows(args.customers)
        )
        db.commit()
        db.close()
        table = ResultsTable(_hook(path), "metronome_sync_results")
        table.ensure()
        with running_emulator(seed=seed, args=["--latency-ms", str(args.latency_ms)]) as emu:
            client = MetronomeClient(emu.url, emu.token)
            runs = [
                ("migration, results table kept", True, False),
                ("migration, no results table", False, True),
                ("re-run, every customer exists, no results table", False, False),
                ("re-run with the results table", True, False),
            ]
            for name, with_table, fresh in runs:
                if fresh:
                    emu.admin("reset", seed)
                emu.admin("requests", method="DELETE")
                source = sqlite3.connect(path)
                spool = Spool(name) if with_table else None
                options = SyncOptions(create_missing_customers=True)
                start = time.perf_counter()
                sync = BillingConfigSync(client, options, ledger=table if with_table else None, spool=spool)
                report = sync.run(iter_query_rows(source, "SELECT * FROM migration"))
                elapsed = time.perf_counter() - start
                if spool is not None:
                    table.append(spool.records())
                    spool.close()
                source.close()
                by_operation: dict[str, int] = {}
                for entry in emu.admin("requests")["data"]:
                    by_operation[entry["operation"]] = by_operation.get(entry["operation"], 0) + 1
                state = emu.admin("state")
                results.append({
                    "benchmark": "migration", "run": name, "customers": args.customers,
                    "existing_customers": args.existing,
                    "rows": report.rows_read, "customers_created": report.customers_created,
                    "created": report.created, "unchanged": report.unchanged, "rejected": report.rejected,
                    "api_calls": report.api_calls,
                    "calls_per_customer": round(report.api_calls / args.customers, 3),
                    "calls_by_operation": by_operation,
                    "customers_in_metronome": len(state["customers"]) - args.existing,
                    "active_configurations": sum(1 for c in state["billing_provider_configurations"]
                                                 if not c["archived_at"]),
                    "seconds": round(elapsed, 2),
                })  # fmt: skip
        table.close()
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
