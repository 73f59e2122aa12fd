"""API calls of syncs that keep a results ledger: first sync, full refresh, verify, carry-over.

    uv run python -m bench.ledger_calls --rows 10000

The rows live in a SQLite warehouse next to the results table, as a user's would.
Runs, in order:

1. **first sync** of every row (a ledger is written); 1 % of the rows are rejected
   (their customers do not exist yet);
2. **carry-over**: the customers appear; a run whose window holds no row reads only
   the carried-over rows and syncs them;
3. **full refresh** over the same, now all synced and unchanged, rows: the ledger
   vouches for them;
4. **full refresh with verify**: every customer is read from Metronome again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.emulator.testing import running_emulator
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from airflow_provider_metronome.sync.ledger import ResultsTable, Spool, carry_over_condition
from airflow_provider_metronome.sync.sources import iter_query_rows
from scripts import demo_data

_STAMP = datetime(2024, 6, 1, 12, tzinfo=UTC)


def _hook(path: str) -> Any:
    from airflow.providers.sqlite.hooks.sqlite import SqliteHook

    os.environ["AIRFLOW_CONN_BENCH_WAREHOUSE"] = json.dumps({"conn_type": "sqlite", "host": path})
    return SqliteHook(sqlite_conn_id="bench_warehouse")


def main() -> None:
    logging.disable(logging.WARNING)  # the figures, not the sync's log
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--carried-percent", type=float, default=1.0)
    args = parser.parse_args()
    data = demo_data.build(args.rows, with_bad_rows=False)
    carried = max(1, int(args.rows * args.carried_percent / 100))
    # The customers of the last `carried` rows do not exist at first (their rows are
    # rejected), and are added before the carry-over run.
    late_ids = {str(r.get("customer_id") or "") for r in data.rows[-carried:]}
    late_aliases = {str(r.get("ingest_alias") or "") for r in data.rows[-carried:]}

    def is_late(customer: dict[str, Any]) -> bool:
        return customer["id"] in late_ids or bool(late_aliases & set(customer.get("ingest_aliases", [])))

    seed = dict(data.seed)
    late_customers = [c for c in data.seed["customers"] if is_late(c)]
    seed["customers"] = [c for c in data.seed["customers"] if not is_late(c)]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "warehouse.db")
        demo_data.write_sqlite(path, [demo_data.to_warehouse(r, _STAMP) for r in data.rows])
        table = ResultsTable(_hook(path), "metronome_sync_results")
        table.ensure()
        with running_emulator(seed=seed, args=["--latency-ms", str(args.latency_ms)]) as emu:
            client = MetronomeClient(emu.url, emu.token)
            everything = "SELECT * FROM customer_billing_configs source"
            nothing_new = (
                f"{everything} WHERE source.updated_at >= '2099-01-01' OR {carry_over_condition(table.table)}"
            )
            runs: list[tuple[str, str, dict[str, Any]]] = [
                ("first sync", everything, {}),
                ("carry-over (window empty)", nothing_new, {}),
                ("full refresh, unchanged rows", everything, {}),
                ("full refresh with verify", everything, {"verify": True}),
            ]
            for name, sql, options in runs:
                if name.startswith("carry-over"):
                    emu.admin("seed", {"customers": late_customers})
                emu.admin("requests", method="DELETE")
                db = sqlite3.connect(path)
                spool = Spool(name)
                start = time.perf_counter()
                sync = BillingConfigSync(client, SyncOptions(**options), ledger=table, spool=spool)
                report = sync.run(iter_query_rows(db, sql))
                table.append(spool.records())
                elapsed = time.perf_counter() - start
                spool.close()
                db.close()
                results.append(
                    {
                        "benchmark": "ledger",
                        "run": name,
                        "rows": args.rows,
                        "rows_read": report.rows_read,
                        "created": report.created,
                        "unchanged": report.unchanged,
                        "rejected": report.rejected,
                        "settled_by_ledger": report.settled_by_ledger,
                        "api_calls": report.api_calls,
                        "calls_per_row": round(report.api_calls / args.rows, 4),
                        "seconds": round(elapsed, 2),
                    }
                )
        table.close()
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
