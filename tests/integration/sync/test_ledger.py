"""The results ledger end to end: engine + emulator over HTTP + a real SQL warehouse (common-sql hooks)."""

from __future__ import annotations

import json
import os
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_metronome.client import MetronomeClient, RetryPolicy
from airflow_provider_metronome.sync import BillingConfigSync, SyncOptions
from airflow_provider_metronome.sync.ledger import COLUMNS, ResultsTable, Spool, carry_over_condition
from airflow_provider_metronome.sync.sources import iter_query_rows
from tests import seeds
from tests.conftest import TOKEN

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_metronome.emulator.testing import RunningEmulator
    from airflow_provider_metronome.models.report import SyncReport

DIRECT = "direct_to_billing_provider"
NEWCO = "0c8b5a52-7c1e-4f0e-9a3b-0c1d2e3f4a55"


def stripe(alias: str, cus: str) -> dict[str, Any]:
    return {"ingest_alias": alias, "billing_provider": "stripe", "delivery_method": DIRECT,
            "configuration": json.dumps({"stripe_customer_id": cus})}  # fmt: skip


def aws(customer_id: str, acct: str) -> dict[str, Any]:
    return {
        "customer_id": customer_id, "billing_provider": "aws_marketplace", "delivery_method_id": seeds.AWS_DM,
        "configuration": json.dumps({"aws_customer_id": acct, "aws_product_code": "p1", "aws_region": "us-east-1"}),
    }  # fmt: skip


ROWS = [stripe("acme", "cus_A"), stripe("globex", "cus_G"), aws(seeds.INITECH, "aws-1")]


@pytest.fixture
def client(emulator: RunningEmulator) -> MetronomeClient:
    return MetronomeClient(emulator.url, TOKEN, retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.05))


