"""Run DAGs for real with ``dag.test()`` and read what Airflow stored."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sqlite3
import sys
import textwrap
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_metronome.emulator.testing import RunningEmulator

REPO_DAGS = Path(__file__).resolve().parents[1] / "dags"


def dags_folder() -> Path:
    return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def load_dag(path: Path, dag_id: str) -> Any:
    name = f"apm_test_dag_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for value in vars(module).values():
        if getattr(value, "dag_id", None) == dag_id and hasattr(value, "test"):
            return value
    raise AssertionError(f"{path} defines no DAG {dag_id!r}")


def write_dag(source: str, dag_id: str) -> Path:
    """Write a DAG file into the DAG bundle (replacing an older one of the same id)."""
    path = dags_folder() / f"{dag_id}.py"
    path.write_text(textwrap.dedent(source))
    return path


def run_dag(source: str, dag_id: str, **test_kwargs: Any) -> Any:
    """Write ``source`` as a DAG file, load it and run ``dag.test(**test_kwargs)``; return the DagRun."""
    path = write_dag(source, dag_id)
    return load_dag(path, dag_id).test(**test_kwargs)


def task_states(dag_run: Any) -> dict[str, str]:
    return {
        ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": str(ti.state)
        for ti in dag_run.get_task_instances()
    }


def _db() -> sqlite3.Connection:
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    return sqlite3.connect(url.removeprefix("sqlite:///"))


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    with _db() as db:
        row = db.execute(
            "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND key=? AND map_index=?",
            (dag_run.dag_id, dag_run.run_id, task_id, key, map_index),
        ).fetchone()
    if row is None:
        return None
    value = row[0]
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def xcom_keys(dag_run: Any, task_id: str, map_index: int = -1) -> list[str]:
    """The XCom keys one task instance stored."""
    with _db() as db:
        rows = db.execute(
            "SELECT key FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND map_index=? ORDER BY key",
            (dag_run.dag_id, dag_run.run_id, task_id, map_index),
        ).fetchall()
    return [key for (key,) in rows]


def all_xcom_text() -> str:
    with _db() as db:
        return "\n".join(str(v) for (v,) in db.execute("SELECT value FROM xcom"))


def all_rendered_fields_text() -> str:
    with _db() as db:
        return "\n".join(
            str(v) for (v,) in db.execute("SELECT rendered_fields FROM rendered_task_instance_fields")
        )


# -- the example DAGs against the emulator ------------------------------------------------------


def example_dag(dag_id: str) -> Any:
    """A fresh copy of the example DAG (module-level settings read the environment as it is now)."""
    target = dags_folder() / f"{dag_id}.py"
    shutil.copy(REPO_DAGS / f"{dag_id}.py", target)
    dag = load_dag(target, dag_id)
    if _DAG_TEST_SKIPS_THE_DAG_PROCESSOR:
        _register_like_the_dag_processor(target)
    return dag


# Airflow 3.0's dag.test() runs a DAG no dag-processor has seen: its assets are never
# activated, so a task with an outlet fails with AirflowInactiveAssetInInletOrOutletException
# (apache/airflow#51644; later 3.x parse the DAG bundle into the metadata DB first).
_DAG_TEST_SKIPS_THE_DAG_PROCESSOR = __import__("airflow").__version__.startswith("3.0.")


def _register_like_the_dag_processor(path: Path) -> None:
    """Write the DAG file's DAGs, assets and asset activations to the metadata DB, as the dag-processor does."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.dagbag import DagBag

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(path), bundle_path=dags_folder(), include_examples=False)
    assert bag.import_errors == {}, bag.import_errors
    bag.sync_to_db("dags-folder", None)


def sqlite_warehouse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` to a SQLite warehouse and point ``billing_warehouse`` at it."""
    from scripts import demo_data

    path = tmp_path / "warehouse.db"
    demo_data.write_sqlite(str(path), rows)
    monkeypatch.setenv(
        "AIRFLOW_CONN_BILLING_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)})
    )


def active_state(emu: RunningEmulator) -> list[tuple[str, str, str, str, str | None]]:
    """Active configurations, normalised for comparison."""
    return sorted(
        (c["customer_id"], c["billing_provider"], c["delivery_method_id"], json.dumps(c["configuration"], sort_keys=True),
         c.get("tax_provider"))
        for c in emu.admin("state")["billing_provider_configurations"]
        if not c["archived_at"]
    )  # fmt: skip


def desired_state(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str | None]]:
    """What the state must be for good rows made by scripts.demo_data."""
    from scripts import demo_data

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


def reset_emulator(emu: RunningEmulator, data: Any) -> None:
    emu.admin("reset", data.seed)


# -- a PostgreSQL warehouse (.ci/run starts the server) -----------------------------------------------


@contextlib.contextmanager
def postgres_schema(monkeypatch: pytest.MonkeyPatch, conn_id: str, prefix: str) -> Iterator[tuple[Any, str]]:
    """A fresh schema on the test server, and an Airflow connection ``conn_id`` to it; dropped after.

    Skips the test when ``METRONOME_TEST_POSTGRES_URL`` is not set.
    """
    url = os.environ.get("METRONOME_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRONOME_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server)")
    from urllib.parse import urlparse

    import psycopg2

    schema = f"{prefix}_{os.getpid()}"
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    parsed = urlparse(url)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "postgres", "host": parsed.hostname, "port": parsed.port,
                    "login": parsed.username, "schema": parsed.path.lstrip("/")}),
    )  # fmt: skip
    try:
        yield conn, schema
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()
