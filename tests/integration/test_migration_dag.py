"""The migration example DAG (``metronome_customer_migration``), run for real with dag.test().

The approval step waits for a person: the deployment suite approves and rejects it through
Airflow's REST API (tests/deployment/test_migration.py); here it is switched off by its param.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from scripts import demo_data
from tests.airflow_support import example_dag, reset_emulator, sqlite_warehouse, task_states, xcom

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_metronome.emulator.testing import RunningEmulator

pytestmark = pytest.mark.usefixtures("airflow_db", "metronome_conn", "avalara_conn")

DAG_ID = "metronome_customer_migration"
STAMP = datetime(2024, 6, 1, tzinfo=UTC)
EXISTING = 12
NEW = 5  # customers only the warehouse knows; the even ones have two rows (stripe + netsuite)
NO_APPROVAL = {"require_approval": False}


def _table(extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    rows = [demo_data.desired_row(i) for i in range(EXISTING)]
    rows += [r for k in range(NEW) for r in demo_data.new_customer_rows(k)]
    rows += extra or []
    return [demo_data.to_warehouse(r, STAMP + timedelta(minutes=i)) for i, r in enumerate(rows)]


def _customers(emu: RunningEmulator) -> dict[str, dict[str, Any]]:
    """Customers by their first ingest alias."""
    return {c["ingest_aliases"][0]: c for c in emu.admin("state")["customers"] if c["ingest_aliases"]}


def _configs(emu: RunningEmulator) -> list[dict[str, Any]]:
    return [c for c in emu.admin("state")["billing_provider_configurations"] if not c["archived_at"]]


def test_a_migration_creates_each_missing_customer_once_and_a_rerun_touches_nothing(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reset_emulator(emulator, demo_data.build(EXISTING))
    sqlite_warehouse(monkeypatch, tmp_path, _table())
    dr = example_dag(DAG_ID).test(run_conf=NO_APPROVAL)
    states = task_states(dr)
    assert states.pop("approve_migration", "skipped") == "skipped", "require_approval off skips it"
    assert set(states.values()) == {"success"}, states

    summary = xcom(dr, "summarize")
    new_rows = sum(len(demo_data.new_customer_rows(k)) for k in range(NEW))
    assert (summary["customers_created"], summary["created"], summary["rejected"]) == (
        NEW,
        EXISTING + new_rows,
        0,
    )
    customers = _customers(emulator)
    assert len(emulator.admin("state")["customers"]) == EXISTING + NEW
    for k in range(NEW):
        first = demo_data.new_customer_rows(k)[0]
        made = customers[demo_data.new_alias(k)]
        assert made["name"] == first["customer_name"]
        assert sorted(made["ingest_aliases"]) == sorted(first["ingest_aliases"])
        assert made["custom_fields"] == first["custom_fields"]
        mine = sorted(c["billing_provider"] for c in _configs(emulator) if c["customer_id"] == made["id"])
        assert mine == sorted(r["billing_provider"] for r in demo_data.new_customer_rows(k))
    assert len(_configs(emulator)) == EXISTING + new_rows

    # The plan described what the migration then did, for the person approving it.
    described = xcom(dr, "describe_plan", key="subject")
    assert described.startswith(
        f"Create {NEW} customer(s) and {EXISTING + new_rows} billing configuration(s)"
    )
    body = xcom(dr, "describe_plan", key="body")
    assert demo_data.new_customer_rows(0)[0]["customer_name"] in body
    assert "`new-000`, `new-000-eu`" in body

    # Run 2: the same table. Nothing created, no customer touched.
    state_before = emulator.admin("state")
    again = example_dag(DAG_ID).test(run_conf=NO_APPROVAL)
    summary = xcom(again, "summarize")
    assert (summary["customers_created"], summary["created"], summary["aliases_added"]) == (0, 0, 0)
    assert summary["unchanged"] == EXISTING + new_rows
    after = emulator.admin("state")
    assert after["customers"] == state_before["customers"]
    assert after["billing_provider_configurations"] == state_before["billing_provider_configurations"]


def test_the_plan_shows_rejections_and_changes_nothing_when_the_migration_fails(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A row without customer_name is rejected: the plan lists it; the migrate task fails after
    migrating the good rows (max_rejected_rows 0), naming the row and the column."""
    nameless = {**demo_data.new_customer_rows(9)[0], "ingest_alias": "new-nameless", "customer_name": None}
    nameless["ingest_aliases"] = ["new-nameless"]
    reset_emulator(emulator, demo_data.build(EXISTING))
    sqlite_warehouse(monkeypatch, tmp_path, _table([nameless]))
    dr = example_dag(DAG_ID).test(run_conf=NO_APPROVAL)
    states = task_states(dr)
    assert states["plan_migration[0]"] == "success", "the plan shows rejections, it does not fail on them"
    assert states["migrate[0]"] == "failed"
    body = xcom(dr, "describe_plan", key="body")
    assert "1** row(s) rejected" in body
    assert "new-nameless" in body
    assert "customer\\_name" in body
    assert "new-nameless" not in _customers(emulator)
    assert len(emulator.admin("state")["customers"]) == EXISTING + NEW, "the good rows were migrated"


