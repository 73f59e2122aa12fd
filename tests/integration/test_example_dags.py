"""The example DAGs, run for real: DagBag, dag.test() against the emulator, backfills, partitions."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from scripts import demo_data
from tests.airflow_support import (
    REPO_DAGS,
    active_state,
    all_rendered_fields_text,
    all_xcom_text,
    desired_state,
    example_dag,
    postgres_schema,
    reset_emulator,
    sqlite_warehouse,
    task_states,
    xcom,
)
from tests.conftest import TOKEN

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_metronome.emulator.testing import RunningEmulator

pytestmark = pytest.mark.usefixtures("airflow_db", "metronome_conn")

SYNC_DAG = "metronome_billing_config_sync"
DAY = datetime(2024, 6, 1, tzinfo=UTC)


def test_dagbag_imports_without_errors_or_warnings() -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(REPO_DAGS))
    assert bag.import_errors == {}
    assert set(bag.dags) == {
        "metronome_billing_config_sync",
        "metronome_avalara_credentials",
        "metronome_customer_migration",
    }
    ours = [
        w
        for w in caught
        if str(REPO_DAGS) in str(w.filename) or "airflow_provider_metronome" in str(w.filename)
    ]
    assert ours == [], [str(w.message) for w in ours]
    sync = bag.dags[SYNC_DAG]
    assert all(t.doc_md for t in sync.tasks), "every task explains itself in the UI"
    # The migration asks a person to approve its plan where Airflow can (3.1+: human in the loop).
    version = tuple(int(p) for p in __import__("airflow").__version__.split(".")[:2])
    migration = bag.dags["metronome_customer_migration"]
    assert ("approve_migration" in migration.task_ids) == (version >= (3, 1)), migration.task_ids
    assert all(t.execution_timeout for t in sync.tasks), "no task can hang forever"


@pytest.mark.usefixtures("avalara_conn")
def test_sync_dag_on_sqlite(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = demo_data.build(60)
    reset_emulator(emulator, data)
    sqlite_warehouse(monkeypatch, tmp_path, data.rows)
    dag = example_dag(SYNC_DAG)
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
    assert active_state(emulator) == desired_state(good)

    # The Avalara step updated exactly the delivery methods whose rows ask for Avalara.
    wanted = sorted({demo_data.STRIPE_DM for r in good if r.get("tax_provider") == "avalara"})
    assert sorted(xcom(dr, "upsert_avalara_credentials")) == wanted
    assert sorted(emulator.admin("state")["avalara_credentials"]) == wanted


def test_sync_dag_fails_when_rejections_exceed_the_tolerance(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = demo_data.build(20)
    reset_emulator(emulator, data)
    sqlite_warehouse(monkeypatch, tmp_path, data.rows)
    dr = example_dag(SYNC_DAG).test(logical_date=DAY + timedelta(days=1))
    states = task_states(dr)
    assert states["sync_billing_configs[0]"] == "failed"
    assert states["upsert_avalara_credentials"] == "upstream_failed"
    assert len(active_state(emulator)) == 20, "the good rows were synced before the task failed"


def test_no_avalara_rows_need_no_avalara_connection(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = [demo_data.to_warehouse(demo_data.desired_row(i), DAY + timedelta(hours=i)) for i in (9, 10, 17)]
    reset_emulator(emulator, demo_data.build(20))
    sqlite_warehouse(monkeypatch, tmp_path, rows)
    dr = example_dag(SYNC_DAG).test(logical_date=DAY + timedelta(days=1))
    assert set(task_states(dr).values()) == {"success"}
    assert xcom(dr, "upsert_avalara_credentials") == []


def day_window(day: int, **conf: Any) -> dict[str, Any]:
    """Run conf that makes a manual run read the data interval of day ``day`` (as its scheduled run would)."""
    start = DAY + timedelta(days=day - 1)
    return {"window_start": start.isoformat(), "window_end": (start + timedelta(days=1)).isoformat(), **conf}


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
    dag = example_dag(SYNC_DAG)

    # Day by day the table changes; each daily run syncs its window, replacing old configurations.
    table_day1 = [
        demo_data.to_warehouse(demo_data.desired_row(i), DAY + timedelta(hours=1, minutes=i))
        for i in range(n)
    ]
    sqlite_warehouse(monkeypatch, tmp_path, table_day1)
    first = dag.test(logical_date=DAY + timedelta(days=1), run_conf=day_window(1, mode="replace"))
    assert xcom(first, "summarize")["created"] == n

    table, desired = _history(n)
    sqlite_warehouse(monkeypatch, tmp_path, table)
    # A backfill over the three days, then an overlapping one over days 2-3 and again 1-3.
    runs = [1, 2, 3, 2, 3, 1, 2, 3]
    created = []
    for day in runs:
        dr = dag.test(logical_date=DAY + timedelta(days=day), run_conf=day_window(day, mode="replace"))
        assert set(task_states(dr).values()) == {"success"}, task_states(dr)
        created.append(xcom(dr, "summarize")["created"])
    # Day 1 is already in place; day 2's window holds customers 0-4 (5-9 changed again
    # on day 3, so their rows moved to day 3's window, with 10-14).
    assert created[:3] == [0, 5, 10]
    assert created[3:] == [0] * 5, "overlapping re-runs change nothing"
    assert active_state(emulator) == desired_state(desired)
    customers = [c[0] for c in active_state(emulator)]
    assert len(customers) == len(set(customers)) == n, "exactly one active configuration per customer"


@pytest.mark.usefixtures("avalara_conn")
def test_partitions_give_the_same_final_state(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = demo_data.build(80, with_bad_rows=False)
    sqlite_warehouse(monkeypatch, tmp_path, data.rows)
    dag = example_dag(SYNC_DAG)
    results = {}
    for partitions in (1, 4):
        reset_emulator(emulator, data)
        # Metronome was emptied behind the results table's back: verify reads it again.
        dr = dag.test(
            logical_date=DAY + timedelta(days=1), run_conf={"partitions": partitions, "verify": True}
        )
        states = task_states(dr)
        assert set(states.values()) == {"success"}, states
        assert sum(1 for k in states if k.startswith("sync_billing_configs[")) == partitions
        if partitions == 4:
            shares = [xcom(dr, "sync_billing_configs", map_index=i)["rows_read"] for i in range(4)]
            assert sum(shares) == 80
            assert all(0 < s < 80 for s in shares), shares
        results[partitions] = active_state(emulator)
    assert results[1] == results[4] == desired_state([demo_data.desired_row(i) for i in range(80)])


@pytest.mark.postgres
@pytest.mark.usefixtures("avalara_conn")
def test_sync_dag_on_postgres(emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    data = demo_data.build(50)
    reset_emulator(emulator, data)
    with postgres_schema(monkeypatch, "pg_warehouse", "apm_dag") as (conn, schema):
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {schema}.customer_billing_configs (customer_id UUID, ingest_alias TEXT, "
                "billing_provider TEXT, configuration TEXT, delivery_method TEXT, delivery_method_id UUID, "
                "tax_provider TEXT, updated_at TIMESTAMP)"
            )
            # A UUID column cannot hold the corpus's malformed id: that row stays out.
            good = [r for r in data.rows if r["customer_id"] is None or len(r["customer_id"]) == 36]
            cur.executemany(
                f"INSERT INTO {schema}.customer_billing_configs VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [tuple(r[c] for c in demo_data.WAREHOUSE_COLUMNS) for r in good],
            )
        # The warehouse is the DAG author's (or the deployment's) choice, not the run's.
        monkeypatch.setenv("METRONOME_SYNC_WAREHOUSE_CONN_ID", "pg_warehouse")
        monkeypatch.setenv("METRONOME_SYNC_SOURCE_TABLE", f"{schema}.customer_billing_configs")
        # The results table next to the source, in this test's own schema.
        monkeypatch.setenv("METRONOME_SYNC_RESULTS_TABLE", f"{schema}.metronome_sync_results")
        conf = {"max_rejected_rows": 10, "partitions": 2}
        dr = example_dag(SYNC_DAG).test(logical_date=DAY + timedelta(days=1), run_conf=conf)
        assert set(task_states(dr).values()) == {"success"}, task_states(dr)
        summary = xcom(dr, "summarize")
        assert (summary["created"], summary["rejected"]) == (50, 6)
        assert active_state(emulator) == desired_state([demo_data.desired_row(i) for i in range(50)])
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT outcome, count(*), count(DISTINCT partition) FROM {schema}.metronome_sync_results "
                "GROUP BY outcome ORDER BY outcome"
            )
            # One row per source row: the corpus holds one exact copy of a good row.
            assert cur.fetchall() == [("created", 50, 2), ("duplicate", 1, 1), ("rejected", 6, 2)]


@pytest.mark.usefixtures("avalara_conn")
def test_avalara_dag_by_provider(emulator: RunningEmulator) -> None:
    reset_emulator(emulator, demo_data.build(5))
    dr = example_dag("metronome_avalara_credentials").test(
        run_conf={"billing_provider": "aws_marketplace", "avalara_environment": "PRODUCTION"}
    )
    assert task_states(dr) == {"upsert_avalara_credentials": "success"}
    creds = emulator.admin("state")["avalara_credentials"]
    assert sorted(creds) == sorted([demo_data.AWS_DM, demo_data.AWS_TACKLE_DM])
    assert {c["avalara_environment"] for c in creds.values()} == {"PRODUCTION"}


@pytest.mark.usefixtures("avalara_conn")
def test_avalara_dag_by_ids(emulator: RunningEmulator) -> None:
    reset_emulator(emulator, demo_data.build(5))
    dr = example_dag("metronome_avalara_credentials").test(
        run_conf={"delivery_method_ids": [demo_data.NETSUITE_DM]}
    )
    assert task_states(dr) == {"upsert_avalara_credentials": "success"}
    assert list(emulator.admin("state")["avalara_credentials"]) == [demo_data.NETSUITE_DM]
    assert TOKEN not in json.dumps(xcom(dr, "upsert_avalara_credentials"))


def test_every_param_is_optional_or_has_a_default_and_explains_itself() -> None:
    """The Trigger form opens with every field valid: optional params are nullable, none is required."""
    dag = example_dag(SYNC_DAG)
    resolved = dag.params.validate()
    for name in ("window_start", "window_end"):
        assert resolved[name] is None, name
        assert "null" in dag.params.get_param(name).schema["type"], f"{name} is optional"
    assert resolved["max_concurrency"] == 48
    for name in ("warehouse_conn_id", "source_table", "source_sql", "rejects_path"):
        assert name not in dag.params, f"{name} is the DAG author's setting, not a param"
    for name in dag.params:
        param = dag.params.get_param(name)
        assert len(param.description or "") > 20, f"{name} explains itself in the trigger form"


@pytest.mark.usefixtures("avalara_conn")
def test_manual_run_reads_every_row_unless_a_window_is_given(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The UI's Trigger button gives "now" as the logical date: a manual run must not read only yesterday."""
    rows = [
        demo_data.to_warehouse(demo_data.desired_row(i), DAY + timedelta(days=i % 3, hours=1))
        for i in range(12)
    ]
    reset_emulator(emulator, demo_data.build(12))
    sqlite_warehouse(monkeypatch, tmp_path, rows)
    narrowed = example_dag(SYNC_DAG).test(run_conf=day_window(2))
    assert xcom(narrowed, "summarize")["rows_read"] == 4, "the window keeps day 2's rows"
    # A fresh DAG object: dag.test() keeps the previous run's conf in the DAG's params.
    everything = example_dag(SYNC_DAG).test(logical_date=datetime.now(UTC))
    summary = xcom(everything, "summarize")
    assert (summary["rows_read"], summary["created"], summary["unchanged"]) == (12, 8, 4)
    assert active_state(emulator) == desired_state([demo_data.desired_row(i) for i in range(12)])


