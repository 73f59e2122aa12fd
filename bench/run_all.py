"""``make bench``: every performance comparison, side by side, in one run.

1. Full sync of 10,000 new rows at 50 ms latency: the provider (default settings)
   vs the baseline a user would write (``bench/baseline.py``, run on the first
   ``--baseline-rows`` rows; its cost is linear in rows).
2. No-op re-sync of the same rows, both sides.
3. Lower bound: calls * latency / concurrency, against the provider's time.
4. Peak RSS streaming 100,000 and 1,000,000 rows from SQLite (separate processes).
5. Parse cost of each example DAG file against an empty one.
6. The emulator limited to 100 requests/s: sustained rate and share of 429s.

Prints a table and writes ``bench/results/latest.json``.

    uv run python -m bench.run_all
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.emulator.testing import RunningEmulator, running_emulator
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from bench.baseline import baseline_sync
from scripts import demo_data

RESULTS = Path(__file__).resolve().parent / "results"


def _calls(emu: RunningEmulator) -> dict[str, int]:
    stats = emu.admin("stats")["by_operation_status"]
    total = sum(stats.values())
    throttled = sum(n for k, n in stats.items() if k.endswith(" 429"))
    return {"requests": total, "throttled": throttled}


def _active(emu: RunningEmulator) -> int:
    return sum(1 for c in emu.admin("state")["billing_provider_configurations"] if not c["archived_at"])


def sync_benchmarks(rows_n: int, baseline_n: int, latency_ms: float) -> dict[str, Any]:
    data = demo_data.build(rows_n, with_bad_rows=False)
    rows = data.rows
    options = SyncOptions()
    out: dict[str, Any] = {"rows": rows_n, "baseline_rows": baseline_n, "latency_ms": latency_ms}
    with running_emulator(seed=data.seed, args=["--latency-ms", str(latency_ms)]) as emu:
        client = MetronomeClient(emu.url, emu.token)
        for phase in ("full", "noop"):
            emu.admin("requests", method="DELETE")
            start = time.perf_counter()
            report = BillingConfigSync(client, SyncOptions()).run(rows)
            seconds = time.perf_counter() - start
            out[f"project_{phase}"] = {
                "seconds": round(seconds, 1),
                "rows_per_second": round(rows_n / seconds, 1),
                "api_calls": _calls(emu)["requests"],
                "created": report.created,
            }
        client.close()
        project_calls = out["project_full"]["api_calls"]
        lower = project_calls * latency_ms / 1000 / options.max_concurrency
        out["lower_bound"] = {
            "calls": project_calls,
            "concurrency": options.max_concurrency,
            "seconds": round(lower, 1),
            "project_over_lower_bound": round(out["project_full"]["seconds"] / lower, 2),
        }

        emu.admin("reset", data.seed)
        subset = rows[:baseline_n]
        for phase in ("full", "noop"):
            emu.admin("requests", method="DELETE")
            start = time.perf_counter()
            baseline_sync(emu.url, emu.token, subset)
            seconds = time.perf_counter() - start
            out[f"baseline_{phase}"] = {
                "seconds": round(seconds, 1),
                "rows_per_second": round(baseline_n / seconds, 1),
                "api_calls": _calls(emu)["requests"],
                "active_configurations_after": _active(emu),
            }
    out["speedup_full"] = round(
        out["project_full"]["rows_per_second"] / out["baseline_full"]["rows_per_second"], 1
    )
    out["speedup_noop"] = round(
        out["project_noop"]["rows_per_second"] / out["baseline_noop"]["rows_per_second"], 1
    )
    return out


def rate_limit_benchmark(rows_n: int, limit: float) -> dict[str, Any]:
    data = demo_data.build(rows_n, with_bad_rows=False)
    with running_emulator(seed=data.seed, args=["--rate-limit", str(limit)]) as emu:
        client = MetronomeClient(emu.url, emu.token)
        start = time.perf_counter()
        report = BillingConfigSync(client, SyncOptions()).run(data.rows)
        seconds = time.perf_counter() - start
        calls = _calls(emu)
        client.close()
    answered = calls["requests"] - calls["throttled"]
    return {
        "limit_per_second": limit,
        "rows": rows_n,
        "created": report.created,
        "seconds": round(seconds, 1),
        "requests": calls["requests"],
        "answered_429": calls["throttled"],
        "sustained_rate": round(answered / seconds, 1),
        "share_of_limit": round(answered / seconds / limit, 3),
        "share_429": round(calls["throttled"] / calls["requests"], 4),
    }


def _module(name: str, *args: str) -> dict[str, Any]:
    return _module_lines(name, *args)[-1]


def _module_lines(name: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", name, *args], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.strip().splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--baseline-rows", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--memory-rows", type=int, nargs=2, default=[100_000, 1_000_000])
    parser.add_argument("--rate-rows", type=int, default=2_000)
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, Any] = {"sync": sync_benchmarks(args.rows, args.baseline_rows, args.latency_ms)}
    results["memory"] = [_module("bench.memory_run", "--rows", str(n)) for n in args.memory_rows]
    results["memory_ratio"] = round(
        results["memory"][1]["peak_rss_mb"] / results["memory"][0]["peak_rss_mb"], 2
    )
    results["parse"] = _module("bench.parse_cost", "--repeats", "15")
    results["rate_limit"] = rate_limit_benchmark(args.rate_rows, 100.0)
    results["ledger"] = _module_lines("bench.ledger_calls", "--rows", str(args.rows))
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    _print(results)


def _print(r: dict[str, Any]) -> None:
    s = r["sync"]
    pf, pn, lb = s["project_full"], s["project_noop"], s["lower_bound"]
    full = f"{pf['rows_per_second']} rows/s, {pf['api_calls']} calls, {pf['seconds']} s"
    bf, bn = s["baseline_full"], s["baseline_noop"]
    m0, m1 = r["memory"]
    p, rl = r["parse"], r["rate_limit"]
    n = s["baseline_rows"]
    rows = [
        ("1. full sync, provider", full),
        ("1. full sync, baseline", f"{bf['rows_per_second']} rows/s, {bf['api_calls']} calls for {n} rows"),
        ("1. speed-up", f"{s['speedup_full']}x"),
        ("2. no-op, provider", f"{pn['seconds']} s, {pn['api_calls']} calls, {pn['created']} created"),
        ("2. no-op, baseline", f"{bn['seconds']} s, {bn['api_calls']} calls, "
                               f"{bn['active_configurations_after']} configurations for {n} rows"),
        ("3. lower bound", f"{lb['seconds']} s ({lb['calls']} calls, {lb['concurrency']} in flight), "
                           f"provider at {lb['project_over_lower_bound']}x"),
        ("4. peak RSS", f"{m0['peak_rss_mb']} MB ({m0['rows']:,} rows), {m1['peak_rss_mb']} MB "
                        f"({m1['rows']:,} rows): {r['memory_ratio']}x"),
        ("5. parse cost", f"empty DAG {p['empty_dag_ms']} ms; "
                          f"sync DAG +{p['metronome_billing_config_sync_added_ms']} ms; "
                          f"avalara DAG +{p['metronome_avalara_credentials_added_ms']} ms"),
        ("6. rate limit 100/s", f"{rl['sustained_rate']} req/s ({rl['share_of_limit']:.0%} of the limit), "
                                f"{rl['share_429']:.1%} answered 429"),
    ]  # fmt: skip
    for run in r["ledger"]:
        calls = f"{run['api_calls']} calls for {run['rows_read']:,} rows read "
        share = f"({run['calls_per_row']:.2%} of {run['rows']:,} rows)"
        rows.append((f"7. ledger: {run['run']}", calls + share))
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{width}}  {b}")
    print(f"(total {r['total_seconds']} s; JSON in bench/results/latest.json)")


if __name__ == "__main__":
    main()
