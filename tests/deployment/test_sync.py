"""Runs triggered through the REST API of the real deployment."""

from __future__ import annotations

import json
import urllib.parse
from typing import TYPE_CHECKING

import pytest

from scripts import demo_data
from tests.deployment import harness, scenarios

if TYPE_CHECKING:
    from tests.deployment.harness import Deployment

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(420)]


def test_rest_triggered_full_refresh_syncs_every_row(fresh: Deployment) -> None:
    rows = scenarios.rows_over_days(150, scenarios.day_range("2024-05-01", 3))
    fresh.write_warehouse(rows)

    run_id = fresh.trigger(harness.SYNC_DAG, {"full_refresh": True})
    states = fresh.wait_for_runs(harness.SYNC_DAG, [run_id])

    assert states[run_id] == "success", fresh.task_instances(harness.SYNC_DAG, run_id)
    report = scenarios.compare(fresh.emulator, rows)
    if not report.exact:
        pytest.fail(
            f"the final Metronome state is not exactly the desired one\n{report.describe()}", pytrace=False
        )
    # Rows asking for tax_provider=avalara: the run's last task set the credentials.
    assert demo_data.STRIPE_DM in fresh.emulator.admin("state")["avalara_credentials"]

    # One summary XCom per task: no key-by-key fan-out, no second copy.
    assert _xcom_keys(fresh, run_id, "summarize", -1) == ["return_value"]
    assert _xcom_keys(fresh, run_id, "sync_billing_configs", 0) == ["_link_MetronomeLink", "return_value"]
    # The run's summary line is in the main log group, not folded into "Post Execute".
    events = _log_events(fresh, run_id, "summarize")
    summary = [i for i, e in enumerate(events) if e.startswith("Metronome sync: 150 rows read")]
    assert summary, events
    post = [i for i, e in enumerate(events) if "::group::Post Execute" in e]
    assert not post or summary[0] < post[0], events


def _xcom_keys(dep: Deployment, run_id: str, task_id: str, map_index: int) -> list[str]:
    run = urllib.parse.quote(run_id, safe="")
    page = dep.api(
        "GET",
        f"/dags/{harness.SYNC_DAG}/dagRuns/{run}/taskInstances/{task_id}/xcomEntries?map_index={map_index}",
    )
    return sorted(str(e["key"]) for e in page["xcom_entries"])


def _log_events(dep: Deployment, run_id: str, task_id: str) -> list[str]:
    """The task's log lines (try 1) as the UI gets them, in order."""
    run = urllib.parse.quote(run_id, safe="")
    body = dep.api("GET", f"/dags/{harness.SYNC_DAG}/dagRuns/{run}/taskInstances/{task_id}/logs/1")
    content = body.get("content", []) if isinstance(body, dict) else body
    if isinstance(content, str):
        return content.splitlines()
    return [str(e.get("event", "")) if isinstance(e, dict) else str(e) for e in content]


def test_avalara_credentials_dag_sets_the_connection_credentials(fresh: Deployment) -> None:
    assert fresh.emulator.admin("state")["avalara_credentials"] == {}

    run_id = fresh.trigger(harness.AVALARA_DAG, {"billing_provider": "stripe"})
    states = fresh.wait_for_runs(harness.AVALARA_DAG, [run_id])

    assert states[run_id] == "success", fresh.task_instances(harness.AVALARA_DAG, run_id)
    credentials = fresh.emulator.admin("state")["avalara_credentials"]
    assert set(credentials) == {demo_data.STRIPE_DM}
    stripe = credentials[demo_data.STRIPE_DM]
    assert stripe["avalara_username"] == harness.AVALARA_USER
    assert stripe["avalara_environment"] == "SANDBOX"
    assert stripe["commit_transactions"] is True
    # The emulator shows no password, nor any digest of it: ask it whether the one sent is the connection's.
    assert stripe["avalara_password"] == "<set>"
    check = {"kind": "avalara_password", "delivery_method_id": demo_data.STRIPE_DM}
    assert fresh.emulator.admin("check-secret", {**check, "value": harness.AVALARA_PASSWORD})["match"] is True


def test_run_conf_cannot_reach_past_the_dag(fresh: Deployment) -> None:
    """A REST trigger naming a file, a query and a connection: the run fails first thing and says why."""
    fresh.write_warehouse(scenarios.rows_over_days(10, scenarios.day_range("2024-05-01", 1)))
    victim = fresh.home / "someone-elses-file.txt"
    victim.write_text("keep me\n")
    conf = {
        "full_refresh": True,
        "rejects_path": str(victim),
        "source_sql": "SELECT * FROM customer_billing_configs",
        "warehouse_conn_id": "metronome_default",
    }

    run_id = fresh.trigger(harness.SYNC_DAG, conf)  # Airflow accepts keys that are not params
    states = fresh.wait_for_runs(harness.SYNC_DAG, [run_id])

    assert states[run_id] == "failed"
    tis = {ti["task_id"]: ti["state"] for ti in fresh.task_instances(harness.SYNC_DAG, run_id)}
    assert tis.pop("plan_partitions") == "failed", tis
    assert set(tis.values()) == {"upstream_failed"}, tis
    assert victim.read_text() == "keep me\n"
    assert fresh.emulator.admin("state")["billing_provider_configurations"] == []
    # The task log, as the UI shows it, names the keys and where those settings live.
    run = urllib.parse.quote(run_id, safe="")
    log = json.dumps(
        fresh.api("GET", f"/dags/{harness.SYNC_DAG}/dagRuns/{run}/taskInstances/plan_partitions/logs/1")
    )
    assert (
        "Run conf key(s) 'rejects_path', 'source_sql', 'warehouse_conn_id' are DAG-author settings" in log
    ), log
