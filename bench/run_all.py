"""``make bench``: every performance figure in one run, written to ``bench/results/``.

1. Full sync of 10,000 new rows at the first ``--latency-ms``: the provider (default
   settings) vs the baseline a user would write (``bench/baseline.py``, run on the
   first ``--baseline-rows`` rows; its cost is linear in rows).
2. No-op re-sync of the same rows, both sides.
3. Lower bound: calls * latency / concurrency, against the provider's time.
4. Peak RSS streaming 100,000 and 1,000,000 rows from SQLite (``bench.memory_run``).
5. Parse cost of each example DAG file against an empty one (``bench.parse_cost``).
6. The emulator limited to 100 requests/s: sustained rate and share of 429s.
7. Results-table call counts (``bench.ledger_calls``).
8. Calls of a 1,000-row sync and its re-run (``bench.sync_calls``).
9. Client CPU per API call (``bench.cpu_per_call``).
10. The example DAG end to end against the SDK loop, at each ``--latency-ms``
    (``bench.dag_e2e``).
11. API calls of a 5,000-customer migration (``bench.migration_calls``).
12. Partitions 1, 2, 4 on a real Airflow deployment, at each ``--latency-ms``
    (``bench.partitions_deployment``; needs ``METRONOME_TEST_POSTGRES_URL``, else
    skipped and marked not measured).
13. The emulator's own throughput, GET and validated POST (``bench.emulator_load``).

Writes ``bench/results/latest.json`` (``partitions.json`` and ``dag_e2e/`` come from
their modules), prints a table and rewrites the README's table between
``<!-- bench:start -->`` and ``<!-- bench:end -->``. ``--readme-only`` rewrites that
table from ``latest.json`` without measuring.

    uv run python -m bench.run_all --latency-ms 50 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.emulator.testing import RunningEmulator, running_emulator
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from airflow_provider_metronome.sync.locks import LOCK_DIR_ENV
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


def _module_lines(name: str, *args: str) -> list[dict[str, Any]]:
    """Run ``python -m name args``, echo its output as it comes, return its JSON lines.

    A module that fails gives ``[{"error": ...}]`` (with any JSON lines it printed before).
    """
    print(f"-- python -m {name} {' '.join(args)}", flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", name, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    found: list[dict[str, Any]] = []
    tail: list[str] = []
    for line in proc.stdout:
        if line.startswith("{"):
            found.append(json.loads(line))
        else:
            print(f"   {line}", end="", flush=True)
            tail = [*tail[-19:], line.rstrip()]
    if proc.wait() != 0:
        return [*found, {"error": f"exit {proc.returncode}: " + " | ".join(tail[-5:])}]
    return found or [{"error": "no JSON line printed"}]


def _module(name: str, *args: str) -> dict[str, Any]:
    return _module_lines(name, *args)[-1]


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "cpu_count": str(os.cpu_count())}
    for package in ("apache-airflow", "metronome-sdk"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--baseline-rows", type=int, default=500)
    parser.add_argument(
        "--latency-ms",
        type=float,
        nargs="+",
        default=[50.0, 20.0],
        help="emulator latencies: lines 1-3 at the first, lines 10 and 12 at each",
    )
    parser.add_argument("--memory-rows", type=int, nargs=2, default=[100_000, 1_000_000])
    parser.add_argument("--rate-rows", type=int, default=2_000)
    parser.add_argument("--partitions-repeats", type=int, default=3)
    parser.add_argument("--e2e-repeats", type=int, default=2)
    parser.add_argument(
        "--readme-only",
        action="store_true",
        help="rewrite the README table from latest.json; measure nothing",
    )
    args = parser.parse_args()
    if args.readme_only:
        saved = json.loads((RESULTS / "latest.json").read_text())
        _print(saved)
        update_readme(saved)
        return
    # Customer locks of their own (inherited by every module run below): other syncs on
    # this machine (tests, demos, over the same demo customer ids) must neither hold this
    # run's customers nor wait for them. (The partitions bench isolates its deployment.)
    lock_dir = tempfile.mkdtemp(prefix="apm-bench-locks-")
    os.environ[LOCK_DIR_ENV] = lock_dir
    try:
        _measure_all(args)
    finally:
        shutil.rmtree(lock_dir, ignore_errors=True)


def _measure_all(args: argparse.Namespace) -> None:
    latencies = [str(v) for v in args.latency_ms]
    started = time.perf_counter()
    results: dict[str, Any] = {
        "latencies_ms": args.latency_ms,
        "versions": _versions(),
        "e2e_repeats": args.e2e_repeats,
        "partitions_repeats": args.partitions_repeats,
    }
    results["sync"] = sync_benchmarks(args.rows, args.baseline_rows, args.latency_ms[0])
    results["memory"] = [_module("bench.memory_run", "--rows", str(n)) for n in args.memory_rows]
    if all("peak_rss_mb" in m for m in results["memory"]):
        results["memory_ratio"] = round(
            results["memory"][1]["peak_rss_mb"] / results["memory"][0]["peak_rss_mb"], 2
        )
    results["parse"] = _module("bench.parse_cost", "--repeats", "15")
    results["rate_limit"] = rate_limit_benchmark(args.rate_rows, 100.0)
    results["ledger"] = _module_lines("bench.ledger_calls", "--rows", str(args.rows))
    results["sync_calls"] = _module_lines("bench.sync_calls", "--rows", "1000")
    results["cpu_per_call"] = _module("bench.cpu_per_call", "--rows", "3000", "--repeats", "3")
    results["dag_e2e"] = [
        _module("bench.dag_e2e", "--latency-ms", v, "--repeats", str(args.e2e_repeats)) for v in latencies
    ]
    results["migration"] = _module_lines("bench.migration_calls", "--customers", "5000")
    results["partitions"] = _module(
        "bench.partitions_deployment", "--latency-ms", *latencies, "--repeats", str(args.partitions_repeats)
    )
    if "skipped" in results["partitions"]:
        print(f"skipped: line 12 (partitions on a deployment): {results['partitions']['skipped']}")
    results["emulator_load"] = [
        _module("bench.emulator_load", "--request", kind, "--seconds", "10") for kind in ("get", "post")
    ]
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["measured_on"] = time.strftime("%Y-%m-%d")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    _print(results)
    failed = _failures(results)
    if failed:
        print(f"README left unchanged: failed: {', '.join(failed)} (bench/results/latest.json)")
        sys.exit(1)
    update_readme(results)


def _failures(results: dict[str, Any]) -> list[str]:
    out = []
    for key, value in results.items():
        for entry in value if isinstance(value, list) else [value]:
            if isinstance(entry, dict) and "error" in entry:
                out.append(f"{key}: {entry['error']}")
    return out


# -- the table: printed, and written into the README ----------------------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _call_count(n: int) -> str:
    return f"{n:,} call" + ("" if n == 1 else "s")


def _n(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}".rstrip("0").rstrip(".")


def _lines(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(benchmark, provider, against, command) of every figure of a run."""
    out: list[tuple[str, str, str, str]] = []

    def add(name: str, figure: str, against: str = "", command: str = "python -m bench.run_all") -> None:
        out.append((name, figure, against, f"`{command}`"))

    s = r["sync"]
    pf, pn, lb = s["project_full"], s["project_noop"], s["lower_bound"]
    bf, bn = s["baseline_full"], s["baseline_noop"]
    n, lat = s["baseline_rows"], _n(s["latency_ms"])
    add(
        f"1. full sync, {s['rows']:,} new rows, {lat} ms per request",
        f"{_n(pf['rows_per_second'])} rows/s ({_n(pf['seconds'])} s, {pf['api_calls']:,} calls)",
        f"SDK loop: {_n(bf['rows_per_second'])} rows/s (first {n} rows, {bf['api_calls']:,} calls): "
        f"**{s['speedup_full']}x**",
    )
    duplicates = bn["active_configurations_after"] - n
    add(
        "2. no-op re-sync of the same rows",
        f"{_n(pn['seconds'])} s, {pn['api_calls']:,} calls, {pn['created']} created",
        f"SDK loop: {_n(bn['seconds'])} s per {n} rows, {bn['api_calls']:,} calls, "
        f"**creates {duplicates} duplicates**: {s['speedup_noop']}x",
    )
    add(
        f"3. lower bound: calls x {lat} ms / {lb['concurrency']} in flight",
        f"{_n(lb['seconds'])} s; the provider at **{lb['project_over_lower_bound']}x** of it",
    )
    if "memory_ratio" in r:
        m0, m1 = r["memory"]
        add(
            "4. peak RSS streaming rows from SQLite",
            f"{m0['peak_rss_mb']} MB at {m0['rows']:,} rows, {m1['peak_rss_mb']} MB at "
            f"{m1['rows']:,} rows: **{r['memory_ratio']}x**",
            command=f"python -m bench.memory_run --rows {m1['rows']}",
        )
    p = r["parse"]
    if "empty_dag_ms" in p:
        added = ", ".join(
            f"`{k.removesuffix('_added_ms')}` +{v} ms" for k, v in p.items() if k.endswith("_added_ms")
        )
        add(
            "5. parse cost of each example DAG file, median of 15",
            f"{added} (an empty DAG file: {p['empty_dag_ms']} ms)",
            command="python -m bench.parse_cost --repeats 15",
        )
    rl = r["rate_limit"]
    add(
        "6. emulator limited to 100 requests/s",
        f"{rl['sustained_rate']} requests/s sustained ({rl['share_of_limit']:.0%} of the limit), "
        f"{rl['share_429']:.1%} answered 429",
    )
    names = {
        "first sync": "first sync (1 % of customers missing)",
        "carry-over (window empty)": "carry-over: an empty window, the rejected rows, their customers added",
        "full refresh, unchanged rows": "full refresh of the same unchanged rows",
        "full refresh with verify": "full refresh with `verify` (every customer read)",
    }
    for run in (x for x in r["ledger"] if "error" not in x):
        add(
            f"7. results table, {run['rows']:,} rows: {names.get(run['run'], run['run'])}",
            f"{_call_count(run['api_calls'])} ({run['calls_per_row']:.2%} of rows), "
            f"{run['created']:,} created",
            command=f"python -m bench.ledger_calls --rows {run['rows']}",
        )
    calls = {c["run"]: c for c in r.get("sync_calls", []) if "run" in c}
    if "first run" in calls:
        first, again = calls["first run"], calls.get("re-run")
        add(
            f"8. calls of a {first['rows']:,}-row sync, then its re-run",
            f"{first['api_calls']:,} calls" + (f"; re-run {again['api_calls']:,} calls" if again else ""),
            command=f"python -m bench.sync_calls --rows {first['rows']}",
        )
    c = r.get("cpu_per_call", {})
    if "cpu_ms_per_call" in c:
        repeats = len(c["cpu_ms_per_call_runs"])
        add(
            "9. client CPU per API call (the sync in one process, the emulator in another)",
            f"**{c['cpu_ms_per_call']:.2f} ms** (user {c['user_ms_per_call']:.2f}, "
            f"system {c['system_ms_per_call']:.2f}); {c['calls']:,} calls, {c['threads']} in flight, "
            f"median of {repeats}",
            command=f"python -m bench.cpu_per_call --rows {c['rows']} --repeats {repeats}",
        )
    for e in (x for x in r.get("dag_e2e", []) if "error" not in x):
        full, empty, base = e["full_run"], e["empty_run"], e["baseline"]
        add(
            f"10. example DAG end to end, {e['rows']:,} rows, {_n(e['latency_ms'])} ms "
            "(`airflow dags test`, full table minus empty table)",
            f"{_n(e['rows_per_second'])} rows/s ({_n(full['seconds'])} s full, "
            f"{_n(empty['seconds'])} s empty)",
            f"SDK loop: {_n(base['rows_per_second'])} rows/s: **{e['speedup']}x** "
            f"({e['speedup_whole_run']}x counting the whole run)",
            command=f"python -m bench.dag_e2e --latency-ms {_n(e['latency_ms'])} "
            f"--repeats {r.get('e2e_repeats', 2)}",
        )
    for m in (x for x in r.get("migration", []) if "error" not in x):
        add(
            f"11. migration of {m['customers']:,} customers: {m['run']}",
            f"{_call_count(m['api_calls'])} ({m['calls_per_customer']} per customer), "
            f"{m['customers_created']:,} customers created",
            command=f"python -m bench.migration_calls --customers {m['customers']}",
        )
    for name, figure, against, command in _partition_lines(
        r.get("partitions", {}), r.get("partitions_repeats", 3)
    ):
        add(name, figure, against, command)
    for e in (x for x in r.get("emulator_load", []) if "requests_per_second" in x):
        kind = "simple GET" if e["request"] == "get" else "validated JSON POST"
        add(
            f"13. the emulator alone, {kind}",
            f"{e['requests_per_second']:,} requests/s",
            command=f"python -m bench.emulator_load --request {e['request']}",
        )
    return out


