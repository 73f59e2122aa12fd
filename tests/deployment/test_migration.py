"""The migration DAG on the real deployment: a person reads the plan, then rejects or approves it.

The approval step (Airflow's human-in-the-loop ApprovalOperator) is answered through the
REST API the UI uses (``PATCH .../taskInstances/{task}/{map_index}/hitlDetails``).
"""

from __future__ import annotations

import contextlib
import re
import time
import urllib.parse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from scripts import demo_data
from tests.deployment import harness

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Page

    from tests.deployment.conftest import Visits
    from tests.deployment.harness import Deployment

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(420)]

EXISTING = 40
NEW = 6
APPROVE = "approve_migration"


def _rows() -> list[dict[str, Any]]:
    rows = [demo_data.desired_row(i) for i in range(EXISTING)]
    rows += [r for k in range(NEW) for r in demo_data.new_customer_rows(k)]
    stamp = datetime(2024, 6, 1, tzinfo=UTC)
    return [demo_data.to_warehouse(r, stamp) for r in rows]


def _hitl_path(run_id: str) -> str:
    run = urllib.parse.quote(run_id, safe="")
    return f"/dags/{harness.MIGRATION_DAG}/dagRuns/{run}/taskInstances/{APPROVE}/-1/hitlDetails"


def _wait_for_question(dep: Deployment, run_id: str, timeout: float = 180) -> dict[str, Any]:
    """The approval's details, once the task waits for an answer and the scheduler knows it.

    Airflow 3.3 race, met here only because a test answers within milliseconds: an answer
    given before the scheduler has processed the executor's event for the paused try makes
    the scheduler see that event for a task already queued again, and it marks the task
    up_for_retry (the retry then asks again). A person takes seconds; the test waits for
    the scheduler's "TaskInstance Finished ... state=awaiting_input" line instead.
    """
    deadline = time.monotonic() + timeout
    finished = f"task_id={APPROVE}, run_id={run_id},"
    while time.monotonic() < deadline:
        dep.check_alive()
        states = dep.task_states(harness.MIGRATION_DAG, run_id)
        if states.get(APPROVE) in ("awaiting_input", "deferred"):
            log = (dep.log_dir / "scheduler.log").read_text(errors="replace")
            if any(finished in line and "state=awaiting_input" in line for line in log.splitlines()):
                detail: dict[str, Any] = dep.api("GET", _hitl_path(run_id))
                return detail
        failed = {t: s for t, s in states.items() if s in ("failed", "upstream_failed", "up_for_retry")}
        assert not failed, f"the run failed before asking: {states}\n{dep.log_tails()}"
        time.sleep(1)
    raise harness.DeploymentError(f"{APPROVE} never waited for an answer\n{dep.log_tails()}")


def _customers(dep: Deployment) -> list[dict[str, Any]]:
    customers: list[dict[str, Any]] = dep.emulator.admin("state")["customers"]
    return customers