@pytest.mark.usefixtures("avalara_conn")
def test_summaries_are_stored_once_per_task(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests.airflow_support import xcom_keys

    data = demo_data.build(10, with_bad_rows=False)
    reset_emulator(emulator, data)
    sqlite_warehouse(monkeypatch, tmp_path, data.rows)
    dr = example_dag(SYNC_DAG).test(run_conf={"partitions": 2})
    assert set(task_states(dr).values()) == {"success"}
    assert xcom_keys(dr, "summarize") == ["return_value"], "no fan-out of the summary's keys"
    for i in range(2):
        keys = xcom_keys(dr, "sync_billing_configs", map_index=i)
        assert sorted(keys) == ["_link_MetronomeLink", "return_value"], keys
    assert xcom(dr, "summarize")["partitions"] == 2


@pytest.mark.usefixtures("avalara_conn")
def test_avalara_dag_with_nothing_chosen_fails_and_says_why(emulator: RunningEmulator) -> None:
    reset_emulator(emulator, demo_data.build(5))
    dr = example_dag("metronome_avalara_credentials").test()
    assert task_states(dr) == {"upsert_avalara_credentials": "failed"}
    assert emulator.admin("state")["avalara_credentials"] == {}


# -- who chooses what: run conf never reaches past its DAG (README, "Who chooses what") ------

# Airflow 3.0.x's dag.test() does not print task exceptions: there the message checks are
# left out (the deployment suite reads the same message from the task log over the REST API).
TASK_LOGS_IN_OUTPUT = not __import__("airflow").__version__.startswith("3.0.")
SECRET = "s3cr3t-Of-Another-Team-91c4"


def _assert_refused(dr: Any, capfd: pytest.CaptureFixture[str], key: str, why: str) -> None:
    """The run failed in its first task, before any task read or wrote anything, and said why."""
    states = task_states(dr)
    assert states.pop("plan_partitions") == "failed", states
    assert set(states.values()) == {"upstream_failed"}, states
    if TASK_LOGS_IN_OUTPUT:
        out = capfd.readouterr().out
        assert f"Run conf key(s) '{key}' {why}" in out, out[-3000:]
        assert "nothing was read or written" in out


def _sqlite_table(path: Path, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    import sqlite3

    db = sqlite3.connect(path)
    with db:
        db.execute(f"CREATE TABLE {table} ({columns})")
        db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in rows[0])})", rows)
    db.close()


