"""``make demo``: the example DAG end to end on this machine, over three days.

1. Seeds an embedded SQLite warehouse with a few hundred realistic customers across
   Stripe, AWS/Azure/GCP Marketplace and NetSuite (some keyed by ingest alias, a
   handful of deliberately bad rows, and three customers Metronome does not have yet).
2. Starts the Metronome emulator with the matching customers (but those three) and
   delivery methods; points the Airflow connections at both.
3. Day 1: ``airflow dags test metronome_billing_config_sync`` reads the day's rows,
   creates what is missing, rejects the bad rows and the three unknown customers.
4. The three customers are created in Metronome (the emulator).
5. Day 2: an incremental run whose window holds no new row still reads the rows the
   results table saw rejected, and syncs the three.
6. A full refresh: every row, and about no Metronome call (the results table vouches
   for the unchanged rows).
7. A migration (``metronome_customer_migration``) of five customers that exist only in
   the warehouse (table ``customers_to_migrate``): the first run creates each of them,
   with its aliases, custom fields and configurations; the second touches nothing.
8. Prints the results table's ``_latest`` view and the calls each run made; stops the
   emulator, no process left behind.

Everything lands in ``.demo/`` (logs of each run included).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow_provider_metronome.emulator.testing import RunningEmulator, running_emulator
from scripts import demo_data

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
TOKEN = "demo-metronome-token-4f2a9c"
AVALARA_PASSWORD = "demo-avalara-password-81b7"
DAG_ID = "metronome_billing_config_sync"
MIGRATION_DAG_ID = "metronome_customer_migration"
MIGRATION_TABLE = "customers_to_migrate"
NEW_CUSTOMERS = 5  # customers only the warehouse knows: the migration creates them
DAY1 = date(2024, 6, 1)  # the day demo_data's rows were updated
LATE = (10, 11, 12)  # customers that exist in the warehouse before they exist in Metronome


def _env(emu: RunningEmulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": str(DEMO / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_METRONOME_DEFAULT": json.dumps(
                {"conn_type": "metronome", "host": emu.url, "password": TOKEN}
            ),
            "AIRFLOW_CONN_AVALARA_DEFAULT": json.dumps(
                {
                    "conn_type": "avalara",
                    "login": "tax@example.com",
                    "password": AVALARA_PASSWORD,
                    "extra": {"environment": "SANDBOX", "commit_transactions": False},
                }
            ),
            "AIRFLOW_CONN_BILLING_WAREHOUSE": json.dumps(
                {"conn_type": "sqlite", "host": str(DEMO / "warehouse.db")}
            ),
            # The migration DAG's source: the customers to bring over (DAG-author setting).
            "METRONOME_MIGRATION_SOURCE_TABLE": MIGRATION_TABLE,
        }
    )
    return env


def _airflow(args: list[str], env: dict[str, str], log: Path) -> None:
    airflow = Path(sys.executable).parent / "airflow"
    with log.open("w") as out:
        result = subprocess.run(
            [str(airflow), *args], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900
        )
    if result.returncode != 0:
        print(log.read_text()[-4000:])
        raise SystemExit(f"`airflow {' '.join(args)}` failed (exit {result.returncode}); full log: {log}")


def _latest_xcom(task_id: str, dag_id: str = DAG_ID) -> Any:
    db = sqlite3.connect(DEMO / "airflow" / "airflow.db")
    row = db.execute(
        "SELECT x.value FROM xcom x JOIN dag_run r ON r.dag_id = x.dag_id AND r.run_id = x.run_id "
        "WHERE x.dag_id = ? AND x.task_id = ? AND x.key = 'return_value' ORDER BY r.id DESC LIMIT 1",
        (dag_id, task_id),
    ).fetchone()
    db.close()
    return json.loads(row[0]) if row else None


def _run(
    n: int, title: str, conf: dict[str, Any], env: dict[str, str], emu: RunningEmulator
) -> dict[str, Any]:
    rejects = DEMO / f"rejects-{n}.jsonl"
    # Where files go is the deployment's choice, not the run conf's (README, "Who chooses what").
    env = {**env, "METRONOME_SYNC_REJECTS_PATH": str(rejects)}
    emu.admin("requests", method="DELETE")
    started = time.perf_counter()
    _airflow(["dags", "test", DAG_ID, "-c", json.dumps(conf)], env, DEMO / f"run-{n}.log")
    summary = _latest_xcom("summarize")
    avalara = _latest_xcom("upsert_avalara_credentials") or []
    active = [c for c in emu.admin("state")["billing_provider_configurations"] if not c["archived_at"]]
    calls: dict[str, int] = {}
    for r in emu.admin("requests")["data"]:
        calls[r["operation"]] = calls.get(r["operation"], 0) + 1
    print(f"\n== Run {n}, {title} ({time.perf_counter() - started:.1f}s)")
    s = summary
    print(
        f"   rows read {s['rows_read']}: created {s['created']}, unchanged {s['unchanged']} "
        f"({s['settled_by_ledger']} vouched for by the results table), duplicates {s['duplicates']}, "
        f"rejected {s['rejected']}"
    )
    print(f"   Metronome calls: {s['api_calls']} by the sync; all calls this run: "
          + ", ".join(f"{op} {k}" for op, k in sorted(calls.items())))  # fmt: skip
    if rejects.exists() and rejects.stat().st_size:
        lines = sorted((json.loads(x) for x in rejects.read_text().splitlines()), key=lambda r: r["row"])
        print(f"   rejected rows (all in {rejects.relative_to(ROOT)}):")
        for r in lines:
            print(f"     row {r['row']:>3} [{r['field']}] {r['key']}: {r['reason'][:100]}")
    print(f"   Avalara credentials set on {len(avalara)} delivery method(s)")
    print(f"   Metronome now holds {len(active)} active billing configurations")
    return summary


def _migrate(n: int, title: str, env: dict[str, str], emu: RunningEmulator) -> dict[str, Any]:
    """A run of the migration DAG; prints what it created and the customers Metronome holds."""
    emu.admin("requests", method="DELETE")
    started = time.perf_counter()
    # `airflow dags test` cannot wait for a person: the approval step is switched off here.
    # In a deployment, a person reads the plan under the task's Required Actions and approves it.
    conf = {"require_approval": False}
    _airflow(["dags", "test", MIGRATION_DAG_ID, "-c", json.dumps(conf)], env, DEMO / f"migration-{n}.log")
    s = _latest_xcom("summarize", MIGRATION_DAG_ID)
    print(f"\n== Migration run {n}, {title} ({time.perf_counter() - started:.1f}s)")
    calls = ", ".join(f"{k} {v}" for k, v in sorted(s["api_calls_by_endpoint"].items())) or "none"
    print(
        f"   rows read {s['rows_read']}: customers created {s['customers_created']}, configurations created "
        f"{s['created']}, unchanged {s['unchanged']}, rejected {s['rejected']}; "
        f"Metronome calls {s['api_calls']} ({calls})"
    )
    for c in s["customers_created_sample"]:
        print(f"   created {c['customer_id']}: {c['name']!r}, aliases {', '.join(c['ingest_aliases'])}")
    return s


def _print_latest() -> None:
    db = sqlite3.connect(DEMO / "warehouse.db")
    counts = db.execute(
        "SELECT outcome, count(*) FROM metronome_sync_results_latest GROUP BY outcome ORDER BY outcome"
    ).fetchall()
    totals = ", ".join(f"{o} {n}" for o, n in counts)
    print(f"\n== The results table (metronome_sync_results_latest): {totals}")
    query = (
        "SELECT coalesce(customer_id, ingest_alias), billing_provider, outcome, "
        "coalesce(configuration_id, field || ': ' || reason) FROM metronome_sync_results_latest "
        "WHERE {where} ORDER BY synced_at DESC LIMIT {limit}"
    )
    for where, limit in (("outcome = 'created'", 3), ("outcome = 'rejected'", 10)):
        for who, provider, outcome, what in db.execute(query.format(where=where, limit=limit)):
            print(f"   {str(who)[:36]:<36} {provider:<17} {outcome:<8} {str(what)[:80]}")
    db.close()


def _day(day: date) -> dict[str, Any]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return {"window_start": start.isoformat(), "window_end": (start + timedelta(days=1)).isoformat()}


def main() -> None:
    started = time.perf_counter()
    shutil.rmtree(DEMO, ignore_errors=True)
    (DEMO / "airflow").mkdir(parents=True)
    data = demo_data.build(300)
    demo_data.write_sqlite(str(DEMO / "warehouse.db"), data.rows)
    migration = [r for k in range(NEW_CUSTOMERS) for r in demo_data.new_customer_rows(k)]
    stamp = datetime(DAY1.year, DAY1.month, DAY1.day, tzinfo=UTC)
    migration_rows = [demo_data.to_warehouse(r, stamp) for r in migration]
    demo_data.write_sqlite(str(DEMO / "warehouse.db"), migration_rows, table=MIGRATION_TABLE)
    # Three customers Metronome does not have yet: their rows are rejected on day 1.
    late_ids = {demo_data.customer_id(i) for i in LATE}
    late = [c for c in data.seed["customers"] if c["id"] in late_ids]
    seed = {**data.seed, "customers": [c for c in data.seed["customers"] if c["id"] not in late_ids]}
    print(
        f"Warehouse: {len(data.rows)} rows in {DEMO.relative_to(ROOT)}/warehouse.db "
        f"({data.good} customers, 1 duplicate, {len(data.rows) - data.good - 1} bad rows), all updated on "
        f"{DAY1}; {len(late)} of the customers are not in Metronome yet"
    )
    with running_emulator(seed=seed, token=TOKEN, state_file=str(DEMO / "metronome-state.json")) as emu:
        print(f"Metronome emulator: {emu.url} ({len(seed['customers'])} customers, 6 delivery methods)")
        env = _env(emu)
        _airflow(["db", "migrate"], env, DEMO / "db-migrate.log")
        tolerate = {"max_rejected_rows": 20}
        first = _run(1, f"day 1: the rows updated on {DAY1}", {**_day(DAY1), **tolerate}, env, emu)
        emu.admin("seed", {"customers": late})
        print(f"\n.. {len(late)} customers created in Metronome: {', '.join(c['name'] for c in late)}")
        day2 = DAY1 + timedelta(days=1)
        second = _run(2, f"day 2: no row updated on {day2}", {**_day(day2), **tolerate}, env, emu)
        third = _run(3, "a full refresh", {"full_refresh": True, **tolerate}, env, emu)
        customers_before = len(emu.admin("state")["customers"])
        print(
            f"\n.. {NEW_CUSTOMERS} customers exist only in the warehouse ({MIGRATION_TABLE}): "
            "the migration DAG brings them over"
        )
        migrated = _migrate(1, f"{NEW_CUSTOMERS} customers Metronome does not have", env, emu)
        state_after = emu.admin("state")
        remigrated = _migrate(2, "the same table again", env, emu)
        untouched = emu.admin("state") == state_after
        print(f"   Metronome unchanged by the second migration run: {untouched}")
        _print_latest()
    if first["created"] == 0 or second["created"] != len(late) or third["created"] != 0:
        raise SystemExit(
            "unexpected: day 1 created nothing, day 2 did not sync the late customers, "
            "or the full refresh created configurations"
        )
    created = len(state_after["customers"]) - customers_before
    if (
        (migrated["customers_created"], created) != (NEW_CUSTOMERS, NEW_CUSTOMERS)
        or not untouched
        or (remigrated["customers_created"] or remigrated["created"])
    ):
        raise SystemExit(
            f"unexpected: the migration created {created} customers (expected {NEW_CUSTOMERS}), "
            "or its second run changed Metronome"
        )
    print(
        f"\nDay 2 synced the {second['created']} rows rejected on day 1, with no full refresh; "
        f"the full refresh created nothing and made {third['api_calls']} Metronome call(s) "
        f"for {third['rows_read']} rows."
        f"\nDemo finished in {time.perf_counter() - started:.0f}s; logs in {DEMO.relative_to(ROOT)}/"
    )


if __name__ == "__main__":
    main()