def test_a_rejected_plan_writes_nothing_and_an_approved_one_migrates_once(fresh: Deployment) -> None:
    fresh.write_warehouse(_rows())
    before = _customers(fresh)
    configs_before = fresh.emulator.admin("state")["billing_provider_configurations"]
    new_rows = sum(len(demo_data.new_customer_rows(k)) for k in range(NEW))

    # 1. The person reads the plan and rejects it: nothing is written.
    rejected = fresh.trigger(harness.MIGRATION_DAG, {})
    question = _wait_for_question(fresh, rejected)
    assert question["subject"].startswith(
        f"Create {NEW} customer(s) and {EXISTING + new_rows} billing configuration(s)"
    ), question["subject"]
    assert demo_data.new_customer_rows(0)[0]["customer_name"] in question["body"]
    assert question["options"] == ["Approve", "Reject"]
    assert _customers(fresh) == before, "the plan wrote nothing"
    fresh.api("PATCH", _hitl_path(rejected), {"chosen_options": ["Reject"]})
    fresh.wait_for_runs(harness.MIGRATION_DAG, [rejected])
    states = fresh.task_states(harness.MIGRATION_DAG, rejected)
    assert states[APPROVE] == "success", states
    # Reject skips everything after it (migrate is not expanded yet: one unmapped instance).
    after_approval = {t: s for t, s in states.items() if t.split("[")[0] in ("migrate", "summarize")}
    assert set(after_approval.values()) == {"skipped"}, states
    assert _customers(fresh) == before
    assert fresh.emulator.admin("state")["billing_provider_configurations"] == configs_before

    # 2. Approved: each new customer created once, every configuration once.
    approved = fresh.trigger(harness.MIGRATION_DAG, {})
    _wait_for_question(fresh, approved)
    fresh.api("PATCH", _hitl_path(approved), {"chosen_options": ["Approve"]})
    assert fresh.wait_for_runs(harness.MIGRATION_DAG, [approved]) == {approved: "success"}, fresh.task_states(
        harness.MIGRATION_DAG, approved
    )
    after = _customers(fresh)
    assert len(after) == len(before) + NEW
    by_alias = {a: c for c in after for a in c["ingest_aliases"]}
    active = [
        c for c in fresh.emulator.admin("state")["billing_provider_configurations"] if not c["archived_at"]
    ]
    for k in range(NEW):
        rows = demo_data.new_customer_rows(k)
        made = by_alias[demo_data.new_alias(k)]
        assert made["name"] == rows[0]["customer_name"]
        assert made["custom_fields"] == rows[0]["custom_fields"]
        mine = sorted(c["billing_provider"] for c in active if c["customer_id"] == made["id"])
        assert mine == sorted(r["billing_provider"] for r in rows)
    assert len(active) == EXISTING + new_rows

    # 3. Run again without approval: nothing left to do, nothing touched.
    again = fresh.trigger(harness.MIGRATION_DAG, {"require_approval": False})
    assert fresh.wait_for_runs(harness.MIGRATION_DAG, [again]) == {again: "success"}
    assert _customers(fresh) == after
    assert [
        c for c in fresh.emulator.admin("state")["billing_provider_configurations"] if not c["archived_at"]
    ] == (active)


def test_a_person_reads_the_plan_in_the_ui_and_rejects_it(
    page: Page, fresh: Deployment, visits: Visits, screenshot_dir: Path
) -> None:
    fresh.write_warehouse(_rows())
    before = _customers(fresh)
    run_id = fresh.trigger(harness.MIGRATION_DAG, {})
    _wait_for_question(fresh, run_id)

    run = urllib.parse.quote(run_id, safe="")
    page.goto(f"/dags/{harness.MIGRATION_DAG}/runs/{run}/tasks/{APPROVE}/required_actions")
    expect(page.get_by_text(re.compile(rf"Create {NEW} customer\(s\)")).first).to_be_visible()
    # The body is Markdown: the table of the first customers to create, the counts.
    expect(page.get_by_text(demo_data.new_customer_rows(0)[0]["customer_name"]).first).to_be_visible()
    expect(page.get_by_text("new-000-eu").first).to_be_visible()
    with contextlib.suppress(PlaywrightError):
        page.wait_for_load_state("networkidle", timeout=4_000)
    visits.record(page)
    page.screenshot(path=str(screenshot_dir / "migration-approval.png"), full_page=True)

    page.get_by_role("button", name="Reject", exact=True).click()
    assert fresh.wait_for_runs(harness.MIGRATION_DAG, [run_id]) == {run_id: "success"}
    states = fresh.task_states(harness.MIGRATION_DAG, run_id)
    assert states[APPROVE] == "success", states
    assert {s for t, s in states.items() if t.split("[")[0] in ("migrate", "summarize")} == {"skipped"}, (
        states
    )
    assert _customers(fresh) == before, "a rejected plan writes nothing"
