"""Peak RSS of one sync streaming N rows from SQLite (run in its own process).

    uv run python -m bench.memory_run --rows 1000000

The rows cover ``--customers`` customers (copies of each customer's row beyond the
first are duplicates), so the API work stays the same whatever N is and the figure
shows what the row stream itself costs. With ``--conflicting`` every copy asks for a
different configuration instead: N conflicting rows, each rejected naming a few of the
others (time and memory must stay linear and flat).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.emulator.testing import running_emulator
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from airflow_provider_metronome.sync.sources import iter_query_rows
from scripts import demo_data

if TYPE_CHECKING:
    from collections.abc import Iterator


def _rows(n: int, customers: int, *, conflicting: bool) -> Iterator[tuple[object, ...]]:
    stamp = datetime(2024, 6, 1, tzinfo=UTC)
    base = [demo_data.to_warehouse(demo_data.desired_row(i), stamp) for i in range(customers)]
    for k in range(n):
        row = dict(base[k % customers])
        if conflicting and k >= customers:
            config = json.loads(str(row["configuration"]))
            config["conflict_copy"] = str(k)  # same identity, another configuration
            row["configuration"] = json.dumps(config)
        yield tuple(row[c] for c in demo_data.WAREHOUSE_COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--conflicting", action="store_true", help="copies conflict instead of repeating")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "warehouse.db")
        demo_data.write_sqlite(path, [])
        db = sqlite3.connect(path)
        with db:
            marks = ", ".join("?" * len(demo_data.WAREHOUSE_COLUMNS))
            generated = _rows(args.rows, args.customers, conflicting=args.conflicting)
            db.executemany(f"INSERT INTO customer_billing_configs VALUES ({marks})", generated)
        db.close()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        seed = demo_data.build(args.customers, with_bad_rows=False).seed
        with running_emulator(seed=seed) as emu:
            client = MetronomeClient(emu.url, emu.token)
            conn = sqlite3.connect(path)
            start = time.perf_counter()
            rows = iter_query_rows(conn, "SELECT * FROM customer_billing_configs", fetch_size=2000)
            rejects = 0

            def count(_rejection: object) -> None:
                nonlocal rejects
                rejects += 1

            sync = BillingConfigSync(client, SyncOptions(chunk_size=2000), on_reject=count)
            report = sync.run(rows)
            elapsed = time.perf_counter() - start
            conn.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "benchmark": "memory",
                "rows": args.rows,
                "customers": args.customers,
                "created": report.created,
                "duplicates": report.duplicates,
                "conflicting": args.conflicting,
                "rejected": report.rejected,
                "rejects_written": rejects,
                "seconds": round(elapsed, 1),
                "peak_rss_mb": round(peak_kb / 1024, 1),
                "rss_before_sync_mb": round(before / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
