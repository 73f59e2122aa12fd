"""Runs triggered through the REST API of the real deployment."""

from __future__ import annotations

import hashlib
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
    # The emulator keeps only a digest: the password sent is the connection's.
    assert stripe["avalara_password_sha256"] == hashlib.sha256(harness.AVALARA_PASSWORD.encode()).hexdigest()