def _partition_lines(p: dict[str, Any], repeats: int) -> list[tuple[str, str, str, str]]:
    title = "12. partitions on a LocalExecutor deployment"
    if "summary" not in p:
        reason = p.get("skipped") or p.get("error") or "not run"
        return [(title, f"not measured (skipped: {reason})", "", "python -m bench.partitions_deployment")]
    out = []
    for latency in sorted({s["latency_ms"] for s in p["summary"]}, reverse=True):
        rows = [s for s in p["summary"] if s["latency_ms"] == latency and "sync_rows_per_second" in s]
        parts = "/".join(str(s["partitions"]) for s in rows)

        def series(key: str, speedup: str | None, rows: list[dict[str, Any]] = rows) -> str:
            return ", ".join(
                _n(s[key])
                + (f" (**{s[speedup]}x**)" if speedup and s["partitions"] != 1 and speedup in s else "")
                for s in rows
            )

        reconcile = [s["reconcile"] for s in rows if "reconcile" in s]
        figure = (
            f"sync tasks, first start to last end: {series('sync_rows_per_second', 'speedup_vs_1')} rows/s"
        )
        if len(reconcile) == len(rows):
            speedups = [s.get("reconcile_speedup_vs_1") for s in rows]
            figure += (
                "; their reconcile phase alone: "
                + ", ".join(
                    _n(r["rows_per_second"]) + (f" ({x}x)" if x and i else "")
                    for i, (r, x) in enumerate(zip(reconcile, speedups, strict=True))
                )
                + " rows/s, the machine "
                + ", ".join(str(r["machine_busy_cores"]) for r in reconcile)
                + " cores busy"
            )
        figure += f"; whole DAG run: {series('run_rows_per_second', None)} rows/s"
        runs, exact = (
            sum(s["runs"] for s in p["summary"] if s["latency_ms"] == latency),
            sum(s["exact_runs"] for s in p["summary"] if s["latency_ms"] == latency),
        )
        duplicates = max(s["max_duplicates"] for s in rows)
        missing = max(s["max_missing"] for s in rows)
        out.append(
            (
                f"{title}, {p['rows']:,} rows, {_n(latency)} ms, partitions {parts} (median of {repeats})",
                figure,
                f"final state exact in {exact}/{runs} runs ({duplicates} duplicates, {missing} missing)",
                f"python -m bench.partitions_deployment --latency-ms {_n(latency)} --repeats {repeats}",
            )
        )
    return out