def test_the_plan_alone_writes_nothing(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Stopped after the plan (as a Reject stops it), Metronome is as before. The source is
    the deployment's choice (METRONOME_MIGRATION_SOURCE_TABLE), not the sync DAG's table."""
    reset_emulator(emulator, demo_data.build(EXISTING))
    before = emulator.admin("state")
    sqlite_warehouse(monkeypatch, tmp_path, [])  # the sync DAG's table: empty
    demo_data.write_sqlite(str(tmp_path / "warehouse.db"), _table(), table="customers_to_migrate")
    monkeypatch.setenv("METRONOME_MIGRATION_SOURCE_TABLE", "customers_to_migrate")
    dag = example_dag(DAG_ID).partial_subset(task_ids=["describe_plan"], include_upstream=True)
    dr = dag.test(run_conf=NO_APPROVAL)
    assert set(task_states(dr).values()) == {"success"}
    plan = xcom(dr, "plan_migration", map_index=0)
    assert (plan["dry_run"], plan["customers_created"]) == (True, NEW)
    after = emulator.admin("state")
    assert after["customers"] == before["customers"]
    assert after["billing_provider_configurations"] == before["billing_provider_configurations"]


def test_a_run_conf_key_that_is_no_param_fails_before_anything_is_read(
    emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reset_emulator(emulator, demo_data.build(EXISTING))
    before = emulator.admin("state")
    sqlite_warehouse(monkeypatch, tmp_path, _table())
    dr = example_dag(DAG_ID).test(run_conf={"require_approval": False, "source_table": "other"})
    states = task_states(dr)
    assert states.pop("prepare") == "failed", states
    assert set(states.values()) <= {"upstream_failed", "skipped"}, states
    assert emulator.admin("state") == before


def test_every_param_has_a_default_and_explains_itself() -> None:
    dag = example_dag(DAG_ID)
    resolved = dag.params.validate()
    assert resolved == {
        "require_approval": True,
        "max_rejected_rows": 0,
        "max_concurrency": 48,
        "batch_size": 100,
    }
    for name in dag.params:
        assert len(dag.params.get_param(name).description or "") > 20, name
    assert all(t.doc_md for t in dag.tasks), "every task explains itself in the UI"
    assert json.dumps(resolved)


def test_an_unanswered_approval_fails_after_three_days_and_writes_nothing() -> None:
    """No default option: past its response timeout the approval fails (Airflow's HITL
    semantics), so migrate and everything after it never run."""
    approve = example_dag(DAG_ID).get_task("approve_migration")
    assert approve.response_timeout == timedelta(days=3)
    assert approve.defaults is None
    assert approve.options == ["Approve", "Reject"]
    assert approve.ignore_downstream_trigger_rules, "Reject skips migrate whatever its trigger rule"
