"""Overlapping runs on the real deployment: backfills, manual full refreshes, partitions.

Airflow 3 backfills do not count against the DAG's ``max_active_runs`` (a backfill has its
own, 10 by default), so ``airflow backfill create`` with default options runs several
dates at once, next to any manual run. Whatever overlaps, every desired configuration
must end up active exactly once.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.deployment import harness, scenarios

if TYPE_CHECKING:
    from tests.deployment.harness import Deployment

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(420)]

CUSTOMERS = 180
REPEATED = 30  # customers whose identical row is updated on two different days
LATENCY_MS = 250


def _assert_exact(dep: Deployment, rows: list[dict[str, Any]], runs: dict[str, str], what: str) -> None:
    report = scenarios.compare(dep.emulator, rows)
    # The figures, for the record (pytest -s, or the CI log on failure).
    print(f"{what}: {len(runs)} runs; " + report.describe().splitlines()[0].replace("\n", " ")
          + f"; duplicates {sum(n - 1 for n in report.duplicates.values())}, missing {len(report.missing)}, "
          f"unexpected {len(report.unexpected)}")  # fmt: skip
    if not report.exact:
        pytest.fail(
            f"{what}: the final Metronome state is not exactly the desired one\n{report.describe()}\n"
            f"runs: {json.dumps(runs, indent=1)}",
            pytrace=False,
        )


def _wait_for_backfills_completed(dep: Deployment, timeout: float = 90) -> None:
    """Wait until Airflow has marked every earlier backfill of the DAG completed.

    A DAG has one backfill at a time ("AlreadyRunningBackfill"), and the scheduler marks a
    finished backfill completed only every 30 s: a second ``backfill create`` right after
    the first one's runs ended is refused, as a user doing the same would be.
    """
    deadline = time.monotonic() + timeout
    while True:
        page = dep.api("GET", f"/backfills?dag_id={harness.SYNC_DAG}&limit=100")
        open_ = [b["id"] for b in page["backfills"] if not b.get("completed_at")]
        if not open_:
            return
        assert time.monotonic() < deadline, f"backfills {open_} not marked completed after {timeout:.0f}s"
        time.sleep(1)


def _backfill_with_manual_full_refresh(
    dep: Deployment, first: str, last: str, conf: dict[str, Any]
) -> dict[str, str]:
    """``airflow backfill create`` (default options) and, once its runs exist, a manual run with ``conf``."""
    _wait_for_backfills_completed(dep)
    known = {r["dag_run_id"] for r in dep.runs(harness.SYNC_DAG)}
    cli = subprocess.Popen(
        [harness.AIRFLOW, "backfill", "create", "--dag-id", harness.SYNC_DAG, "--from-date", first, "--to-date", last],
        env=dep.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        # The CLI creates the backfill and all its runs in one transaction.
        while not [
            r
            for r in dep.runs(harness.SYNC_DAG)
            if r["dag_run_id"] not in known and r["run_type"] == "backfill"
        ]:
            assert cli.poll() in (None, 0), f"airflow backfill create failed:\n{cli.communicate()[0]}"
            assert time.monotonic() < deadline, "the backfill's runs did not appear within 120 s"
            time.sleep(0.2)
        manual = dep.trigger(harness.SYNC_DAG, conf)
        output, _ = cli.communicate(timeout=120)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, f"airflow backfill create failed:\n{output}"
    runs = dep.wait_for_runs(harness.SYNC_DAG, timeout=300)
    new = {k: v for k, v in runs.items() if k not in known}
    backfill_runs = [
        r["dag_run_id"]
        for r in dep.runs(harness.SYNC_DAG)
        if r["dag_run_id"] in new and r["run_type"] == "backfill"
    ]
    assert len(backfill_runs) == 3, f"expected 3 backfill runs, got {new}"
    assert manual in new
    return new


def test_backfill_overlapping_a_manual_full_refresh(fresh: Deployment) -> None:
    rows = scenarios.rows_over_days(CUSTOMERS, scenarios.day_range("2024-06-01", 3), repeated=REPEATED)
    fresh.write_warehouse(rows)
    fresh.emulator.admin("faults", {"latency_ms": LATENCY_MS})

    runs = _backfill_with_manual_full_refresh(fresh, "2024-06-01", "2024-06-03", {"full_refresh": True})

    _assert_exact(fresh, rows, runs, "backfill 2024-06-01..03 + manual full refresh")


def test_two_manual_full_refreshes_at_once(fresh: Deployment) -> None:
    rows = scenarios.rows_over_days(CUSTOMERS, scenarios.day_range("2024-06-10", 3), repeated=REPEATED)
    fresh.write_warehouse(rows)
    fresh.emulator.admin("faults", {"latency_ms": LATENCY_MS})
    barrier = threading.Barrier(2)
    run_ids: list[str] = []

    def trigger() -> None:
        barrier.wait()
        run_ids.append(fresh.trigger(harness.SYNC_DAG, {"full_refresh": True}))

    threads = [threading.Thread(target=trigger) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(run_ids) == 2, "both triggers must be accepted"
    runs = fresh.wait_for_runs(harness.SYNC_DAG, run_ids, timeout=300)

    _assert_exact(fresh, rows, runs, "two manual full refreshes triggered together")


def test_backfill_overlapping_a_partitioned_full_refresh(fresh: Deployment) -> None:
    rows = scenarios.rows_over_days(CUSTOMERS, scenarios.day_range("2024-07-01", 3), repeated=REPEATED)
    fresh.write_warehouse(rows)
    fresh.emulator.admin("faults", {"latency_ms": LATENCY_MS})

    runs = _backfill_with_manual_full_refresh(
        fresh, "2024-07-01", "2024-07-03", {"full_refresh": True, "partitions": 3}
    )

    _assert_exact(fresh, rows, runs, "backfill 2024-07-01..03 + manual full refresh with 3 partitions")
