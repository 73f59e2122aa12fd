"""``make demo``: the example DAG end to end on this machine, twice.

1. Seeds an embedded SQLite warehouse with a few hundred realistic customers across
   Stripe, AWS/Azure/GCP Marketplace and NetSuite (some keyed by ingest alias, a
   handful of deliberately bad rows).
2. Starts the Metronome emulator with the matching customers and delivery methods.
3. Points the Airflow connections at both through environment variables.
4. Runs ``airflow dags test metronome_billing_config_sync`` and prints what changed.
5. Runs it again and shows that nothing is created the second time.
6. Stops the emulator; no process is left behind.

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
from pathlib import Path
from typing import Any

from airflow_provider_metronome.emulator.testing import RunningEmulator, running_emulator
from scripts import demo_data

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
TOKEN = "demo-metronome-token-4f2a9c"
AVALARA_PASSWORD = "demo-avalara-password-81b7"
DAG_ID = "metronome_billing_config_sync"


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


def _latest_xcom(task_id: str) -> Any:
    db = sqlite3.connect(DEMO / "airflow" / "airflow.db")
    row = db.execute(
        "SELECT x.value FROM xcom x JOIN dag_run r ON r.dag_id = x.dag_id AND r.run_id = x.run_id "
        "WHERE x.dag_id = ? AND x.task_id = ? AND x.key = 'return_value' ORDER BY r.id DESC LIMIT 1",
        (DAG_ID, task_id),
    ).fetchone()
    db.close()
    return json.loads(row[0]) if row else None


def _run(n: int, env: dict[str, str], emu: RunningEmulator) -> dict[str, Any]:
    rejects = DEMO / f"rejects-{n}.jsonl"
    conf = {"full_refresh": True, "max_rejected_rows": 10}
    # Where files go is the deployment's choice, not the run conf's (README, "Who chooses what").
    env = {**env, "METRONOME_SYNC_REJECTS_PATH": str(rejects)}
    started = time.perf_counter()
    _airflow(["dags", "test", DAG_ID, "-c", json.dumps(conf)], env, DEMO / f"run-{n}.log")
    summary = _latest_xcom("summarize")
    avalara = _latest_xcom("upsert_avalara_credentials") or []
    active = [c for c in emu.admin("state")["billing_provider_configurations"] if not c["archived_at"]]
    print(f"\n== Run {n}: airflow dags test {DAG_ID} ({time.perf_counter() - started:.1f}s)")
    s = summary
    print(
        f"   rows read {s['rows_read']}: created {s['created']}, unchanged {s['unchanged']}, "
        f"duplicates {s['duplicates']}, rejected {s['rejected']} ({s['api_calls']} API calls)"
    )
    for provider, counts in sorted(summary["by_provider"].items()):
        print(f"   {provider:<18} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if rejects.exists():
        lines = sorted((json.loads(x) for x in rejects.read_text().splitlines()), key=lambda r: r["row"])
        print(f"   rejected rows (all in {rejects.relative_to(ROOT)}):")
        for r in lines:
            print(f"     row {r['row']:>3} [{r['field']}] {r['key']}: {r['reason'][:110]}")
    print(f"   Avalara credentials set on {len(avalara)} delivery method(s): {', '.join(avalara) or '-'}")
    print(f"   Metronome now holds {len(active)} active billing configurations")
    return summary


def main() -> None:
    started = time.perf_counter()
    shutil.rmtree(DEMO, ignore_errors=True)
    (DEMO / "airflow").mkdir(parents=True)
    data = demo_data.build(300)
    demo_data.write_sqlite(str(DEMO / "warehouse.db"), data.rows)
    print(
        f"Warehouse: {len(data.rows)} rows in {DEMO.relative_to(ROOT)}/warehouse.db "
        f"({data.good} customers, 1 duplicate, {len(data.rows) - data.good - 1} bad rows)"
    )
    with running_emulator(seed=data.seed, token=TOKEN, state_file=str(DEMO / "metronome-state.json")) as emu:
        print(f"Metronome emulator: {emu.url} ({len(data.seed['customers'])} customers, 6 delivery methods)")
        env = _env(emu)
        _airflow(["db", "migrate"], env, DEMO / "db-migrate.log")
        first = _run(1, env, emu)
        second = _run(2, env, emu)
    if second["created"] != 0 or first["created"] == 0:
        raise SystemExit("unexpected: the second run created configurations (or the first created none)")
    print(
        f"\nThe second run created nothing: {second['unchanged']} configurations were already in place."
        f"\nDemo finished in {time.perf_counter() - started:.0f}s; logs in {DEMO.relative_to(ROOT)}/"
    )


if __name__ == "__main__":
    main()
