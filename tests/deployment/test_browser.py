"""The Airflow 3 UI of the real deployment, in Debian's chromium driven by Playwright.

Locators follow the UI's roles and texts (React + Chakra UI); DAG params are found by the
``name="element_<param>"`` Airflow gives their inputs. Every test's ``page`` fixture also
checks that no visited page nor API response showed the API token or the Avalara password.
"""

from __future__ import annotations

import contextlib
import re
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.deployment import harness, scenarios

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Locator, Page

    from tests.deployment.conftest import Visits
    from tests.deployment.harness import Deployment

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(300)]

DAG = harness.SYNC_DAG
TASKS = (
    "plan_partitions",
    "sync_billing_configs",
    "summarize",
    "avalara_delivery_methods",
    "upsert_avalara_credentials",
)


def _q(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


def _settle(page: Page) -> None:
    """Let the page's API calls finish (the UI keeps polling only while something runs)."""
    with contextlib.suppress(PlaywrightError):
        page.wait_for_load_state("networkidle", timeout=4_000)


def _dialog_screenshot(page: Page, dialog: Locator, path: Path) -> None:
    """Screenshot a whole dialog, however tall (a taller viewport for the moment)."""
    size = page.viewport_size or {"width": 1400, "height": 1000}
    box = dialog.bounding_box()
    height = int(box["height"]) + 200 if box else size["height"]
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    try:
        dialog.screenshot(path=str(path))
    finally:
        page.set_viewport_size(size)


def _add_connection_form(page: Page, conn_type: str) -> Locator:
    page.goto("/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox", name="Connection Type").fill(conn_type.split()[0])
    page.get_by_role("option", name=conn_type, exact=True).click()
    return dialog


def _empty_required_inputs(dialog: Locator) -> list[str]:
    """Names of the dialog's required inputs that are empty: why a form's submit button is disabled."""
    names: list[str] = dialog.locator("input[required]").evaluate_all(
        "els => els.filter(e => e.type !== 'checkbox' && e.value === '').map(e => e.name || e.id)"
    )
    return names


def test_metronome_connection_form(page: Page, visits: Visits, screenshot_dir: Path) -> None:
    dialog = _add_connection_form(page, "Metronome")

    for label in ("Base URL", "API token"):
        expect(dialog.get_by_label(label, exact=True)).to_be_visible()
    for hidden in ("Login", "Port", "Schema", "Host", "Password"):
        expect(dialog.get_by_label(hidden, exact=True)).to_have_count(0)
    visits.record(page)
    _dialog_screenshot(page, dialog, screenshot_dir / "connection-form-metronome.png")

    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for label in ("Timeout (seconds)", "Max retries", "Max total retry wait (seconds)"):
        expect(dialog.get_by_label(label, exact=True)).to_be_visible()
    visits.record(page)
    _dialog_screenshot(page, dialog, screenshot_dir / "connection-form-metronome-extra-fields.png")


def test_avalara_connection_form(page: Page, visits: Visits) -> None:
    dialog = _add_connection_form(page, "Avalara (Metronome tax credentials)")

    for label in ("Avalara username", "Avalara password"):
        expect(dialog.get_by_label(label, exact=True)).to_be_visible()
    for hidden in ("Host", "Port", "Schema", "Login", "Password"):
        expect(dialog.get_by_label(hidden, exact=True)).to_have_count(0)
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for label in ("Avalara environment", "Commit transactions"):
        expect(dialog.get_by_text(label, exact=True)).to_be_visible()
    visits.record(page)


def _open_trigger_form(page: Page) -> Locator:
    page.goto(f"/dags/{DAG}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Run Parameters")).to_be_visible()
    return dialog


def test_trigger_form_defaults_trigger_a_run_that_syncs(
    page: Page, fresh: Deployment, visits: Visits, screenshot_dir: Path
) -> None:
    # Updated yesterday (UTC): a UI run (logical date now) reads them whether it reads its
    # data interval or every row.
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    rows = scenarios.rows_over_days(40, [yesterday])
    fresh.write_warehouse(rows)
    dialog = _open_trigger_form(page)

    def param(name: str) -> Locator:
        return dialog.locator(f'[name="element_{name}"]')

    # What the run reads and writes is the DAG author's: no field for it (README, "Who chooses what").
    for author_setting in ("warehouse_conn_id", "source_table", "source_sql", "rejects_path"):
        expect(param(author_setting)).to_have_count(0)
    expect(param("partitions")).to_have_value("1")
    expect(param("mode")).to_have_value("create_missing")
    expect(param("full_refresh")).not_to_be_checked()
    expect(param("dry_run")).not_to_be_checked()
    visits.record(page)
    _dialog_screenshot(page, dialog, screenshot_dir / "trigger-form.png")

    trigger = dialog.get_by_role("button", name="Trigger", exact=True)
    try:
        expect(trigger).to_be_enabled(timeout=10_000)
    except AssertionError:
        pytest.fail(
            "The Trigger button is DISABLED with the DAG's defaults (nothing typed): the form treats these "
            f"empty params as required: {_empty_required_inputs(dialog)}",
            pytrace=False,
        )
    known = {r["dag_run_id"] for r in fresh.runs(DAG)}
    trigger.click()
    page.wait_for_url(re.compile(r"/runs/"))
    new = [r["dag_run_id"] for r in fresh.runs(DAG) if r["dag_run_id"] not in known]
    assert len(new) == 1, f"one run expected from the trigger form, got {new}"

    states = fresh.wait_for_runs(DAG, new)
    assert states[new[0]] == "success", fresh.task_instances(DAG, new[0])
    report = scenarios.compare(fresh.emulator, rows)
    if not report.exact:
        pytest.fail(
            f"the final Metronome state is not exactly the desired one\n{report.describe()}", pytrace=False
        )


