"""The example DAGs, run for real: DagBag, dag.test() against the emulator, backfills, partitions."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from scripts import demo_data
from tests.airflow_support import dags_folder, load_dag, task_states, xcom
from tests.conftest import TOKEN

if TYPE_CHECKING:
    from airflow_provider_metronome.emulator.testing import RunningEmulator

pytestmark = pytest.mark.usefixtures("airflow_db", "metronome_conn")

REPO_DAGS = Path(__file__).resolve().parents[2] / "dags"
SYNC_DAG = "metronome_billing_config_sync"
DAY = datetime(2024, 6, 1, tzinfo=timezone.utc)


def test_dagbag_imports_without_errors_or_warnings() -> None:
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(REPO_DAGS))
    assert bag.import_errors == {}
    assert set(bag.dags) == {"metronome_billing_config_sync", "metronome_avalara_credentials"}
    ours = [
        w
        for w in caught
        if str(REPO_DAGS) in str(w.filename) or "airflow_provider_metronome" in str(w.filename)
    ]
    assert ours == [], [str(w.message) for w in ours]
    sync = bag.dags[SYNC_DAG]
    assert all(t.doc_md for t in sync.tasks), "every task explains itself in the UI"


def _example(dag_id: str) -> Any:
    target = dags_folder() / f"{dag_id}.py"
    shutil.copy(REPO_DAGS / f"{dag_id}.py", target)
    return load_dag(target, dag_id)


def _warehouse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    path = tmp_path / "warehouse.db"
    demo_data.write_sqlite(str(path), rows)
    monkeypatch.setenv(
        "AIRFLOW_CONN_BILLING_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)})
    )


def _state(emu: RunningEmulator) -> list[tuple[str, str, str, str, str | None]]:
    """Active configurations, normalised for comparison."""
    return sorted(
        (c["customer_id"], c["billing_provider"], c["delivery_method_id"], json.dumps(c["configuration"], sort_keys=True),
         c.get("tax_provider"))
        for c in emu.admin("state")["billing_provider_configurations"]
        if not c["archived_at"]
    )  # fmt: skip


def _desired(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str | None]]:
    """What the state must be for good rows made by scripts.demo_data."""
    methods = {
        (d["billing_provider"], d["delivery_method"]): d["delivery_method_id"]
        for d in demo_data.DELIVERY_METHODS
    }
    by_alias = {demo_data.alias(i): demo_data.customer_id(i) for i in range(10_000)}
    out = set()
    for r in rows:
        customer = r.get("customer_id") or by_alias[r["ingest_alias"]]
        dm = r.get("delivery_method_id") or methods[(r["billing_provider"], r["delivery_method"])]
        config = r["configuration"] if isinstance(r["configuration"], str) else json.dumps(r["configuration"])
        out.add(
            (
                customer,
                r["billing_provider"],
                dm,
                json.dumps(json.loads(config), sort_keys=True),
                r.get("tax_provider"),
            )
        )
    return sorted(out)


def _reset(emu: RunningEmulator, data: demo_data.DemoData) -> None:
    emu.admin("reset", data.seed)


@pytest.mark.usefixtures("avalara_conn")
def test_sync_dag_on_sqlite(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = demo_data.build(60)
    _reset(emulator, data)
    _warehouse(monkeypatch, tmp_path, data.rows)
    dag = _example(SYNC_DAG)
    dr = dag.test(logical_date=DAY + timedelta(days=1), run_conf={"max_rejected_rows": 10})
    states = task_states(dr)
    assert set(states.values()) == {"success"}, states
    summary = xcom(dr, "summarize")
    assert (summary["rows_read"], summary["created"], summary["duplicates"], summary["rejected"]) == (
        68,
        60,
        1,
        7,
    )
    good = [demo_data.desired_row(i) for i in range(60)]
    assert _state(emulator) == _desired(good)

    # The Avalara step updated exactly the delivery methods whose rows ask for Avalara.
    wanted = sorted({demo_data.STRIPE_DM for r in good if r.get("tax_provider") == "avalara"})
    assert sorted(xcom(dr, "upsert_avalara_credentials")) == wanted
    assert sorted(emulator.admin("state")["avalara_credentials"]) == wanted


def test_sync_dag_fails_when_rejections_exceed_the_tolerance(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = demo_data.build(20)
    _reset(emulator, data)
    _warehouse(monkeypatch, tmp_path, data.rows)
    dr = _example(SYNC_DAG).test(logical_date=DAY + timedelta(days=1))
    states = task_states(dr)
    assert states["sync_billing_configs[0]"] == "failed"
    assert states["upsert_avalara_credentials"] == "upstream_failed"
    assert len(_state(emulator)) == 20, "the good rows were synced before the task failed"


def test_no_avalara_rows_need_no_avalara_connection(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = [demo_data.to_warehouse(demo_data.desired_row(i), DAY + timedelta(hours=i)) for i in (9, 10, 17)]
    _reset(emulator, demo_data.build(20))
    _warehouse(monkeypatch, tmp_path, rows)
    dr = _example(SYNC_DAG).test(logical_date=DAY + timedelta(days=1))
    assert set(task_states(dr).values()) == {"success"}
    assert xcom(dr, "upsert_avalara_credentials") == []


def _history(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A current-state table after three days of changes, and the good rows it stands for.

    Day 1: every customer's first row. Day 2: customers 0-9 change. Day 3: customers
    5-14 change (5-9 a second time). Each row carries the time of its last change.
    """
    final: dict[int, tuple[dict[str, Any], datetime]] = {}
    for i in range(n):
        final[i] = (demo_data.desired_row(i), DAY + timedelta(hours=1, minutes=i))
    for i in range(10):
        final[i] = (demo_data.desired_row(i, version=1), DAY + timedelta(days=1, hours=2, minutes=i))
    for i in range(5, 15):
        final[i] = (demo_data.desired_row(i, version=2), DAY + timedelta(days=2, hours=3, minutes=i))
    table = [demo_data.to_warehouse(row, stamp) for row, stamp in final.values()]
    return table, [row for row, _ in final.values()]


