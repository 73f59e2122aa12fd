"""End to end, as a user sees it: ``airflow dags test`` of the example DAG, against the SDK loop.

The example DAG (``dags/metronome_billing_config_sync.py``) runs in a subprocess, as
``make demo`` runs it (``scripts/demo.py``: ``AIRFLOW_HOME`` of its own, connections
from the environment, a SQLite warehouse written by ``scripts/demo_data.py``, a third
of the rows keyed by ingest alias), over ``--rows`` new rows, and again over an empty
table. The difference of the two is the time the rows cost a user; the empty run is
what any run of the DAG costs (Airflow start-up, DAG parsing, the other tasks).
The baseline (``bench/baseline.py``: the loop a user would write around the SDK) runs
on ``--baseline-rows`` rows of the same emulator at the same latency; it is linear in
rows, so its rows/s holds for any count.

The time of each run is broken down from the Airflow database and the task log: from
the process start to the first task, each task's run time, the engine's own time
(its ``Sync done: ... <s>s`` line) within the sync task, and the end.

    uv run python -m bench.dag_e2e --latency-ms 20
    uv run python -m bench.dag_e2e --latency-ms 50 --rows 3000 --baseline-rows 300

Prints one JSON line of the figures and a table; everything lands in ``bench/results/dag_e2e/``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_provider_metronome.emulator.testing import RunningEmulator, running_emulator
from bench.baseline import baseline_sync
from scripts import demo_data

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "results" / "dag_e2e"
TOKEN = "bench-e2e-metronome-token-7d1e"
DAG_ID = "metronome_billing_config_sync"
TASKS = ("plan_partitions", "sync_billing_configs", "summarize", "avalara_delivery_methods",
         "upsert_avalara_credentials")  # fmt: skip
_SYNC_DONE = re.compile(r"Sync done: .*?(\d+(?:\.\d+)?)s\)")
# The engine's log lines that close each of its phases, and the phase each closes.
_PHASES = (
    ("Sync starts:", None),
    ("The account has ", "engine: SDK import, client, delivery methods"),
    ("Read ", "engine: read, stage, resolve aliases"),
    ("Sync done:", "engine: reconcile (reads, writes)"),
)
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z \[\w+\s*\] (.*)")


def _env(emu: RunningEmulator, warehouse: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__", "METRONOME_SYNC_"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(WORK / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_METRONOME_DEFAULT": json.dumps(
                {"conn_type": "metronome", "host": emu.url, "password": TOKEN}
            ),
            "AIRFLOW_CONN_AVALARA_DEFAULT": json.dumps(
                {
                    "conn_type": "avalara",
                    "login": "tax@example.com",
                    "password": "bench-avalara-pw-5c3e",
                    "extra": {"environment": "SANDBOX", "commit_transactions": False},
                }
            ),
            "AIRFLOW_CONN_BILLING_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
        }
    )
    return env


def _airflow(args: list[str], env: dict[str, str], log: Path) -> float:
    airflow = Path(sys.executable).parent / "airflow"
    started = time.perf_counter()
    with log.open("w") as out:
        result = subprocess.run(
            [str(airflow), *args], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1800
        )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        print(log.read_text()[-4000:])
        raise SystemExit(f"`airflow {' '.join(args)}` failed (exit {result.returncode}); full log: {log}")
    return seconds


def _stamp(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def _tasks(started_at: float) -> dict[str, Any]:
    """Each task's run time, and the gaps, of the latest run (from the Airflow database)."""
    db = sqlite3.connect(WORK / "airflow" / "airflow.db")
    run_id = db.execute(
        "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
    ).fetchone()[0]
    rows = db.execute(
        "SELECT task_id, start_date, end_date FROM task_instance WHERE dag_id = ? AND run_id = ?",
        (DAG_ID, run_id),
    ).fetchall()
    db.close()
    spans = {t: (_stamp(s), _stamp(e)) for t, s, e in rows}
    out: dict[str, Any] = {}
    for task in TASKS:
        start, end = spans.get(task, (None, None))
        out[task] = round(end - start, 2) if start is not None and end is not None else None
    starts = [s for s, _ in spans.values() if s is not None]
    ends = [e for _, e in spans.values() if e is not None]
    if starts:
        out["before_first_task"] = round(min(starts) - started_at, 2)
        out["after_last_task"] = None  # filled by the caller (it knows when the process ended)
        out["_last_end"] = max(ends)
    return out