def _print(r: dict[str, Any]) -> None:
    lines = _lines(r)
    width = max(len(a) for a, *_ in lines)
    for a, b, c, _ in lines:
        print(f"{a:<{width}}  {b}" + (f"  | {c}" if c else ""))
    print(f"(total {r.get('total_seconds')} s; JSON in bench/results/latest.json)")


def readme_table(r: dict[str, Any]) -> str:
    v = r.get("versions", {})
    latencies = " ".join(_n(x) for x in r.get("latencies_ms", []))
    head = (
        f'Measured {r.get("measured_on", "?")} by `make bench LATENCY_MS="{latencies}"` '
        f"({round(r.get('total_seconds', 0) / 60)} min) on {v.get('cpu_count', '?')} cores, Python "
        f"{v.get('python', '?')}, Airflow {v.get('apache-airflow', '?')}, metronome-sdk "
        f"{v.get('metronome-sdk', '?')}; every figure is in `bench/results/latest.json`.\n"
    )
    rows = ["| benchmark | provider | against | command |", "|---|---|---|---|"]
    rows += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _lines(r)]
    return head + "\n" + "\n".join(rows) + "\n"


def update_readme(r: dict[str, Any], path: Path = README) -> None:
    """Replace the README's text between the bench markers with the table of ``r``."""
    text = path.read_text()
    if START not in text or END not in text:
        print(f"README not updated: no {START} ... {END} markers in {path}")
        return
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    path.write_text(f"{before}{START}\n{readme_table(r)}{END}{after}")
    print(f"README table rewritten ({path.name}, between {START} and {END})")


if __name__ == "__main__":
    main()
