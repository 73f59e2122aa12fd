"""API calls and time of a sync: a first run, then a re-run of the same rows.

uv run python -m bench.sync_calls --rows 1000
"""

from __future__ import annotations

import argparse
import json
import time

from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.emulator.testing import running_emulator
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from scripts import demo_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=SyncOptions().max_concurrency)
    parser.add_argument("--first-only", action="store_true", help="skip the re-run")
    args = parser.parse_args()
    data = demo_data.build(args.rows, with_bad_rows=False)
    rows = [dict(r) for r in data.rows]
    results = []
    with running_emulator(seed=data.seed, args=["--latency-ms", str(args.latency_ms)]) as emu:
        client = MetronomeClient(emu.url, emu.token)
        for name in ("first run",) if args.first_only else ("first run", "re-run"):
            emu.admin("requests", method="DELETE")
            start = time.perf_counter()
            report = BillingConfigSync(client, SyncOptions(max_concurrency=args.concurrency)).run(rows)
            elapsed = time.perf_counter() - start
            calls = emu.admin("stats")["by_operation_status"]
            results.append(
                {
                    "run": name,
                    "rows": args.rows,
                    "concurrency": args.concurrency,
                    "rows_per_second": round(args.rows / elapsed, 1),
                    "created": report.created,
                    "unchanged": report.unchanged,
                    "seconds": round(elapsed, 2),
                    "api_calls": report.api_calls,
                    "calls_by_operation": calls,
                }
            )
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