def _phases(text: str) -> dict[str, float]:
    """Seconds of each engine phase, from the timestamps of the lines that end them."""
    seen: dict[str, float] = {}
    for line in text.splitlines():
        match = _LOG_LINE.match(line)
        if match is None:
            continue
        for marker, _ in _PHASES:
            if match.group(2).startswith(marker):
                seen.setdefault(marker, datetime.fromisoformat(match.group(1)).timestamp())
    out: dict[str, float] = {}
    previous: float | None = None
    for marker, name in _PHASES:
        if marker not in seen:
            return out
        if name is not None and previous is not None:
            out[name] = round(seen[marker] - previous, 2)
        previous = seen[marker]
    return out


def _run(name: str, env: dict[str, str], conf: dict[str, Any]) -> dict[str, Any]:
    log = WORK / f"{name}.log"
    wall_start = time.time()
    seconds = _airflow(["dags", "test", DAG_ID, "-c", json.dumps({"full_refresh": True, **conf})], env, log)
    tasks = _tasks(wall_start)
    last = tasks.pop("_last_end", None)
    if last is not None:
        tasks["after_last_task"] = round(wall_start + seconds - last, 2)
    text = log.read_text()
    done = _SYNC_DONE.findall(text)
    engine = float(done[-1]) if done else None
    sync = tasks.get("sync_billing_configs")
    return {
        "seconds": round(seconds, 2),
        "engine_seconds": engine,
        "sync_task_outside_engine": round(sync - engine, 2)
        if sync is not None and engine is not None
        else None,
        "tasks": tasks,
        "engine_phases": _phases(text),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--baseline-rows", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument(
        "--repeats", type=int, default=1, help="full and empty runs each (the median is kept)"
    )
    parser.add_argument(
        "--max-concurrency", type=int, help="the DAG's max_concurrency param (default: the DAG's)"
    )
    args = parser.parse_args(argv)
    conf = {} if args.max_concurrency is None else {"max_concurrency": args.max_concurrency}
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "airflow").mkdir(parents=True)
    data = demo_data.build(args.rows, with_bad_rows=False)
    full_db, empty_db = WORK / "warehouse.db", WORK / "empty.db"
    emu_args = ["--latency-ms", str(args.latency_ms)]
    out: dict[str, Any] = {"bench": "dag_e2e", "rows": args.rows, "latency_ms": args.latency_ms, "conf": conf}
    with running_emulator(seed=data.seed, token=TOKEN, args=emu_args) as emu:
        _airflow(["db", "migrate"], _env(emu, empty_db), WORK / "db-migrate.log")
        demo_data.write_sqlite(str(empty_db), [])
        _run("warm-up", _env(emu, empty_db), conf)  # first start: cold caches, .pyc files
        fulls, empties = [], []
        for i in range(args.repeats):
            demo_data.write_sqlite(str(empty_db), [])  # and no results table: every run starts alike
            sqlite3.connect(empty_db).execute(
                "DROP TABLE IF EXISTS metronome_sync_results"
            ).connection.close()
            empties.append(_run(f"empty-{i}", _env(emu, empty_db), conf))
            full_db.unlink(missing_ok=True)
            demo_data.write_sqlite(str(full_db), data.rows)
            emu.admin("reset", data.seed)
            emu.admin("requests", method="DELETE")
            fulls.append(_run(f"full-{i}", _env(emu, full_db), conf))
            fulls[-1]["api_calls"] = len(emu.admin("requests")["data"])
            active = [
                c for c in emu.admin("state")["billing_provider_configurations"] if not c["archived_at"]
            ]
            fulls[-1]["active_configurations"] = len(active)
        emu.admin("reset", data.seed)
        subset = data.rows[: args.baseline_rows]
        emu.admin("requests", method="DELETE")
        started = time.perf_counter()
        baseline_sync(emu.url, emu.token, subset)
        baseline_seconds = time.perf_counter() - started
        baseline_calls = len(emu.admin("requests")["data"])
    full = sorted(fulls, key=lambda r: r["seconds"])[len(fulls) // 2]
    empty = sorted(empties, key=lambda r: r["seconds"])[len(empties) // 2]
    rows_seconds = full["seconds"] - empty["seconds"]
    baseline_rate = args.baseline_rows / baseline_seconds
    out.update(
        {
            "full_run": full,
            "empty_run": empty,
            "rows_seconds": round(rows_seconds, 2),
            # The same difference for the sync task alone (free of the start-up's noise).
            "sync_task_rows_seconds": round(
                full["tasks"]["sync_billing_configs"] - empty["tasks"]["sync_billing_configs"], 2
            ),
            "rows_per_second": round(args.rows / rows_seconds, 1),
            "rows_per_second_whole_run": round(args.rows / full["seconds"], 1),
            "baseline": {
                "rows": args.baseline_rows,
                "seconds": round(baseline_seconds, 2),
                "api_calls": baseline_calls,
                "rows_per_second": round(baseline_rate, 2),
                "seconds_for_all_rows": round(args.rows / baseline_rate, 1),
            },
            "speedup": round(args.rows / rows_seconds / baseline_rate, 1),
            "speedup_whole_run": round(args.rows / full["seconds"] / baseline_rate, 1),
        }
    )
    print(json.dumps(out))
    _print(out)
    return out


def _print(r: dict[str, Any]) -> None:
    full, empty, base = r["full_run"], r["empty_run"], r["baseline"]
    print(f"\n{r['rows']:,} rows, emulator latency {r['latency_ms']:g} ms")
    rows = [
        ("DAG run, full table", f"{full['seconds']} s ({full['api_calls']} Metronome calls)"),
        ("DAG run, empty table", f"{empty['seconds']} s"),
        ("the rows' cost (full - empty)", f"{r['rows_seconds']} s = {r['rows_per_second']} rows/s"),
        ("SDK loop baseline", f"{base['rows_per_second']} rows/s ({base['rows']} rows in "
                              f"{base['seconds']} s, {base['api_calls']} calls; "
                              f"{base['seconds_for_all_rows']} s for all rows)"),
        ("speed-up (full - empty)", f"{r['speedup']}x"),
        ("the sync task's share", f"{r['sync_task_rows_seconds']} s of the {r['rows_seconds']} s"),
        ("speed-up (whole run)", f"{r['speedup_whole_run']}x ({r['rows_per_second_whole_run']} rows/s)"),
    ]  # fmt: skip
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{width}}  {b}")
    print(f"\n{'time breakdown (s)':<28} {'full':>8} {'empty':>8}")
    keys = ["before_first_task", *TASKS, "after_last_task"]
    for key in keys:
        print(f"{key:<28} {full['tasks'].get(key)!s:>8} {empty['tasks'].get(key)!s:>8}")
    print(f"{'  engine (Sync done)':<28} {full['engine_seconds']!s:>8} {empty['engine_seconds']!s:>8}")
    for phase in full["engine_phases"]:
        print(f"{'    ' + phase[8:]:<28} {full['engine_phases'][phase]!s:>8} "
              f"{empty['engine_phases'].get(phase)!s:>8}")  # fmt: skip
    print(f"{'  sync task outside engine':<28} {full['sync_task_outside_engine']!s:>8} "
          f"{empty['sync_task_outside_engine']!s:>8}")  # fmt: skip
    print(f"{'whole process':<28} {full['seconds']:>8} {empty['seconds']:>8}")


if __name__ == "__main__":
    main()
