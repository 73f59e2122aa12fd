"""What the customer locks cost on the happy path: the same sync with and without them.

Each variant runs a first sync (every row created) and a re-sync (nothing to do) of the
same rows against a fresh emulator, alternately, ``--repeats`` times; the median time of
each phase is printed, with the API calls (the locks make none).

    uv run python -m bench.lock_cost --rows 3000 --latency-ms 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Any

from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.emulator.testing import running_emulator
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from airflow_provider_metronome.sync.locks import CustomerLocks, FileCustomerLocks, NoCustomerLocks
from scripts import demo_data


def _locks(kind: str, folder: str) -> CustomerLocks:
    return FileCustomerLocks(folder) if kind == "file locks" else NoCustomerLocks()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = demo_data.build(args.rows, with_bad_rows=False)
    times: dict[tuple[str, str], list[float]] = {}
    calls: dict[tuple[str, str], int] = {}
    with (
        tempfile.TemporaryDirectory() as folder,
        running_emulator(seed=data.seed, args=["--latency-ms", str(args.latency_ms)]) as emu,
    ):
        client = MetronomeClient(emu.url, emu.token)
        for _ in range(args.repeats):
            for kind in ("no locks", "file locks"):
                emu.admin("reset", data.seed)
                for phase in ("first sync", "re-sync"):
                    start = time.perf_counter()
                    engine = BillingConfigSync(client, SyncOptions(), locks=_locks(kind, folder))
                    report = engine.run(data.rows)
                    times.setdefault((kind, phase), []).append(time.perf_counter() - start)
                    calls[(kind, phase)] = report.api_calls
    results: list[dict[str, Any]] = []
    for (kind, phase), seconds in sorted(times.items()):
        results.append(
            {
                "locks": kind,
                "phase": phase,
                "rows": args.rows,
                "latency_ms": args.latency_ms,
                "median_seconds": round(statistics.median(seconds), 2),
                "api_calls": calls[(kind, phase)],
            }
        )
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