def test_backfill_form_defaults_are_accepted(page: Page, visits: Visits, screenshot_dir: Path) -> None:
    dialog = _open_trigger_form(page)
    dialog.get_by_text("Backfill", exact=True).click()
    button = dialog.get_by_role("button", name="Run Backfill")
    expect(button).to_be_visible()
    for i, day in enumerate(("2024/03/01", "2024/03/02")):
        page.get_by_test_id("datetime-input").nth(i).click()
        picker = page.get_by_role("dialog").last
        picker.get_by_placeholder("YYYY/MM/DD").fill(day)
        picker.get_by_placeholder("HH:mm").fill("00:00")
        page.keyboard.press("Escape")
        # The date picker is a dialog too, still on the page while it fades out.
        expect(page.get_by_role("dialog")).to_have_count(1)
    expect(dialog.get_by_text(re.compile(r"\b2 runs? will be triggered"))).to_be_visible()
    visits.record(page)
    _dialog_screenshot(page, dialog, screenshot_dir / "backfill-form.png")

    try:
        expect(button).to_be_enabled(timeout=10_000)
    except AssertionError:
        pytest.fail(
            "Run Backfill is DISABLED with the DAG's default params and a date range: the form treats these "
            f"empty params as required: {_empty_required_inputs(dialog)}",
            pytrace=False,
        )


def test_run_grid_and_task_log(
    page: Page, deployment: Deployment, synced_run: str, visits: Visits, screenshot_dir: Path
) -> None:
    run = _q(synced_run)
    page.goto(f"/dags/{DAG}/runs/{run}")
    for task in TASKS:
        expect(page.get_by_role("link", name=re.compile(rf"^{task}")).first).to_be_visible()
    expect(page.get_by_text("Success").first).to_be_visible()
    _settle(page)
    visits.record(page)
    page.screenshot(path=str(screenshot_dir / "dag-run-grid.png"))

    page.goto(f"/dags/{DAG}/runs/{run}/tasks/sync_billing_configs/mapped/0")
    expect(page.get_by_text(re.compile(r"\bINFO\b")).first).to_be_visible()
    _settle(page)
    visits.record(page)
    page.screenshot(path=str(screenshot_dir / "task-log.png"))


def test_metronome_extra_link(
    page: Page, deployment: Deployment, synced_run: str, visits: Visits, screenshot_dir: Path
) -> None:
    run = _q(synced_run)
    links = deployment.api(
        "GET", f"/dags/{DAG}/dagRuns/{run}/taskInstances/sync_billing_configs/links?map_index=0"
    )
    assert "Metronome" in links["extra_links"], f"the sync task declares no Metronome link: {links}"
    href = links["extra_links"]["Metronome"]

    # The task instance's Details tab lists its extra links.
    with page.expect_response(lambda r: "/taskInstances/sync_billing_configs/links" in r.url):
        page.goto(f"/dags/{DAG}/runs/{run}/tasks/sync_billing_configs/mapped/0/details")
    expect(page.get_by_text("Operator").first).to_be_visible()
    button = page.get_by_role("link", name="Metronome", exact=True)
    if href:
        expect(button).to_be_visible()
        expect(button).to_have_attribute("href", href)
        button.hover()
    else:
        # No Metronome app for this (non-production) API: no button.
        expect(button).to_have_count(0)
    _settle(page)
    visits.record(page)
    page.screenshot(path=str(screenshot_dir / "extra-link.png"))
    assert "/_emulator/" not in (href or ""), f"the Metronome button opens the emulator's state dump: {href}"


def test_pages_show_no_secrets(page: Page, deployment: Deployment, synced_run: str, visits: Visits) -> None:
    run = _q(synced_run)
    avalara_runs = [r for r in deployment.runs(harness.AVALARA_DAG) if r["state"] == "success"]
    assert avalara_runs, "synced_run runs the Avalara DAG too"
    avalara = _q(avalara_runs[-1]["dag_run_id"])
    sync_ti = f"/dags/{DAG}/runs/{run}/tasks"
    urls = [
        "/connections",
        f"{sync_ti}/sync_billing_configs/mapped/0",
        f"{sync_ti}/sync_billing_configs/mapped/0/rendered_templates",
        f"{sync_ti}/sync_billing_configs/mapped/0/details",
        f"{sync_ti}/upsert_avalara_credentials",
        f"{sync_ti}/upsert_avalara_credentials/rendered_templates",
        f"/dags/{harness.AVALARA_DAG}/runs/{avalara}/tasks/upsert_avalara_credentials",
        f"/dags/{harness.AVALARA_DAG}/runs/{avalara}/tasks/upsert_avalara_credentials/rendered_templates",
        "/xcoms",
        "/events",
    ]
    for url in urls:
        page.goto(url)
        _settle(page)
        visits.record(page)
    assert len(visits.pages) == len(urls)
    assert not visits.leaks(), visits.leaks()