@pytest.mark.usefixtures("avalara_conn")
def test_three_day_backfill_with_overlapping_reruns_ends_exact(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    n = 30
    seed = demo_data.build(n).seed
    emulator.admin("reset", seed)
    dag = _example(SYNC_DAG)

    # Day by day the table changes; each daily run syncs its window, replacing old configurations.
    table_day1 = [
        demo_data.to_warehouse(demo_data.desired_row(i), DAY + timedelta(hours=1, minutes=i))
        for i in range(n)
    ]
    _warehouse(monkeypatch, tmp_path, table_day1)
    first = dag.test(logical_date=DAY + timedelta(days=1), run_conf={"mode": "replace"})
    assert xcom(first, "summarize")["created"] == n

    table, desired = _history(n)
    _warehouse(monkeypatch, tmp_path, table)
    # A backfill over the three days, then an overlapping one over days 2-3 and again 1-3.
    runs = [1, 2, 3, 2, 3, 1, 2, 3]
    created = []
    for day in runs:
        dr = dag.test(logical_date=DAY + timedelta(days=day), run_conf={"mode": "replace"})
        assert set(task_states(dr).values()) == {"success"}, task_states(dr)
        created.append(xcom(dr, "summarize")["created"])
    # Day 1 is already in place; day 2's window holds customers 0-4 (5-9 changed again
    # on day 3, so their rows moved to day 3's window, with 10-14).
    assert created[:3] == [0, 5, 10]
    assert created[3:] == [0] * 5, "overlapping re-runs change nothing"
    assert _state(emulator) == _desired(desired)
    customers = [c[0] for c in _state(emulator)]
    assert len(customers) == len(set(customers)) == n, "exactly one active configuration per customer"


@pytest.mark.usefixtures("avalara_conn")
def test_partitions_give_the_same_final_state(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = demo_data.build(80, with_bad_rows=False)
    _warehouse(monkeypatch, tmp_path, data.rows)
    dag = _example(SYNC_DAG)
    results = {}
    for partitions in (1, 4):
        _reset(emulator, data)
        dr = dag.test(logical_date=DAY + timedelta(days=1), run_conf={"partitions": partitions})
        states = task_states(dr)
        assert set(states.values()) == {"success"}, states
        assert sum(1 for k in states if k.startswith("sync_billing_configs[")) == partitions
        if partitions == 4:
            shares = [xcom(dr, "sync_billing_configs", map_index=i)["rows_read"] for i in range(4)]
            assert sum(shares) == 80
            assert all(0 < s < 80 for s in shares), shares
        results[partitions] = _state(emulator)
    assert results[1] == results[4] == _desired([demo_data.desired_row(i) for i in range(80)])


@pytest.mark.postgres
@pytest.mark.usefixtures("avalara_conn")
def test_sync_dag_on_postgres(emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    url = os.environ.get("METRONOME_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRONOME_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server)")
    from urllib.parse import urlparse

    import psycopg2

    data = demo_data.build(50)
    _reset(emulator, data)
    schema = f"apm_dag_{os.getpid()}"
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
        cur.execute(
            f"CREATE TABLE {schema}.customer_billing_configs (customer_id UUID, ingest_alias TEXT, "
            "billing_provider TEXT, configuration TEXT, delivery_method TEXT, delivery_method_id UUID, "
            "tax_provider TEXT, updated_at TIMESTAMP)"
        )
        good = [r for r in data.rows if r["customer_id"] is None or len(r["customer_id"]) == 36]
        cur.executemany(
            f"INSERT INTO {schema}.customer_billing_configs VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [tuple(r[c] for c in demo_data.WAREHOUSE_COLUMNS) for r in good],
        )
    parsed = urlparse(url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_PG_WAREHOUSE",
        json.dumps({"conn_type": "postgres", "host": parsed.hostname, "port": parsed.port,
                    "login": parsed.username, "schema": parsed.path.lstrip("/")}),
    )  # fmt: skip
    try:
        dag = _example(SYNC_DAG)
        conf = {"warehouse_conn_id": "pg_warehouse", "source_table": f"{schema}.customer_billing_configs",
                "max_rejected_rows": 10, "partitions": 2}  # fmt: skip
        dr = dag.test(logical_date=DAY + timedelta(days=1), run_conf=conf)
        assert set(task_states(dr).values()) == {"success"}, task_states(dr)
        summary = xcom(dr, "summarize")
        assert (summary["created"], summary["rejected"]) == (50, 6)
        assert _state(emulator) == _desired([demo_data.desired_row(i) for i in range(50)])
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


@pytest.mark.usefixtures("avalara_conn")
def test_avalara_dag_by_provider(emulator: RunningEmulator) -> None:
    _reset(emulator, demo_data.build(5))
    dr = _example("metronome_avalara_credentials").test(
        run_conf={"billing_provider": "aws_marketplace", "avalara_environment": "PRODUCTION"}
    )
    assert task_states(dr) == {"upsert_avalara_credentials": "success"}
    creds = emulator.admin("state")["avalara_credentials"]
    assert sorted(creds) == sorted([demo_data.AWS_DM, demo_data.AWS_TACKLE_DM])
    assert {c["avalara_environment"] for c in creds.values()} == {"PRODUCTION"}


@pytest.mark.usefixtures("avalara_conn")
def test_avalara_dag_by_ids(emulator: RunningEmulator) -> None:
    _reset(emulator, demo_data.build(5))
    dr = _example("metronome_avalara_credentials").test(
        run_conf={"delivery_method_ids": [demo_data.NETSUITE_DM]}
    )
    assert task_states(dr) == {"upsert_avalara_credentials": "success"}
    assert list(emulator.admin("state")["avalara_credentials"]) == [demo_data.NETSUITE_DM]
    assert TOKEN not in json.dumps(xcom(dr, "upsert_avalara_credentials"))