def test_run_conf_cannot_choose_a_file_to_write(
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    data = demo_data.build(20)  # with bad rows: a rejects file would get lines
    reset_emulator(emulator, data)
    sqlite_warehouse(monkeypatch, tmp_path, data.rows)
    victim = tmp_path / "someone-elses-file.txt"
    victim.write_text("keep me\n")

    dr = example_dag(SYNC_DAG).test(run_conf={"rejects_path": str(victim), "max_rejected_rows": 10})

    assert victim.read_text() == "keep me\n", "the run wrote a file its trigger chose"
    assert active_state(emulator) == []
    _assert_refused(dr, capfd, "rejects_path", "are DAG-author settings")


def test_run_conf_cannot_run_its_own_sql(
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    reset_emulator(emulator, demo_data.build(5))
    sqlite_warehouse(monkeypatch, tmp_path, [])
    _sqlite_table(tmp_path / "warehouse.db", "app_secrets", "secret TEXT", [(SECRET,)])
    # A query that would carry a secret into the rejections (log, XCom) and to Metronome.
    steal = (
        "SELECT secret AS ingest_alias, 'stripe' AS billing_provider, "
        "'{\"stripe_customer_id\": \"cus_x\"}' AS configuration, 'direct_to_billing_provider' AS delivery_method "
        "FROM app_secrets"
    )

    dr = example_dag(SYNC_DAG).test(run_conf={"source_sql": steal, "max_rejected_rows": 10})

    assert SECRET not in all_xcom_text(), "the trigger's query ran and its result reached XCom"
    assert SECRET not in all_rendered_fields_text()
    assert SECRET not in json.dumps(emulator.admin("requests")), "the secret was sent to Metronome"
    _assert_refused(dr, capfd, "source_sql", "are DAG-author settings")


def test_run_conf_cannot_choose_the_table(
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    data = demo_data.build(5, with_bad_rows=False)
    reset_emulator(emulator, data)
    sqlite_warehouse(monkeypatch, tmp_path, [])
    demo_data.write_sqlite(str(tmp_path / "warehouse.db"), data.rows, table="another_teams_table")

    dr = example_dag(SYNC_DAG).test(run_conf={"source_table": "another_teams_table"})

    assert active_state(emulator) == [], "rows of a table the trigger chose were synced"
    _assert_refused(dr, capfd, "source_table", "are DAG-author settings")


def test_run_conf_cannot_choose_the_connection(
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    data = demo_data.build(5, with_bad_rows=False)
    reset_emulator(emulator, data)
    sqlite_warehouse(monkeypatch, tmp_path, [])
    other = tmp_path / "other.db"
    demo_data.write_sqlite(str(other), data.rows)
    monkeypatch.setenv("AIRFLOW_CONN_OTHER", json.dumps({"conn_type": "sqlite", "host": str(other)}))

    dr = example_dag(SYNC_DAG).test(run_conf={"warehouse_conn_id": "other"})

    assert active_state(emulator) == [], "rows of a connection the trigger chose were synced"
    _assert_refused(dr, capfd, "warehouse_conn_id", "are DAG-author settings")


def test_run_conf_with_a_key_that_is_no_param_fails(
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A misspelt param would otherwise be ignored: this scheduled-like run would read all rows."""
    reset_emulator(emulator, demo_data.build(5))
    sqlite_warehouse(monkeypatch, tmp_path, [])
    dr = example_dag(SYNC_DAG).test(run_conf={"full_refesh": True})
    _assert_refused(dr, capfd, "full_refesh", "are not params of this DAG")


@pytest.mark.usefixtures("avalara_conn")
def test_avalara_run_conf_cannot_choose_the_connection(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    reset_emulator(emulator, demo_data.build(5))
    monkeypatch.setenv(
        "AIRFLOW_CONN_OTHER_AVALARA",
        json.dumps({"conn_type": "avalara", "login": "other@example.com", "password": "other-pass-7"}),
    )
    dr = example_dag("metronome_avalara_credentials").test(
        run_conf={"billing_provider": "stripe", "avalara_conn_id": "other_avalara"}
    )
    assert emulator.admin("state")["avalara_credentials"] == {}, "the run ignored the key and went on"
    assert task_states(dr) == {"upsert_avalara_credentials": "failed"}
    if TASK_LOGS_IN_OUTPUT:
        out = capfd.readouterr().out
        assert "Run conf key(s) 'avalara_conn_id' are not params of this DAG" in out, out[-3000:]


@pytest.mark.usefixtures("avalara_conn")
def test_author_settings_from_the_deployment_environment(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Connection, SQL and a templated rejects path, set where the trigger cannot reach them."""
    data = demo_data.build(20)
    reset_emulator(emulator, data)
    mart = tmp_path / "mart.db"
    demo_data.write_sqlite(str(mart), data.rows, table="billing_mart")
    monkeypatch.setenv("AIRFLOW_CONN_MART", json.dumps({"conn_type": "sqlite", "host": str(mart)}))
    monkeypatch.setenv("METRONOME_SYNC_WAREHOUSE_CONN_ID", "mart")
    monkeypatch.setenv(
        "METRONOME_SYNC_SOURCE_SQL", "SELECT * FROM billing_mart WHERE billing_provider = 'stripe';"
    )
    monkeypatch.setenv("METRONOME_SYNC_REJECTS_PATH", str(tmp_path / "rejects-{{ ds_nodash }}.jsonl"))

    dr = example_dag(SYNC_DAG).test(
        logical_date=DAY + timedelta(days=1), run_conf={"partitions": 2, "max_rejected_rows": 10}
    )

    assert set(task_states(dr).values()) == {"success"}, task_states(dr)
    summary = xcom(dr, "summarize")
    assert summary["rows_read"] == sum(1 for r in data.rows if r["billing_provider"] == "stripe")
    files = sorted(tmp_path.glob("rejects-20240602.jsonl.part*"))
    assert [f.name[-5:] for f in files] == ["part0", "part1"], files
    rejected = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(rejected) == summary["rejected"] > 0
    good = [
        demo_data.desired_row(i)
        for i in range(20)
        if demo_data.desired_row(i)["billing_provider"] == "stripe"
    ]
    assert active_state(emulator) == desired_state(good)


def test_window_bounds_reach_sql_only_as_timestamps() -> None:
    """The only run conf that reaches SQL is the window: refused unless a date-time, then re-printed."""
    import copy
    import importlib.util

    spec = importlib.util.spec_from_file_location("apm_sync_dag_window", REPO_DAGS / f"{SYNC_DAG}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for bad in ("2024-06-01' OR '1'='1", "2024-06-01T00:00:00Z; DROP TABLE t", "2024-06-01 00:00:00 --"):
        with pytest.raises(
            Exception, match="Invalid input for param window_start"
        ):  # Airflow refuses the run
            copy.deepcopy(module.dag.params).update({"window_start": bad})
        with pytest.raises(ValueError, match="window_start must be a date-time"):
            module._stamp(bad, "window_start")
    assert module._stamp("2024-06-01T02:00:00+02:00", "window_start") == "2024-06-01 00:00:00"
    assert module._stamp("2024-06-01", "window_end") == "2024-06-01 00:00:00"


# -- the results table (README, "The results table") --------------------------------------------


def _results(tmp_path: Path, view: bool = False) -> list[dict[str, Any]]:
    import sqlite3

    db = sqlite3.connect(tmp_path / "warehouse.db")
    db.row_factory = sqlite3.Row
    name = "metronome_sync_results" + ("_latest" if view else "")
    rows = [dict(r) for r in db.execute(f"SELECT * FROM {name} ORDER BY synced_at, row_number")]
    db.close()
    return rows


def _late_customer_data() -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
    """Six good rows updated on day 1; the customer of row 3 (keyed by alias) exists only later."""
    data = demo_data.build(6, with_bad_rows=False)
    rows = [demo_data.to_warehouse(demo_data.desired_row(i), DAY + timedelta(hours=i)) for i in range(6)]
    late = next(c for c in data.seed["customers"] if demo_data.alias(3) in c.get("ingest_aliases", []))
    data.seed["customers"] = [c for c in data.seed["customers"] if c is not late]
    return data, rows, late


@pytest.mark.usefixtures("avalara_conn")
def test_a_row_rejected_yesterday_is_synced_by_todays_run_once_its_customer_exists(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data, rows, late = _late_customer_data()
    reset_emulator(emulator, data)
    sqlite_warehouse(monkeypatch, tmp_path, rows)
    dag = example_dag(SYNC_DAG)

    day1 = dag.test(logical_date=DAY + timedelta(days=1), run_conf=day_window(1, max_rejected_rows=1))
    assert set(task_states(day1).values()) == {"success"}
    assert (xcom(day1, "summarize")["created"], xcom(day1, "summarize")["rejected"]) == (5, 1)
    rejected = [r for r in _results(tmp_path, view=True) if r["outcome"] == "rejected"]
    assert [(r["ingest_alias"], r["field"]) for r in rejected] == [(demo_data.alias(3), "ingest_alias")]

    emulator.admin("seed", {"customers": [late]})  # the customer is created in Metronome
    emulator.admin("requests", method="DELETE")
    day2 = example_dag(SYNC_DAG).test(logical_date=DAY + timedelta(days=2), run_conf=day_window(2))
    summary = xcom(day2, "summarize")
    assert (summary["rows_read"], summary["created"], summary["rejected"]) == (1, 1, 0), (
        "day 2's window holds no row: only the carried-over one is read, and synced"
    )
    assert active_state(emulator) == desired_state([demo_data.desired_row(i) for i in range(6)])
    latest = {r["row_key"]: r for r in _results(tmp_path, view=True)}
    assert len(latest) == 6
    assert {r["outcome"] for r in latest.values()} == {"created"}
    configs = {c["id"] for c in emulator.admin("state")["billing_provider_configurations"]}
    assert {r["configuration_id"] for r in latest.values()} == configs

    emulator.admin("requests", method="DELETE")
    again = example_dag(SYNC_DAG).test(logical_date=DAY + timedelta(days=3), run_conf={"full_refresh": True})
    summary = xcom(again, "summarize")
    assert (summary["unchanged"], summary["settled_by_ledger"], summary["api_calls"]) == (6, 6, 1)
    calls = [r["operation"] for r in emulator.admin("requests")["data"]]
    assert "getCustomerBillingProviderConfigurations" not in calls
    # The sync's one call, then the Avalara step's own (it re-checks its delivery methods).
    assert calls == [
        "listConfiguredBillingProviders",
        "listConfiguredBillingProviders",
        "upsertAvalaraCredentials",
    ]


@pytest.mark.usefixtures("avalara_conn")
def test_a_results_table_the_warehouse_refuses_fails_the_task_after_metronome_is_written(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sqlite3

    data = demo_data.build(6, with_bad_rows=False)
    rows = [demo_data.to_warehouse(demo_data.desired_row(i), DAY + timedelta(hours=i)) for i in range(6)]
    reset_emulator(emulator, data)
    sqlite_warehouse(monkeypatch, tmp_path, rows)
    from airflow_provider_metronome.sync.ledger import COLUMNS

    db = sqlite3.connect(tmp_path / "warehouse.db")
    db.execute(f"CREATE TABLE metronome_sync_results ({', '.join(f'[{c}]' for c in COLUMNS)})")
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON metronome_sync_results "
        "BEGIN SELECT RAISE(ABORT, 'the warehouse is read-only today'); END"
    )
    db.commit()

    dr = example_dag(SYNC_DAG).test(logical_date=DAY + timedelta(days=1))
    states = task_states(dr)
    assert states["sync_billing_configs[0]"] == "failed"
    assert len(active_state(emulator)) == 6, "Metronome was written before the results table failed"
    summary = xcom(dr, "sync_billing_configs", map_index=0)
    assert (summary["created"], summary["results_written"]) == (6, 0), "the summary is kept for the UI"

    db.execute("DROP TRIGGER refuse")
    db.execute("DROP TABLE metronome_sync_results")
    db.commit()
    db.close()
    dr = example_dag(SYNC_DAG).test(logical_date=DAY + timedelta(days=2))
    assert set(task_states(dr).values()) == {"success"}
    summary = xcom(dr, "summarize")
    assert (summary["created"], summary["unchanged"]) == (0, 6), "no duplicate: the next run converges"
    assert {r["outcome"] for r in _results(tmp_path)} == {"unchanged"}


def test_scheduled_runs_verify_weekly_and_any_run_can_ask() -> None:
    import importlib.util
    from types import SimpleNamespace

    from tests.airflow_support import REPO_DAGS as dags

    spec = importlib.util.spec_from_file_location("sync_dag_module", dags / f"{SYNC_DAG}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sunday, monday = datetime(2024, 6, 2, tzinfo=UTC), datetime(2024, 6, 3, tzinfo=UTC)

    def verify(run_type: str, end: datetime, asked: bool = False) -> bool:
        context = {"dag_run": SimpleNamespace(run_type=run_type), "data_interval_end": end}
        return bool(module._verify({"verify": asked}, context))

    assert module.VERIFY_WEEKDAY == 6
    assert verify("scheduled", sunday) is True
    assert verify("scheduled", monday) is False
    assert verify("backfill", sunday) is False, "a backfill of old days does not re-read everything"
    assert verify("manual", monday, asked=True) is True
