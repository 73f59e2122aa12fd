"""Chaos: the sync DAG converges to exactly the desired state through injected faults."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from scripts import demo_data
from tests.airflow_support import (
    REPO_DAGS,
    active_state,
    desired_state,
    example_dag,
    sqlite_warehouse,
    task_states,
    xcom,
)
from tests.conftest import AVALARA_PASSWORD, TOKEN

if TYPE_CHECKING:
    from airflow_provider_metronome.emulator.testing import RunningEmulator

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("airflow_db", "avalara_conn")]

DAY = datetime(2024, 6, 2, tzinfo=UTC)
CHAOS = {
    "p_429": 0.10,
    "p_500": 0.05,
    "p_commit_500": 0.02,
    "p_reset": 0.01,
    "retry_after_ms": 50,
    "seed": 20261121,
}


def _connection(monkeypatch: pytest.MonkeyPatch, emulator: RunningEmulator, max_retries: int) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_METRONOME_DEFAULT",
        json.dumps({"conn_type": "metronome", "host": emulator.url, "password": TOKEN,
                    "extra": {"max_retries": max_retries, "max_retry_wait": 300}}),
    )  # fmt: skip


def test_5000_rows_through_429s_500s_lost_answers_and_resets(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = demo_data.build(5000, with_bad_rows=False)
    emulator.admin("reset", data.seed)
    emulator.admin("faults", CHAOS)
    _connection(monkeypatch, emulator, max_retries=10)
    sqlite_warehouse(monkeypatch, tmp_path, data.rows)

    started = time.perf_counter()
    # Batches of 10 so the 2 % commit-then-500 (writes only) meets ~500 writes.
    conf = {"partitions": 2, "batch_size": 10}
    dr = example_dag("metronome_billing_config_sync").test(logical_date=DAY, run_conf=conf)
    elapsed = time.perf_counter() - started
    emulator.admin("faults", {k: 0 for k in CHAOS if k.startswith("p_")})

    assert set(task_states(dr).values()) == {"success"}, task_states(dr)
    faults: dict[str, int] = {}
    for entry in emulator.admin("requests")["data"]:
        if entry["fault"]:
            faults[entry["fault"]] = faults.get(entry["fault"], 0) + 1
    assert set(faults) >= {"429", "500", "commit_then_500", "reset"}, faults
    state = active_state(emulator)
    assert state == desired_state([demo_data.desired_row(i) for i in range(5000)]), (
        "zero duplicates, zero missing"
    )
    assert xcom(dr, "summarize")["created"] == 5000
    print(f"chaos: 5000 rows in {elapsed:.0f}s through {faults}")


def _cli_home(
    tmp_path: Path, emulator: RunningEmulator, rows: list[dict[str, object]]
) -> tuple[Path, dict[str, str]]:
    """A SQLite warehouse holding ``rows`` and a migrated AIRFLOW_HOME for the CLI; its environment."""
    warehouse = tmp_path / "warehouse.db"
    demo_data.write_sqlite(str(warehouse), rows)  # type: ignore[arg-type]
    home = tmp_path / "airflow"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        {
            "AIRFLOW_CONN_METRONOME_DEFAULT": json.dumps(
                {"conn_type": "metronome", "host": emulator.url, "password": TOKEN}
            ),
            "AIRFLOW_CONN_AVALARA_DEFAULT": json.dumps(
                {"conn_type": "avalara", "login": "tax@example.com", "password": AVALARA_PASSWORD}
            ),
            "AIRFLOW_CONN_BILLING_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_DAGS),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        }
    )
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True, check=True, timeout=600)
    return home, env


def _dags_test(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    airflow = Path(sys.executable).parent / "airflow"
    conf = json.dumps({"full_refresh": True})
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(airflow), "dags", "test", "metronome_billing_config_sync", "-c", conf],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def test_killed_worker_then_rerun_converges(emulator: RunningEmulator, tmp_path: Path) -> None:
    """SIGKILL the task process after some batches were written; a re-run ends exact."""
    data = demo_data.build(3000, with_bad_rows=False)
    emulator.admin("reset", data.seed)
    emulator.admin("faults", {"latency_ms": 15})
    _home, env = _cli_home(tmp_path, emulator, data.rows)

    log = tmp_path / "dags-test.log"
    proc = _dags_test(env, log)
    deadline = time.monotonic() + 300
    written = 0
    while written < 3:
        assert proc.poll() is None, "the sync finished before it could be killed:\n" + log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no batch was written in time"
        time.sleep(0.05)
        stats = emulator.admin("stats")["by_operation_status"]
        written = stats.get("setCustomerBillingProviderConfigurations 200", 0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    partial = len(active_state(emulator))
    assert 0 < partial < 3000, partial
    # Killed between Metronome's writes and the results table's: the table holds nothing yet.
    results = sqlite3.connect(tmp_path / "warehouse.db")
    assert results.execute("SELECT count(*) FROM metronome_sync_results").fetchone() == (0,)

    emulator.admin("faults", {"latency_ms": 0})
    again = _dags_test(env, log)
    assert again.wait(timeout=600) == 0, log.read_text()[-3000:]
    state = active_state(emulator)
    assert state == desired_state([demo_data.desired_row(i) for i in range(3000)])
    customers = [s[0] for s in state]
    assert len(customers) == len(set(customers)) == 3000, "no duplicates"
    # ... and the re-run recorded every row with the configuration Metronome holds.
    latest = dict(results.execute("SELECT customer_id, configuration_id FROM metronome_sync_results_latest"))
    results.close()
    configs = emulator.admin("state")["billing_provider_configurations"]
    assert latest == {c["customer_id"]: c["id"] for c in configs if not c["archived_at"]}


def test_secrets_appear_nowhere_in_airflow_home(emulator: RunningEmulator, tmp_path: Path) -> None:
    """A full run through the CLI (sync + Avalara): search every file it left behind."""
    data = demo_data.build(60)
    emulator.admin("reset", data.seed)
    home, env = _cli_home(tmp_path, emulator, data.rows)
    airflow = Path(sys.executable).parent / "airflow"
    conf = json.dumps({"full_refresh": True, "max_rejected_rows": 20})
    # The rejects file is a deployment setting, not run conf (README, "Who chooses what").
    env["METRONOME_SYNC_REJECTS_PATH"] = str(home / "rejects.jsonl")
    out = subprocess.run(
        [str(airflow), "dags", "test", "metronome_billing_config_sync", "-c", conf],
        env=env, capture_output=True, timeout=600,
    )  # fmt: skip
    output = out.stdout + out.stderr
    assert out.returncode == 0, output.decode(errors="replace")[-3000:]
    assert (home / "rejects.jsonl").read_text(), "the rejects file is searched too"
    assert b"Setting Avalara credentials" in output
    assert emulator.admin("state")["avalara_credentials"], "the Avalara step ran"

    searched = {"CLI output": output}
    for path in home.rglob("*"):
        if path.is_file():
            searched[str(path)] = path.read_bytes()
    assert any(name.endswith("airflow.db") for name in searched), "the metadata database was searched"
    for secret in (TOKEN, AVALARA_PASSWORD):
        leaks = [name for name, blob in searched.items() if secret.encode() in blob]
        assert leaks == [], f"{secret[:4]}… found in {leaks}"


_MIGRATION = """
import json, os, sys
from airflow_provider_metronome.client import MetronomeClient
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
rows = json.load(open(sys.argv[1]))
client = MetronomeClient(os.environ["EMULATOR_URL"], os.environ["EMULATOR_TOKEN"])
BillingConfigSync(client, SyncOptions(create_missing_customers=True, max_concurrency=8)).run(rows)
"""


def _migration_rows(customers: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i in range(customers):
        common = {"ingest_alias": f"mig-{i}", "customer_name": f"Migrated {i}", "ingest_aliases": [f"mig-{i}-eu"],
                  "delivery_method": "direct_to_billing_provider"}  # fmt: skip
        rows.append(
            {**common, "billing_provider": "stripe", "configuration": {"stripe_customer_id": f"cus_{i}"}}
        )
        if i % 3 == 0:
            rows.append(
                {**common, "billing_provider": "netsuite", "configuration": {"netsuite_customer_id": f"n{i}"}}
            )
    return rows


def test_killed_migration_then_rerun_creates_each_customer_once(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    """SIGKILL a migration after some customers were created (some answers lost); a re-run ends exact."""
    from airflow_provider_metronome.client import MetronomeClient
    from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions

    customers = 400
    rows = _migration_rows(customers)
    source = tmp_path / "rows.json"
    source.write_text(json.dumps(rows))
    emulator.admin("faults", {"latency_ms": 20})
    env = {**os.environ, "EMULATOR_URL": emulator.url, "EMULATOR_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-c", _MIGRATION, str(source)], env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    created = 0
    while created < 30:
        assert proc.poll() is None, "the migration finished before it could be killed"
        assert time.monotonic() < deadline, "no customer was created in time"
        time.sleep(0.02)
        created = emulator.admin("stats")["by_operation_status"].get("createCustomer 200", 0)
    os.killpg(proc.pid, signal.SIGKILL)  # requests in flight: committed, their answers lost
    proc.wait(timeout=30)
    emulator.admin("faults", {"latency_ms": 0})
    time.sleep(1)  # the requests the killed process left in flight are still applied
    partial = [c for c in emulator.admin("state")["customers"] if c["name"].startswith("Migrated")]
    assert 0 < len(partial) < customers, len(partial)

    report = BillingConfigSync(
        MetronomeClient(emulator.url, TOKEN), SyncOptions(create_missing_customers=True)
    ).run(rows)
    assert report.rejected == 0
    state = emulator.admin("state")
    migrated = {c["id"]: c for c in state["customers"] if c["name"].startswith("Migrated")}
    assert sorted(c["ingest_aliases"][0] for c in migrated.values()) == sorted(
        f"mig-{i}" for i in range(customers)
    )
    configs = [c for c in state["billing_provider_configurations"] if c["customer_id"] in migrated]
    assert len(configs) == len(rows), "every configuration exactly once"
    assert report.customers_created == customers - len(partial)