def _sqlite_hook(monkeypatch: pytest.MonkeyPatch, path: Path) -> Any:
    from airflow.providers.sqlite.hooks.sqlite import SqliteHook

    monkeypatch.setenv("AIRFLOW_CONN_LEDGER_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return SqliteHook(sqlite_conn_id="ledger_db")


@pytest.fixture
def sqlite_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ResultsTable:
    table = ResultsTable(_sqlite_hook(monkeypatch, tmp_path / "warehouse.db"), "metronome_sync_results")
    table.ensure()
    return table


def sync(client: MetronomeClient, table: ResultsTable, rows: Any, run_id: str, **options: Any) -> SyncReport:
    """One run as the operator does it: sync, then write the run's outcomes to the ledger."""
    spool = Spool(run_id)
    try:
        report = BillingConfigSync(client, SyncOptions(**options), ledger=table, spool=spool).run(rows)
        table.append(spool.records())
    finally:
        spool.close()
    return report


def ledger(table: ResultsTable, *, latest: bool = False, run_id: str | None = None) -> list[dict[str, Any]]:
    name = table.view if latest else table.table
    where = f" WHERE run_id = '{run_id}'" if run_id else ""
    cols = ", ".join(table._col(c) for c in COLUMNS)
    records = table.hook.get_records(f"SELECT {cols} FROM {name}{where}")
    return sorted((dict(zip(COLUMNS, r, strict=True)) for r in records), key=lambda r: r["row_number"] or 0)


def active(emu: RunningEmulator) -> list[dict[str, Any]]:
    return [c for c in emu.admin("state")["billing_provider_configurations"] if not c["archived_at"]]


def calls(emu: RunningEmulator) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in emu.admin("requests")["data"]:
        counts[r["operation"]] = counts.get(r["operation"], 0) + 1
    return counts


def test_first_sync_records_each_row_with_the_emulators_ids(
    emulator: RunningEmulator, client: MetronomeClient, sqlite_table: ResultsTable
) -> None:
    report = sync(client, sqlite_table, ROWS, "run-1")
    assert report.created == 3
    rows = ledger(sqlite_table)
    assert [r["row_number"] for r in rows] == [1, 2, 3]
    assert {r["outcome"] for r in rows} == {"created"}
    ids = {(c["customer_id"], c["billing_provider"]): c["id"] for c in active(emulator)}
    assert {(r["customer_id"], r["billing_provider"]): r["configuration_id"] for r in rows} == ids
    assert rows[0]["ingest_alias"] == "acme"
    assert rows[0]["customer_id"] == seeds.ACME
    assert rows[2]["delivery_method_id"] == seeds.AWS_DM
    assert all(r["run_id"] == "run-1" and r["partition"] == 0 and r["synced_at"] for r in rows)
    assert len({r["row_key"] for r in rows}) == 3
    assert all(len(r["row_hash"]) == 32 for r in rows)
    assert [r["configuration_id"] for r in ledger(sqlite_table, latest=True)] == [
        r["configuration_id"] for r in rows
    ]


def test_resync_of_unchanged_rows_makes_no_per_customer_call(
    emulator: RunningEmulator, client: MetronomeClient, sqlite_table: ResultsTable
) -> None:
    sync(client, sqlite_table, ROWS, "run-1")
    first_ids = {r["row_key"]: r["configuration_id"] for r in ledger(sqlite_table)}
    emulator.admin("requests", method="DELETE")

    again = sync(client, sqlite_table, ROWS, "run-2")

    assert (again.created, again.unchanged, again.settled_by_ledger) == (0, 3, 3)
    # One account-level call (the delivery methods); no alias lookup, no per-customer read.
    assert calls(emulator) == {"listConfiguredBillingProviders": 1}
    assert again.api_calls == 1
    second = ledger(sqlite_table, run_id="run-2")
    assert {r["outcome"] for r in second} == {"unchanged"}
    assert {r["row_key"]: r["configuration_id"] for r in second} == first_ids
    assert len(active(emulator)) == 3


def test_a_changed_row_is_synced_and_only_its_customer_is_read(
    emulator: RunningEmulator, client: MetronomeClient, sqlite_table: ResultsTable
) -> None:
    sync(client, sqlite_table, ROWS, "run-1")
    emulator.admin("requests", method="DELETE")
    changed = [stripe("acme", "cus_A2"), *ROWS[1:]]

    report = sync(client, sqlite_table, changed, "run-2", mode="replace")

    assert (report.created, report.unchanged, report.archived, report.settled_by_ledger) == (1, 2, 1, 2)
    assert calls(emulator).get("getCustomerBillingProviderConfigurations") == 1
    run2 = ledger(sqlite_table, run_id="run-2")
    assert sorted(r["outcome"] for r in run2) == ["archived", "created", "unchanged", "unchanged"]
    archived = next(r for r in run2 if r["outcome"] == "archived")
    assert archived["row_number"] is None
    assert archived["customer_id"] == seeds.ACME
    acme_stripe = [c for c in active(emulator) if c["customer_id"] == seeds.ACME]
    assert [c["configuration"]["stripe_customer_id"] for c in acme_stripe] == ["cus_A2"]


def test_verify_finds_and_repairs_a_configuration_archived_behind_the_syncs_back(
    emulator: RunningEmulator, client: MetronomeClient, sqlite_table: ResultsTable
) -> None:
    sync(client, sqlite_table, ROWS, "run-1")
    globex = next(c for c in active(emulator) if c["customer_id"] == seeds.GLOBEX)
    client.archive_billing_provider_configurations(seeds.GLOBEX, [globex["id"]])

    trusting = sync(client, sqlite_table, ROWS, "run-2")
    assert (trusting.created, trusting.drift) == (0, 0), "without verify the ledger is trusted"

    verified = sync(client, sqlite_table, ROWS, "run-3", verify=True)

    assert (verified.created, verified.unchanged, verified.drift, verified.settled_by_ledger) == (1, 2, 1, 0)
    now = next(c for c in active(emulator) if c["customer_id"] == seeds.GLOBEX)
    assert now["id"] != globex["id"]
    latest = {r["customer_id"]: r for r in ledger(sqlite_table, latest=True)}
    assert latest[seeds.GLOBEX]["outcome"] == "created"
    assert latest[seeds.GLOBEX]["configuration_id"] == now["id"]
    assert len(active(emulator)) == 3


def test_dry_run_records_planned_outcomes_and_changes_nothing(
    emulator: RunningEmulator, client: MetronomeClient, sqlite_table: ResultsTable
) -> None:
    report = sync(client, sqlite_table, ROWS, "dry-1", dry_run=True)
    assert report.created == 3
    assert active(emulator) == []
    assert {r["outcome"] for r in ledger(sqlite_table)} == {"planned"}
    assert all(r["configuration_id"] is None for r in ledger(sqlite_table))
    assert ledger(sqlite_table, latest=True) == [], "a dry run is not a row's state"
    # ... so the next real run still creates everything.
    assert sync(client, sqlite_table, ROWS, "run-1").created == 3


def test_duplicates_and_rejections_are_recorded_with_field_and_reason(
    emulator: RunningEmulator, client: MetronomeClient, sqlite_table: ResultsTable
) -> None:
    rows = [
        ROWS[0],
        ROWS[0],
        stripe("nobody", "cus_X"),
        {"customer_id": "nope", "billing_provider": "stripe"},
    ]
    report = sync(client, sqlite_table, rows, "run-1")
    assert (report.created, report.duplicates, report.rejected) == (1, 1, 2)
    by_row = {r["row_number"]: r for r in ledger(sqlite_table)}
    assert [by_row[n]["outcome"] for n in (1, 2, 3, 4)] == ["created", "duplicate", "rejected", "rejected"]
    assert by_row[3]["field"] == "ingest_alias"
    assert "nobody" in by_row[3]["reason"]
    assert by_row[3]["customer_id"] is None
    assert by_row[3]["ingest_alias"] == "nobody"
    assert by_row[4]["reason"]
    assert by_row[4]["field"]


def test_carry_over_syncs_a_row_rejected_yesterday_once_its_customer_exists(
    emulator: RunningEmulator, client: MetronomeClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Day 1 rejects an unknown alias; day 2 reads only its own (empty) window, plus the carry-over."""
    path = tmp_path / "warehouse.db"
    table = ResultsTable(_sqlite_hook(monkeypatch, path), "metronome_sync_results")
    table.ensure()
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE configs (customer_id TEXT, ingest_alias TEXT, billing_provider TEXT, configuration TEXT, "
        "delivery_method TEXT, delivery_method_id TEXT, tax_provider TEXT, updated_at TEXT)"
    )
    db.executemany(
        "INSERT INTO configs VALUES (NULL, ?, 'stripe', ?, ?, NULL, NULL, ?)",
        [("acme", '{"stripe_customer_id": "cus_A"}', DIRECT, "2024-06-01 10:00:00"),
         ("newco", '{"stripe_customer_id": "cus_N"}', DIRECT, "2024-06-01 11:00:00"),
         ("never", '{"stripe_customer_id": "cus_Z"}', DIRECT, "2024-06-01 12:00:00")],
    )  # fmt: skip
    db.commit()

    def day(start: str, end: str) -> str:
        window = f"source.updated_at >= '{start}' AND source.updated_at < '{end}'"
        return f"SELECT * FROM configs source WHERE ({window}) OR {carry_over_condition(table.table)}"

    def rows(sql: str) -> Any:
        return iter_query_rows(db, sql)

    day1 = sync(client, table, rows(day("2024-06-01", "2024-06-02")), "day-1")
    assert (day1.created, day1.rejected) == (1, 2)

    emulator.admin("seed", {"customers": [{"id": NEWCO, "name": "NewCo", "ingest_aliases": ["newco"]}]})
    emulator.admin("requests", method="DELETE")
    day2 = sync(client, table, rows(day("2024-06-02", "2024-06-03")), "day-2")

    assert day2.rows_read == 2, "only the two rejected rows are carried over (acme synced already)"
    assert (day2.created, day2.rejected) == (1, 1)
    latest = {r["ingest_alias"]: r for r in ledger(table, latest=True)}
    assert latest["newco"]["outcome"] == "created"
    assert latest["newco"]["customer_id"] == NEWCO
    assert latest["never"]["outcome"] == "rejected"
    assert "never" in latest["never"]["reason"]
    assert latest["acme"]["outcome"] == "created"
    assert sorted(c["customer_id"] for c in active(emulator)) == sorted([seeds.ACME, NEWCO])

    day3 = sync(client, table, rows(day("2024-06-03", "2024-06-04")), "day-3")
    assert (day3.rows_read, day3.created, day3.rejected) == (1, 0, 1), "the bad row stays, with its reason"
    db.close()


def test_a_lost_ledger_costs_calls_never_a_duplicate(
    emulator: RunningEmulator, client: MetronomeClient, sqlite_table: ResultsTable
) -> None:
    """Metronome written, ledger not (warehouse down, SIGKILL in between): the next run converges."""
    spool = Spool("run-1")
    BillingConfigSync(client, SyncOptions(), ledger=sqlite_table, spool=spool).run(ROWS)
    spool.close()  # the ledger write never happened
    assert ledger(sqlite_table) == []

    again = sync(client, sqlite_table, ROWS, "run-2")
    assert (again.created, again.unchanged, again.settled_by_ledger) == (0, 3, 0)
    assert len(active(emulator)) == 3
    assert {r["outcome"] for r in ledger(sqlite_table)} == {"unchanged"}

    sqlite_table.hook.run(f"DROP VIEW {sqlite_table.view}")
    sqlite_table.hook.run(f"DROP TABLE {sqlite_table.table}")
    sqlite_table.ensure()
    third = sync(client, sqlite_table, ROWS, "run-3")
    assert (third.created, third.unchanged) == (0, 3)
    assert len(active(emulator)) == 3


def test_partitions_each_record_their_share(
    emulator: RunningEmulator, client: MetronomeClient, sqlite_table: ResultsTable
) -> None:
    rows = [stripe(a, f"cus_{a}") for a in ("acme", "globex", "initech", "umbrella")]
    for partition in range(2):
        spool = Spool("run-1", partition)
        options = SyncOptions(partition=partition, partitions=2)
        BillingConfigSync(client, options, ledger=sqlite_table, spool=spool).run(rows)
        sqlite_table.append(spool.records())
        spool.close()
    recorded = ledger(sqlite_table)
    assert sorted(r["ingest_alias"] for r in recorded) == ["acme", "globex", "initech", "umbrella"]
    assert {r["partition"] for r in recorded} <= {0, 1}
    assert {r["configuration_id"] for r in recorded} == {c["id"] for c in active(emulator)}


@pytest.mark.postgres
def test_postgresql_ledger_first_sync_and_zero_call_resync(
    emulator: RunningEmulator, client: MetronomeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = os.environ.get("METRONOME_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("METRONOME_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server)")
    from urllib.parse import urlsplit

    from airflow.providers.postgres.hooks.postgres import PostgresHook

    parts = urlsplit(url)
    conn = {"conn_type": "postgres", "host": parts.hostname, "port": parts.port, "login": parts.username,
            "password": parts.password, "schema": parts.path.lstrip("/")}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_LEDGER_PG", json.dumps(conn))
    hook = PostgresHook(postgres_conn_id="ledger_pg")
    name = f"results_{os.getpid()}_{id(hook)}"
    table = ResultsTable(hook, name)
    table.ensure()
    try:
        sync(client, table, ROWS, "run-1")
        rows = ledger(table)
        ids = {(c["customer_id"], c["billing_provider"]): c["id"] for c in active(emulator)}
        assert {(r["customer_id"], r["billing_provider"]): r["configuration_id"] for r in rows} == ids
        emulator.admin("requests", method="DELETE")
        again = sync(client, table, ROWS, "run-2")
        assert (again.created, again.settled_by_ledger) == (0, 3)
        assert calls(emulator) == {"listConfiguredBillingProviders": 1}
        assert len(ledger(table, latest=True)) == 3
        table.ensure()  # idempotent: the next run's set-up
    finally:
        hook.run(f"DROP VIEW IF EXISTS {table.view}; DROP TABLE IF EXISTS {name}", autocommit=True)
